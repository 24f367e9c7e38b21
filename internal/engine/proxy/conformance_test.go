package proxy

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/engine/enginetest"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// TestConformance runs the engine contract's scenarios on loopback.
func TestConformance(t *testing.T) {
	enginetest.Run(t, func(t *testing.T) *enginetest.Setup {
		s := &enginetest.Setup{
			Engine: newEngine(t, Options{}),
			Dial:   func(ap netip.AddrPort) (net.Conn, error) { return net.DialTimeout("tcp", ap.String(), 3*time.Second) },
		}
		for range 2 {
			s.Services = append(s.Services, vs(t, ipvs.TCP, lo4, "rr").ServiceKey)
		}
		for _, name := range []string{"RS1", "RS2"} {
			rs := startTCP(t, lo4, name)
			s.Dests = append(s.Dests, ipvs.Dest{Addr: rs.addr.Addr(), Port: rs.addr.Port(), Method: ipvs.Masq, Weight: 1})
			s.Names = append(s.Names, name)
		}
		return s
	})
}
