package proxy

import (
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
