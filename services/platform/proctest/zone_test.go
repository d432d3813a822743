package proctest

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
)

func TestZoneAnswersWhatWasLastSet(t *testing.T) {
	one, two, three := netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	z := ServeZone(t, map[string][]netip.Addr{"pods.test.": {one, two}})
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", z.Addr)
	}}
	lookup := func() []string {
		got, err := r.LookupHost(t.Context(), "pods.test")
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}
	if got := lookup(); !slices.Equal(got, []string{"127.0.0.1", "127.0.0.2"}) {
		t.Fatalf("pods.test = %v", got)
	}
	// A pod replaced: the new one is listed, then the old one goes.
	z.Set("Pods.test.", one, two, three)
	z.Set("pods.test.", two, three)
	if got := lookup(); !slices.Equal(got, []string{"127.0.0.2", "127.0.0.3"}) {
		t.Fatalf("after Set, pods.test = %v", got)
	}
}
