// Package grpcclient dials kubelab's gRPC services the same way from every
// client: a chosen load-balancing policy, retries for the calls that are
// safe to repeat, keepalive pings, and a view of the pods behind a headless
// Service that keeps up as they come and go.
package grpcclient

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking, see Options.HealthService
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/dns"
)

// How the client follows the pods of a headless Service. grpc-go's dns
// resolver asks DNS again only when a connection fails or closes, and then
// no sooner than 30s after its last answer. So a client learned of a new pod
// up to 30s late, or only at the next connection failure: while a
// replacement pod was ready, clients kept dialling the deleted pod's IP
// ("connection refused") or had no pod left once the other old one
// drained. A scale-up went unused just the same.
const (
	// resolveEvery asks DNS again this often, failure or not (grpc-go
	// leaves polling to custom resolvers; see refreshingDNS). A pod that
	// appears in DNS takes calls within resolveEvery; an address that
	// leaves DNS (its pod deleted) is dropped, and no longer dialled,
	// as fast.
	resolveEvery = 2 * time.Second
	// minResolutionInterval lets a failure's re-resolution, and the
	// periodic one, happen this soon after the last answer.
	minResolutionInterval = time.Second
)

// grpc-go reads the interval as a global, set once before any channel
// exists: hence init. It applies to every dns target of the process.
func init() { dns.SetMinResolutionInterval(minResolutionInterval) }

// reconnect is how a lost pod is dialled again: after 100ms, then 1.6×
// longer each time, at most 1s (±20% jitter). grpc-go's defaults (1s,
// growing to 2 minutes) left the frontend answering 503 for 1–4s after
// imageproc was back, longer the longer it had been away. A refused dial
// costs the pod nothing, and one a second from each client is cheap. A
// connect gets 5s: a pod answers in milliseconds, and a deleted pod's IP
// drops the SYN, where waiting gRPC's default 20s helps nobody.
var reconnect = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: 5 * time.Second,
}

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
	// Target is a gRPC target: "dns:///imageproc-headless:50051",
	// "imageproc:50051" or "passthrough:///10.0.0.1:50051".
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
	if addressList(target) {
		return nil, fmt.Errorf("target %q: grpc-go has no ipv4: or ipv6: resolver; use dns:///host:port, or host:port for one address", target)
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
		// The configuration above is the whole of it: DNS is not asked for
		// one (a TXT lookup on every resolution, through every search
		// domain of the pod's resolv.conf).
		grpc.WithDisableServiceConfig(),
		grpc.WithResolvers(refreshingDNS{Builder: resolver.Get("dns"), every: resolveEvery}),
		grpc.WithConnectParams(reconnect),
		// Pings find a dead connection (a pod that vanished without a
		// FIN) in seconds rather than at the next call's deadline.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 20 * time.Second, Timeout: 5 * time.Second}),
		// A client span per call, and the caller's trace context sent in
		// its metadata (traceparent), so the server's span joins the
		// caller's trace. Health checks are left out: a subchannel's
		// Watch stream lives as long as the connection and belongs to no
		// request.
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithFilter(filters.Not(filters.HealthCheck())))),
	}, extra...)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("gRPC client for %q: %w", target, err)
	}
	return conn, nil
}

// manyAddresses reports whether target names the dns resolver, the one
// resolver here that returns several addresses (a headless Service has one
// A record per ready pod). grpc.NewClient looks a bare host:port up in DNS
// too, but round_robin still asks for dns:/// written out.
func manyAddresses(target string) bool { return strings.HasPrefix(target, "dns:") }

// addressList reports a target in gRPC's ipv4: or ipv6: address-list
// scheme. gRPC's C core resolves it, grpc-go registers no resolver for it:
// it would look the whole string up as a DNS name and fail only at the
// first call, far from the mistake. "ipv4:50051" is a host named ipv4.
func addressList(target string) bool {
	scheme, rest, _ := strings.Cut(target, ":")
	if scheme != "ipv4" && scheme != "ipv6" {
		return false
	}
	_, err := strconv.ParseUint(rest, 10, 16)
	return err != nil
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

// refreshingDNS builds grpc-go's own dns resolver and asks it to resolve
// again every `every`, as its maintainers suggest for DNS that changes
// without connections failing (grpc/grpc-go#6604). A resolution returning
// the same addresses changes nothing; a new address gets a subchannel
// (health-checked before it takes calls), a vanished one is closed.
type refreshingDNS struct {
	resolver.Builder // the registered "dns" builder; its Scheme is "dns"
	every            time.Duration
}

func (b refreshingDNS) Build(target resolver.Target, cc resolver.ClientConn, opts resolver.BuildOptions) (resolver.Resolver, error) {
	r, err := b.Builder.Build(target, cc, opts)
	if err != nil {
		return nil, err
	}
	rr := &refreshing{Resolver: r, stop: make(chan struct{})}
	rr.wg.Go(func() {
		t := time.NewTicker(b.every)
		defer t.Stop()
		for {
			select {
			case <-rr.stop:
				return
			case <-t.C:
				rr.ResolveNow(resolver.ResolveNowOptions{})
			}
		}
	})
	return rr, nil
}

// refreshing is a resolver asked to resolve again on a ticker until Close.
type refreshing struct {
	resolver.Resolver
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup
}

// Close stops the ticker before the resolver, so no ResolveNow reaches a
// closed resolver (gRPC closes it when the channel idles or closes).
func (r *refreshing) Close() {
	r.once.Do(func() { close(r.stop) })
	r.wg.Wait()
	r.Resolver.Close()
}
