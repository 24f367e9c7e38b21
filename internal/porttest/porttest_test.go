package porttest

import (
	"net"
	"net/netip"
	"testing"
)

func TestFreeStaysBelowTheEphemeralRange(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	seen := map[uint16]bool{}
	for range 50 {
		p := Free(t, "tcp", lo)
		if p < first || p >= first+count {
			t.Fatalf("port %d outside %d-%d", p, first, first+count-1)
		}
		if seen[p] {
			t.Fatalf("port %d given twice", p)
		}
		seen[p] = true
		// A socket on port 0 must not be given a port Free handed out.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if q := uint16(ln.Addr().(*net.TCPAddr).Port); seen[q] {
			t.Fatalf("port 0 was given %d, which Free handed out", q)
		}
		ln.Close()
	}
	if p := Free(t, "udp", lo); p < first {
		t.Fatalf("udp port %d", p)
	}
}
