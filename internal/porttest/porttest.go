// Package porttest hands tests ports that are free and stay out of the way
// of the ports the kernel gives to sockets bound to port 0.
//
// A test that takes a port by binding to port 0 and closing the socket, and
// then starts a real server on port 0, can be given the same port twice: the
// kernel hands out the one just released. Ports from Free lie below the
// kernel's default ephemeral range (32768 and up), so that cannot happen.
package porttest

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

const (
	first = 20000
	count = 12000 // up to 31999, below the ephemeral range
)

// next is the next candidate; each test process starts at its own offset
// so that packages tested in parallel seldom try the same ports.
var next atomic.Uint32

func init() { next.Store(uint32(os.Getpid() % count)) }

// Free returns a port that was free on addr for network ("tcp", "tcp4",
// "udp", ...) when it was checked.
func Free(t testing.TB, network string, addr netip.Addr) uint16 {
	t.Helper()
	for range 1000 {
		port := uint16(first + next.Add(1)%count)
		ap := netip.AddrPortFrom(addr, port).String()
		var err error
		if strings.HasPrefix(network, "udp") {
			var pc net.PacketConn
			if pc, err = net.ListenPacket(network, ap); err == nil {
				pc.Close()
			}
		} else {
			var ln net.Listener
			if ln, err = net.Listen(network, ap); err == nil {
				ln.Close()
			}
		}
		if err == nil {
			return port
		}
	}
	t.Fatalf("no free %s port on %s between %d and %d", network, addr, first, first+count-1)
	return 0
}
