package proctest

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/dns/dnsmessage"
)

// ServeDNS answers A queries for the names in records (e.g.
// "imageproc-headless.test." → 127.0.0.1, 127.0.0.2) until the test ends,
// and returns its UDP address. It stands in for cluster DNS: a gRPC target
// "dns://ADDR/imageproc-headless.test:50051" then resolves to several pods,
// as a headless Service does, and a test can change the set by editing
// records before the client re-resolves.
func ServeDNS(t testing.TB, records map[string][]netip.Addr) string {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return // closed at cleanup
			}
			if resp, ok := answer(buf[:n], records); ok {
				_, _ = conn.WriteTo(resp, from)
			}
		}
	}()
	return conn.LocalAddr().String()
}

func answer(query []byte, records map[string][]netip.Addr) ([]byte, bool) {
	var p dnsmessage.Parser
	hdr, err := p.Start(query)
	if err != nil {
		return nil, false
	}
	q, err := p.Question()
	if err != nil {
		return nil, false
	}
	addrs, known := records[strings.ToLower(q.Name.String())]
	rcode := dnsmessage.RCodeSuccess
	if !known {
		rcode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: hdr.ID, Response: true, Authoritative: true, RecursionDesired: hdr.RecursionDesired, RCode: rcode})
	b.EnableCompression()
	_ = b.StartQuestions()
	_ = b.Question(q)
	_ = b.StartAnswers()
	if q.Type == dnsmessage.TypeA {
		for _, a := range addrs {
			// A one-second TTL, like the short TTLs of cluster DNS.
			_ = b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1},
				dnsmessage.AResource{A: a.As4()})
		}
	}
	resp, err := b.Finish()
	return resp, err == nil
}
