package xdp

import (
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// BenchmarkProgramSchedulers times a new DR connection (a SYN) through
// services of three real servers with the schedulers that keep state
// beyond the counters (lblc, lblcr: a table by destination address)
// against wlc, which they fall back on.
// go test -run '^$' -bench ProgramSchedulers ./internal/engine/xdp/
func BenchmarkProgramSchedulers(b *testing.B) {
	labNS(b, 11, 12, 13)
	var svcs []ipvs.ServiceConfig
	names := []string{"wlc", "lblc", "lblcr"}
	for i, name := range names {
		v := netip.AddrPortFrom(vip.Addr(), uint16(90+i))
		var ds []ipvs.Dest
		for j := range 3 {
			ds = append(ds, ipvs.Dest{Addr: rsIP(byte(11 + j)), Port: v.Port(), Method: ipvs.Route, Weight: int32(1 + j)})
		}
		svcs = append(svcs, oneService(v, ipvs.TCP, name, ds...))
	}
	e := newTestEngine(b, snapOf(svcs...))
	for i, name := range names {
		v := netip.AddrPortFrom(vip.Addr(), uint16(90+i))
		b.Run("new/"+name, func(b *testing.B) { benchNew(b, e, v) })
	}
}
