package proxy

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// benchServer answers each 64-byte request with the same bytes; a request
// starting with 'c' is the last one: the server closes after answering
// (so TIME_WAIT lands on the server side, not on the client's ports); one
// starting with 's' turns the connection into a plain echo stream.
func benchServer(b *testing.B) netip.AddrPort {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				for {
					if _, err := io.ReadFull(c, buf); err != nil {
						return
					}
					if _, err := c.Write(buf); err != nil || buf[0] == 'c' {
						return
					}
					if buf[0] == 's' {
						io.Copy(c, c)
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

// BenchmarkProxyTCP compares request/response through the engine (on the
// event loops, and on the portable goroutine path) with the same exchange
// straight to the real server: on one kept-alive connection
// (roundtrip) and with a new connection per request (connect).
func BenchmarkProxyTCP(b *testing.B) {
	rs := benchServer(b)
	e := New(nil, Options{})
	b.Cleanup(func() { e.Close(b.Context()) })
	svc := vs(b, ipvs.TCP, lo4, "wlc")
	tb := ipvs.NewTable(e.CheckDest)
	for _, c := range []ipvs.Command{addSvc(svc), addDest(svc, rs, 1)} {
		if err := tb.Exec(c); err != nil {
			b.Fatal(err)
		}
	}
	if err := engine.ApplySnapshot(e, tb.Snapshot()); err != nil {
		b.Fatal(err)
	}
	// The same service on the portable data path (goroutines, splice).
	eg := New(nil, Options{})
	eg.goroutines = true
	b.Cleanup(func() { eg.Close(b.Context()) })
	svcg := vs(b, ipvs.TCP, lo4, "wlc")
	tbg := ipvs.NewTable(eg.CheckDest)
	for _, c := range []ipvs.Command{addSvc(svcg), addDest(svcg, rs, 1)} {
		if err := tbg.Exec(c); err != nil {
			b.Fatal(err)
		}
	}
	if err := engine.ApplySnapshot(eg, tbg.Snapshot()); err != nil {
		b.Fatal(err)
	}
	targets := []struct {
		name string
		addr netip.AddrPort
	}{{"direct", rs}, {"proxy", svc.AddrPort()}, {"proxy-goroutines", svcg.AddrPort()}}

	for _, tg := range targets {
		b.Run("roundtrip-64B/"+tg.name, func(b *testing.B) {
			c, err := net.DialTimeout("tcp", tg.addr.String(), time.Second)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			req, resp := make([]byte, 64), make([]byte, 64)
			req[0] = 'r'
			b.SetBytes(64)
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, resp); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, tg := range targets {
		b.Run("connect/"+tg.name, func(b *testing.B) {
			req, resp := make([]byte, 64), make([]byte, 64)
			req[0] = 'c'
			for b.Loop() {
				c, err := net.DialTimeout("tcp", tg.addr.String(), time.Second)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Write(req); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, resp); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Read(resp); err != io.EOF {
					b.Fatalf("after the answer: %v, want EOF", err)
				}
				c.Close()
			}
		})
	}
	for _, tg := range targets {
		b.Run("stream-1MiB/"+tg.name, func(b *testing.B) {
			benchStream(b, tg.addr)
		})
	}
}

// benchStream sends 1 MiB and reads it back over one connection.
func benchStream(b *testing.B, addr netip.AddrPort) {
	c, err := net.DialTimeout("tcp", addr.String(), time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	hello := make([]byte, 64)
	hello[0] = 's'
	if _, err := c.Write(hello); err != nil {
		b.Fatal(err)
	}
	if _, err := io.ReadFull(c, hello); err != nil {
		b.Fatal(err)
	}
	const size = 1 << 20
	buf := make([]byte, size)
	out := make([]byte, size)
	b.SetBytes(size)
	for b.Loop() {
		done := make(chan error, 1)
		go func() {
			_, err := io.ReadFull(c, out)
			done <- err
		}()
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGate times what the refusal (gate.go) costs the control plane
// per service, for 1,000 TCP services on 127.79.x.y:18080 in one batch
// each: added without real servers (the address is bound to check it,
// then closed), a real server added to each (listening), every real
// server set to weight 0 (closed) and back to 1 (listening again).
func BenchmarkGate(b *testing.B) {
	const n = 1000
	rs := benchServer(b)
	keys := make([]ipvs.ServiceKey, n)
	for i := range keys {
		keys[i] = ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.AddrFrom4([4]byte{127, 79, byte(i >> 8), byte(i)}), Port: 18080}
	}
	batch := func(op ipvs.Op, w int32) []ipvs.Command {
		cmds := make([]ipvs.Command, n)
		for i, k := range keys {
			s := &ipvs.Service{ServiceKey: k, Scheduler: "rr", Netmask: 32}
			cmds[i] = ipvs.Command{Op: op, Service: s}
			if op != ipvs.OpAddService {
				cmds[i].Dest = &ipvs.Dest{Addr: rs.Addr(), Port: rs.Port(), Method: ipvs.Masq, Weight: w}
			}
		}
		return cmds
	}
	phases := []struct {
		name  string
		batch []ipvs.Command
	}{
		{"add-µs/service", batch(ipvs.OpAddService, 0)},
		{"add-dest-µs/service", batch(ipvs.OpAddDest, 1)},
		{"weight0-µs/service", batch(ipvs.OpEditDest, 0)},
		{"weight1-µs/service", batch(ipvs.OpEditDest, 1)},
	}
	spent := make([]time.Duration, len(phases))
	for range b.N {
		e := New(nil, Options{})
		for i, p := range phases {
			start := time.Now()
			if err := e.Apply(p.batch); err != nil {
				b.Fatal(err)
			}
			spent[i] += time.Since(start)
		}
		e.Close(context.Background())
	}
	for i, p := range phases {
		b.ReportMetric(float64(spent[i].Microseconds())/float64(b.N*n), p.name)
	}
}
