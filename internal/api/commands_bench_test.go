package api_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/internal/api"
	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// applied is a Backend that takes every batch and keeps nothing, so that
// BenchmarkRestoreRequest times the server's reading of the request alone.
type applied struct{ n int }

func (a *applied) Exec(cmds []ipvs.Command) error { a.n += len(cmds); return nil }
func (a *applied) ExecEach(cmds []ipvs.Command) []error {
	a.n += len(cmds)
	return make([]error, len(cmds))
}
func (*applied) Services() []ipvs.ServiceStatus { return nil }
func (*applied) Service(ipvs.ServiceKey) (ipvs.ServiceStatus, bool) {
	return ipvs.ServiceStatus{}, false
}
func (*applied) Conns() []ipvs.Conn      { return nil }
func (*applied) Timeouts() ipvs.Timeouts { return ipvs.DefaultTimeouts }
func (*applied) Info() wire.Info         { return wire.Info{} }

// BenchmarkRestoreRequest is what gvsd spends reading the requests of
// gvsadm -R restoring 10,000 services of 4 real servers (50,000
// commands, as POST /v1/commands?on_error=continue bodies of up to
// 16,384, as gvsadm batches them), before the director sees them.
func BenchmarkRestoreRequest(b *testing.B) {
	const n, perSvc, batch = 10000, 4, 16384
	cmds := make([]ipvs.Command, 0, n*(1+perSvc))
	for i := range n {
		s := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), Port: 80}, Scheduler: "rr", Netmask: 32}
		cmds = append(cmds, ipvs.Command{Op: ipvs.OpAddService, Service: &s})
		for j := range perSvc {
			d := ipvs.Dest{Addr: netip.AddrFrom4([4]byte{198, 18, 1, byte(10 + (perSvc*i+j)%64)}), Port: 80, Method: ipvs.Route, Weight: 1}
			cmds = append(cmds, ipvs.Command{Op: ipvs.OpAddDest, Service: &ipvs.Service{ServiceKey: s.ServiceKey}, Dest: &d})
		}
	}
	var bodies [][]byte
	for len(cmds) > 0 {
		k := min(batch, len(cmds))
		body, err := json.Marshal(cmds[:k])
		if err != nil {
			b.Fatal(err)
		}
		bodies, cmds = append(bodies, body), cmds[k:]
	}
	backend := &applied{}
	h := api.NewServer(backend, slog.New(slog.DiscardHandler), nil).Handler()
	for b.Loop() {
		for _, body := range bodies {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("POST", "/v1/commands?on_error=continue", bytes.NewReader(body)))
			if w.Code != http.StatusOK || w.Body.String() != `{"refused":[]}`+"\n" {
				b.Fatalf("%d %s", w.Code, w.Body)
			}
		}
	}
	if backend.n%(n*(1+perSvc)) != 0 {
		b.Fatalf("%d commands applied", backend.n)
	}
}
