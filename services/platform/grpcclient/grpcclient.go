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

// Dial returns a connection to target. It does not wait: connections are
// made on first use and re-made as addresses come and go. Calls to the
// methods in retry are retried on UNAVAILABLE (a pod going away); list only
// calls that are safe to repeat.
func Dial(target, balancing string, retry []Method, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	if balancing != RoundRobin && balancing != PickFirst {
		return nil, fmt.Errorf("balancing %q: want %s or %s", balancing, RoundRobin, PickFirst)
	}
	if balancing == RoundRobin && !manyAddresses(target) {
		// Round robin over one address balances nothing: say so at start.
		return nil, fmt.Errorf("target %q: round_robin needs a dns:/// target that resolves to every pod (a headless Service)", target)
	}
	config, err := serviceConfig(balancing, retry)
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

func serviceConfig(balancing string, retry []Method) (string, error) {
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
	cfg := struct {
		LoadBalancingConfig []map[string]struct{} `json:"loadBalancingConfig"`
		MethodConfig        []methodConfig        `json:"methodConfig,omitempty"`
	}{LoadBalancingConfig: []map[string]struct{}{{balancing: {}}}}
	if len(retry) > 0 {
		cfg.MethodConfig = []methodConfig{{Name: retry, RetryPolicy: retryPolicy{
			MaxAttempts: 3, InitialBackoff: "0.05s", MaxBackoff: "0.5s", BackoffMultiplier: 2,
			RetryableStatusCodes: []string{"UNAVAILABLE"},
		}}}
	}
	b, err := json.Marshal(cfg)
	return string(b), err
}
