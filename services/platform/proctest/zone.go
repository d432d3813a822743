package proctest

import (
	"maps"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// Zone is a stand-in cluster DNS whose records change while clients
// resolve, as a headless Service's do when pods come and go: a test adds a
// replacement pod's address when it starts and removes a pod's once it is
// gone, the way the endpoints follow the pod objects.
type Zone struct {
	// Addr is the UDP address to put in a target:
	// "dns://" + Addr + "/imageproc-headless.test:50051".
	Addr string

	mu      sync.Mutex
	records map[string][]netip.Addr
}

// ServeZone answers A queries for the names in records until the test
// ends; Set changes them.
func ServeZone(t testing.TB, records map[string][]netip.Addr) *Zone {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	z := &Zone{Addr: conn.LocalAddr().String(), records: maps.Clone(records)}
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return // closed at cleanup
			}
			z.mu.Lock()
			resp, ok := answer(buf[:n], z.records)
			z.mu.Unlock()
			if ok {
				_, _ = conn.WriteTo(resp, from)
			}
		}
	}()
	return z
}

// Set makes name ("imageproc-headless.test.") resolve to addrs from the
// next query on.
func (z *Zone) Set(name string, addrs ...netip.Addr) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.records[strings.ToLower(name)] = addrs
}
