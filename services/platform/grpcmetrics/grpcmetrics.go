// Package grpcmetrics counts a service's RPCs with go-grpc-middleware's
// Prometheus provider: the grpc_server_* and grpc_client_* families, by
// grpc_service, grpc_method, grpc_type and grpc_code, the names and labels
// off-the-shelf gRPC dashboards and alerts use. It is apart from telemetry
// so that a binary without gRPC (clusterview) links none of it.
package grpcmetrics

import (
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/kubelab/kubelab/services/platform/telemetry"
)

// Metrics holds both sides, with handling-time histograms on
// telemetry.LatencyBuckets. Both are registered: a family with no series
// yet is not exported, so a process shows only the side it uses.
type Metrics struct {
	Server *grpcprom.ServerMetrics
	Client *grpcprom.ClientMetrics
}

// New registers the gRPC metrics in reg, a service's registry
// (telemetry.Metrics.Registry).
func New(reg prometheus.Registerer) *Metrics {
	buckets := grpcprom.WithHistogramBuckets(telemetry.LatencyBuckets())
	m := &Metrics{
		Server: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(buckets)),
		Client: grpcprom.NewClientMetrics(grpcprom.WithClientHandlingTimeHistogram(buckets)),
	}
	reg.MustRegister(m.Server, m.Client)
	return m
}

// UnaryServerInterceptor records unary RPCs in grpc_server_*.
func (m *Metrics) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return m.Server.UnaryServerInterceptor()
}

// StreamServerInterceptor records streaming RPCs in grpc_server_*.
func (m *Metrics) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return m.Server.StreamServerInterceptor()
}

// DialOptions record a client's RPCs in grpc_client_*; pass them to
// grpcclient.Dial. A nil *Metrics (a process without /metrics) records
// nothing.
func (m *Metrics) DialOptions() []grpc.DialOption {
	if m == nil {
		return nil
	}
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(m.Client.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(m.Client.StreamClientInterceptor()),
	}
}
