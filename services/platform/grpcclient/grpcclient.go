// Package grpcclient dials kubelab's gRPC services the same way from every
// client: a chosen load-balancing policy, retries for the calls that are
// safe to repeat, and keepalive pings.
package grpcclient

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking, see Options.HealthService
	"google.golang.org/grpc/keepalive"
)

// Balancing policies. RoundRobin over a headless Service spreads calls over
// every pod; PickFirst over a ClusterIP Service sends every call down one
// HTTP/2 connection, so one pod gets all of them (the balancing demo).
const (
	RoundRobin = "round_robin"
	PickFirst  = "pick_first"
)

// Method names a method to retry, e.g. {"imageproc.v1.ImageService", "GetImage"}.
type Method struct {
	Service string `json:"service"`
	Method  string `json:"method"`
}

// Options say how to reach a service.
type Options struct {
	// Target is a gRPC target, e.g. "dns:///imageproc-headless:50051".
	Target    string
	Balancing string
	// HealthService, if set, turns on client-side health checking: each
	// subchannel watches grpc.health.v1 for this service name and takes
	// calls only while it is SERVING. With a headless Service that
	// publishes not-ready pods too, the client itself decides which pods
	// are usable, without waiting for DNS to catch up.
	HealthService string
	// Retry lists the methods retried on UNAVAILABLE (a pod going away);
	// list only calls that are safe to repeat.
	Retry []Method
}

// Dial returns a connection. It does not wait: connections are made on
// first use and re-made as addresses come and go.
func Dial(o Options, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	target, balancing, retry := o.Target, o.Balancing, o.Retry
	if balancing != RoundRobin && balancing != PickFirst {
		return nil, fmt.Errorf("balancing %q: want %s or %s", balancing, RoundRobin, PickFirst)
	}
	if balancing == RoundRobin && !manyAddresses(target) {
		// Round robin over one address balances nothing: say so at start.
		return nil, fmt.Errorf("target %q: round_robin needs a dns:/// target that resolves to every pod (a headless Service)", target)
	}
	config, err := serviceConfig(balancing, o.HealthService, retry)
	if err != nil {
		return nil, err
	}
	opts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(config),
		// Pings find a dead connection (a pod that vanished without a
		// FIN) in seconds rather than at the next call's deadline.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 5 * time.Second}),
	}, extra...)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("gRPC client for %q: %w", target, err)
	}
	return conn, nil
}

// manyAddresses reports whether target's resolver can return several
// addresses: DNS (a headless Service has one A record per ready pod) or an
// explicit ipv4:/ipv6: list.
func manyAddresses(target string) bool {
	for _, scheme := range []string{"dns:", "ipv4:", "ipv6:"} {
		if strings.HasPrefix(target, scheme) {
			return true
		}
	}
	return false
}

func serviceConfig(balancing, healthService string, retry []Method) (string, error) {
	type retryPolicy struct {
		MaxAttempts          int      `json:"maxAttempts"`
		InitialBackoff       string   `json:"initialBackoff"`
		MaxBackoff           string   `json:"maxBackoff"`
		BackoffMultiplier    float64  `json:"backoffMultiplier"`
		RetryableStatusCodes []string `json:"retryableStatusCodes"`
	}
	type methodConfig struct {
		Name        []Method    `json:"name"`
		RetryPolicy retryPolicy `json:"retryPolicy"`
	}
	type healthCheck struct {
		ServiceName string `json:"serviceName"`
	}
	cfg := struct {
		LoadBalancingConfig []map[string]struct{} `json:"loadBalancingConfig"`
		HealthCheckConfig   *healthCheck          `json:"healthCheckConfig,omitempty"`
		MethodConfig        []methodConfig        `json:"methodConfig,omitempty"`
	}{LoadBalancingConfig: []map[string]struct{}{{balancing: {}}}}
	if healthService != "" {
		cfg.HealthCheckConfig = &healthCheck{ServiceName: healthService}
	}
	if len(retry) > 0 {
		cfg.MethodConfig = []methodConfig{{Name: retry, RetryPolicy: retryPolicy{
			MaxAttempts: 3, InitialBackoff: "0.05s", MaxBackoff: "0.5s", BackoffMultiplier: 2,
			RetryableStatusCodes: []string{"UNAVAILABLE"},
		}}}
	}
	b, err := json.Marshal(cfg)
	return string(b), err
}
