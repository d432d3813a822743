// Package backend is the frontend's gRPC client of imageproc: how it
// connects (client-side load balancing or one pinned connection), how long
// it waits, what it retries, and which pod answered each call.
package backend

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	imageprocv1 "github.com/kubelab/kubelab/proto/gen/imageproc/v1"
	"github.com/kubelab/kubelab/services/platform/grpcclient"
	"github.com/kubelab/kubelab/services/platform/grpcmetrics"
	"github.com/kubelab/kubelab/services/platform/grpcserver"
)

// Balancing policies, see grpcclient.
const (
	RoundRobin = grpcclient.RoundRobin
	PickFirst  = grpcclient.PickFirst
)

// Options say where imageproc is and how to talk to it.
type Options struct {
	// Target is a gRPC target, e.g. "dns:///imageproc-headless:50051"
	// (one address per ready pod) or "imageproc:50051" (one virtual IP).
	Target    string
	Balancing string
	// Timeout bounds every unary call; streams get StreamTimeout.
	Timeout       time.Duration
	StreamTimeout time.Duration
	// Metrics, if set, counts the calls in grpc_client_*.
	Metrics *grpcmetrics.Metrics
}

// Client holds one connection (a channel of subconnections, one per
// resolved address) shared by every request.
type Client struct {
	Images imageprocv1.ImageServiceClient
	Queue  imageprocv1.QueueServiceClient
	Health healthpb.HealthClient

	opts Options
	conn *grpc.ClientConn
}

// retried are the calls safe to repeat: reads, and Transform, whose result
// is keyed by image and spec so doing it twice stores one variant. Uploads
// and batch submissions are not retried: a retry after a lost answer could
// store a second copy.
var retried = []grpcclient.Method{
	{Service: "imageproc.v1.ImageService", Method: "GetImage"},
	{Service: "imageproc.v1.ImageService", Method: "ListImages"},
	{Service: "imageproc.v1.ImageService", Method: "Download"},
	{Service: "imageproc.v1.ImageService", Method: "Transform"},
	{Service: "imageproc.v1.QueueService", Method: "GetBatch"},
	{Service: "grpc.health.v1.Health", Method: "Check"},
}

// Dial creates the client. It does not wait for imageproc: the connection
// is made on first use and re-made when pods come and go.
func Dial(opts Options) (*Client, error) {
	conn, err := grpcclient.Dial(grpcclient.Options{Target: opts.Target, Balancing: opts.Balancing,
		HealthService: "imageproc.v1.ImageService", Retry: retried},
		append(opts.Metrics.DialOptions(),
			grpc.WithChainUnaryInterceptor(recordUnary),
			grpc.WithChainStreamInterceptor(recordStream))...)
	if err != nil {
		return nil, fmt.Errorf("imageproc (IMAGEPROC_ADDR, IMAGEPROC_BALANCING): %w", err)
	}
	return &Client{
		Images: imageprocv1.NewImageServiceClient(conn),
		Queue:  imageprocv1.NewQueueServiceClient(conn),
		Health: healthpb.NewHealthClient(conn),
		opts:   opts,
		conn:   conn,
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Options returns what the client was created with, for the cluster panel.
func (c *Client) Options() Options { return c.opts }

// Unary returns a context for one unary call, bounded by Timeout.
func (c *Client) Unary(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.Timeout)
}

// Stream returns a context for one streaming call, bounded by StreamTimeout.
func (c *Client) Stream(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.opts.StreamTimeout)
}

// Check asks imageproc's health service whether ImageService is serving:
// the frontend's readiness check.
func (c *Client) Check(ctx context.Context) error {
	resp, err := c.Health.Check(ctx, &healthpb.HealthCheckRequest{Service: "imageproc.v1.ImageService"})
	if err != nil {
		return fmt.Errorf("imageproc health: %w", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("imageproc health: %s", resp.GetStatus())
	}
	return nil
}

// Answer records which imageproc pod, at which version, answered the calls
// made with a context from Track. Safe for concurrent use.
type Answer struct {
	mu       sync.Mutex
	servedBy string
	version  string
}

// ServedBy returns the pod and version of the latest answer ("" if none).
func (a *Answer) ServedBy() (pod, version string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.servedBy, a.version
}

func (a *Answer) record(md metadata.MD) {
	pod := first(md, grpcserver.ServedByHeader)
	if pod == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.servedBy, a.version = pod, first(md, grpcserver.VersionHeader)
}

func first(md metadata.MD, key string) string {
	if v := md.Get(key); len(v) > 0 {
		return v[0]
	}
	return ""
}

type answerKey struct{}

// Track returns a context whose calls record who answered into the
// returned Answer.
func Track(ctx context.Context) (context.Context, *Answer) {
	a := &Answer{}
	return context.WithValue(ctx, answerKey{}, a), a
}

func answerFrom(ctx context.Context) *Answer {
	a, _ := ctx.Value(answerKey{}).(*Answer)
	return a
}

func recordUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	a := answerFrom(ctx)
	if a == nil {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	var header, trailer metadata.MD
	err := invoker(ctx, method, req, reply, cc, append(opts, grpc.Header(&header), grpc.Trailer(&trailer))...)
	// A failed call may answer with trailers only.
	a.record(metadata.Join(header, trailer))
	return err
}

func recordStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := streamer(ctx, desc, cc, method, opts...)
	a := answerFrom(ctx)
	if err != nil || a == nil {
		return s, err
	}
	return &recordingStream{ClientStream: s, answer: a}, nil
}

// recordingStream reads the header once the first message (or the end)
// has arrived, when it is known to be there without blocking.
type recordingStream struct {
	grpc.ClientStream
	answer *Answer
	once   sync.Once
}

func (s *recordingStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	s.once.Do(func() {
		md, _ := s.Header()
		if err != nil {
			// The trailer is only final once the stream has ended.
			md = metadata.Join(md, s.Trailer())
		}
		s.answer.record(md)
	})
	return err
}
