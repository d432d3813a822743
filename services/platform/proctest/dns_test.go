package proctest

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
)

func TestServeDNSAnswersLikeAHeadlessService(t *testing.T) {
	addr := ServeDNS(t, map[string][]netip.Addr{
		"pods.test.": {netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")},
	})
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", addr)
	}}
	got, err := r.LookupHost(t.Context(), "pods.test")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"127.0.0.1", "127.0.0.2"}) {
		t.Fatalf("pods.test = %v", got)
	}
	if _, err := r.LookupHost(t.Context(), "missing.test"); err == nil {
		t.Fatal("an unknown name resolved")
	}
}
