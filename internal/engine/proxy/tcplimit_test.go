package proxy

import (
	"errors"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// TestTCPConnBound: a flood of 200 connections, held open, to one service
// bounded at 40 of an overall 60 gets 40 served and the rest refused: the
// service stops listening at its bound, so the kernel refuses the
// connect() (those accepted before it stopped are reset and counted);
// another service still gets its connections up to the overall bound, and
// one over it is accepted and reset. A connection that ends gives its
// place back, and the service listens again. On both data paths.
func TestTCPConnBound(t *testing.T) {
	for _, path := range []string{"loops", "goroutines"} {
		t.Run(path, func(t *testing.T) {
			e := newEngine(t, Options{TCPConns: 60, TCPConnsPerService: 40})
			e.goroutines = path == "goroutines"
			flooded, quiet := vs(t, ipvs.TCP, lo4, "rr"), vs(t, ipvs.TCP, lo4, "rr")
			rs := startTCP(t, lo4, "rs")
			newTable(t, e).exec(addSvc(flooded), addDest(flooded, rs.addr, 1), addSvc(quiet), addDest(quiet, rs.addr, 1))

			const flood = 200
			var (
				mu     sync.Mutex
				served []*client
				failed int
				wg     sync.WaitGroup
			)
			for range flood {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c, err := dialVS(t, flooded.AddrPort(), netip.Addr{})
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						failed++
						return
					}
					served = append(served, c)
				}()
			}
			wg.Wait()
			if len(served) != 40 || failed != flood-40 {
				t.Fatalf("flood: %d served, %d failed; want 40 and %d", len(served), failed, flood-40)
			}
			st := serviceState(t, e, flooded.ServiceKey)
			if st.TCPConns != 40 || st.Refused > flood-40 {
				t.Fatalf("flooded service state %+v, want 40 open, at most %d refused after accept", st, flood-40)
			}
			eventually(t, 2*time.Second, "connect() to the full service refused", func() bool {
				_, err := dialVS(t, flooded.AddrPort(), netip.Addr{})
				return errors.Is(err, syscall.ECONNREFUSED)
			})
			flooded1 := serviceState(t, e, flooded.ServiceKey).Refused

			var quietConns []*client
			for range 20 {
				c := mustDial(t, quiet.AddrPort())
				c.echo(t, "q")
				quietConns = append(quietConns, c)
			}
			if _, err := dialVS(t, quiet.AddrPort(), netip.Addr{}); err == nil {
				t.Errorf("a connection over the overall bound of 60 was served")
			}
			if st := e.State(); st.TCPConns != 60 || st.TCPConnLimit != 60 || st.TCPConnLimitPerService != 40 || st.TCPRefused != flooded1+1 {
				t.Errorf("engine state %+v, want 60 of 60 open (40 per service), %d refused", st, flooded1+1)
			}

			// A connection that ends gives its place back.
			quietConns[0].finish(t)
			served[0].finish(t)
			eventually(t, 5*time.Second, "two places given back", func() bool { return e.State().TCPConns == 58 })
			var again *client
			eventually(t, 2*time.Second, "the flooded service listening again", func() bool {
				again, _ = dialVS(t, flooded.AddrPort(), netip.Addr{})
				return again != nil
			})
			again.echo(t, "f")
			mustDial(t, quiet.AddrPort()).echo(t, "q")
			if q := serviceState(t, e, quiet.ServiceKey); q.TCPConns != 20 || q.Refused != 1 {
				t.Errorf("quiet service state %+v, want 20 open, 1 refused", q)
			}
		})
	}
}
