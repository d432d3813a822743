package grpcclient

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/resolver"
)

func TestDialChecksTheTargetFitsTheBalancing(t *testing.T) {
	retry := []Method{{"imageproc.v1.ImageService", "GetImage"}}
	tests := []struct {
		target, balancing, wantErr string
	}{
		{"dns:///imageproc-headless:50051", RoundRobin, ""},
		{"dns://10.96.0.10/imageproc-headless:50051", RoundRobin, ""},
		{"imageproc:50051", PickFirst, ""},
		{"passthrough:///10.0.0.1:50051", PickFirst, ""},
		{"passthrough:///10.0.0.1:50051", RoundRobin, "round_robin needs"},
		// grpc-go has no resolver for these: refused, not read as DNS names.
		{"ipv4:127.0.0.1:1,127.0.0.1:2", RoundRobin, "no ipv4: or ipv6: resolver"},
		{"ipv4:127.0.0.1:1", PickFirst, "no ipv4: or ipv6: resolver"},
		{"ipv6:[::1]:1,[::1]:2", RoundRobin, "no ipv4: or ipv6: resolver"},
		{"ipv4:50051", PickFirst, ""}, // a host named ipv4
		{"imageproc:50051", RoundRobin, "round_robin needs"},
		{"dns:///imageproc:50051", "random", "balancing"},
	}
	for _, tt := range tests {
		conn, err := Dial(Options{Target: tt.target, Balancing: tt.balancing, Retry: retry})
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("Dial(%q, %s): %v", tt.target, tt.balancing, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("Dial(%q, %s) = %v, want an error containing %q", tt.target, tt.balancing, err, tt.wantErr)
		}
		if conn != nil {
			_ = conn.Close()
		}
	}
}

func TestServiceConfig(t *testing.T) {
	cfg, err := serviceConfig(PickFirst, "svc", []Method{{"s", "m"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"loadBalancingConfig":[{"pick_first":{}}]`, `"name":[{"service":"s","method":"m"}]`, `"retryableStatusCodes":["UNAVAILABLE"]`, `"healthCheckConfig":{"serviceName":"svc"}`} {
		if !strings.Contains(cfg, want) {
			t.Errorf("%s lacks %s", cfg, want)
		}
	}
	if cfg, _ := serviceConfig(RoundRobin, "", nil); strings.Contains(cfg, "methodConfig") || strings.Contains(cfg, "healthCheck") {
		t.Errorf("no retries asked, got %s", cfg)
	}
}

// countingResolver stands in for grpc-go's dns resolver.
type countingResolver struct {
	resolveNow atomic.Int32
	closed     atomic.Bool
	lateCalls  atomic.Int32 // ResolveNow after Close
}

func (r *countingResolver) ResolveNow(resolver.ResolveNowOptions) {
	if r.closed.Load() {
		r.lateCalls.Add(1)
	}
	r.resolveNow.Add(1)
}
func (r *countingResolver) Close() { r.closed.Store(true) }

type countingBuilder struct{ r *countingResolver }

func (b countingBuilder) Build(resolver.Target, resolver.ClientConn, resolver.BuildOptions) (resolver.Resolver, error) {
	return b.r, nil
}
func (countingBuilder) Scheme() string { return "dns" }

// Nothing fails, yet the resolver is asked again and again: pods that
// join a headless Service are found without waiting for a connection to
// break. After Close it is asked nothing more.
func TestRefreshingDNSAsksAgainUntilClosed(t *testing.T) {
	inner := &countingResolver{}
	r, err := refreshingDNS{Builder: countingBuilder{inner}, every: time.Millisecond}.Build(resolver.Target{}, nil, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); inner.resolveNow.Load() < 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("asked to resolve %d times in 10s with a 1ms period", inner.resolveNow.Load())
		}
	}
	r.Close()
	if !inner.closed.Load() {
		t.Fatal("the dns resolver was not closed")
	}
	time.Sleep(10 * time.Millisecond) // ten more ticks, had the ticker survived
	if n := inner.lateCalls.Load(); n > 0 {
		t.Fatalf("%d ResolveNow calls after Close", n)
	}
}

// The reconnect backoff is kubelab's, not grpc-go's default (1s growing to
// 2 minutes), which kept the frontend failing for seconds after imageproc
// was back: Dial passes reconnect, this pins what it says.
func TestReconnectBackoffIsShort(t *testing.T) {
	b := reconnect.Backoff
	if b.BaseDelay >= backoff.DefaultConfig.BaseDelay || b.MaxDelay > time.Second || b.Multiplier <= 1 || b.Jitter <= 0 {
		t.Errorf("reconnect backoff %+v: want a first retry sooner than grpc-go's %v, at most 1s apart, growing, jittered", b, backoff.DefaultConfig.BaseDelay)
	}
	if reconnect.MinConnectTimeout <= 0 || reconnect.MinConnectTimeout > 5*time.Second {
		t.Errorf("MinConnectTimeout %v: want a positive bound of at most 5s", reconnect.MinConnectTimeout)
	}
}
