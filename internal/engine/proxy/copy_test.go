package proxy

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// TestTransfers moves small and bulk data both ways through one
// connection, on the event loops and on the portable path (where bulk data
// switches a direction from the buffer to splice), and checks that every
// byte arrives in order and is counted exactly.
func TestTransfers(t *testing.T) {
	tests := []struct {
		name       string
		goroutines bool // the portable data path
		v6         bool
		spliceOnly bool
		sizes      []int // echoed one after the other on one connection
	}{
		{name: "small", sizes: []int{1, 100, 1460, 3000, copyBufSize - 1}},
		{name: "small then bulk then small", sizes: []int{64, 4 << 20, 64, 20000, 1}},
		{name: "bulk first", sizes: []int{1 << 20, 7}},
		{name: "IPv6", v6: true, sizes: []int{64, 1 << 20, 64}},
		{name: "goroutines small", goroutines: true, sizes: []int{1, 100, 1460, 3000, copyBufSize - 1}},
		{name: "goroutines small then bulk then small", goroutines: true, sizes: []int{64, 4 << 20, 64, 20000, 1}},
		{name: "goroutines splice only", goroutines: true, spliceOnly: true, sizes: []int{64, 1 << 20, 64}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, Options{})
			e.goroutines, e.spliceOnly = tt.goroutines, tt.spliceOnly
			lo := lo4
			if tt.v6 {
				lo = netip.IPv6Loopback()
			}
			svc := vs(t, ipvs.TCP, lo, "rr")
			rs := startTCP(t, lo, "rs1")
			newTable(t, e).exec(addSvc(svc), addDest(svc, rs.addr, 1))
			c := mustDial(t, svc.AddrPort())
			c.SetDeadline(time.Now().Add(20 * time.Second))
			var total uint64
			for _, n := range tt.sizes {
				msg := make([]byte, n)
				for i := range msg {
					msg[i] = byte(rand.IntN(256))
				}
				done := make(chan error, 1)
				go func() {
					_, err := c.Write(msg)
					done <- err
				}()
				got := make([]byte, n)
				if _, err := io.ReadFull(c.br, got); err != nil {
					t.Fatalf("read %d bytes back: %v", n, err)
				}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, msg) {
					t.Fatalf("%d bytes came back changed", n)
				}
				total += uint64(n)
			}
			c.finish(t)
			greet := uint64(len("rs1\n"))
			eventually(t, 2*time.Second, "exact byte counters", func() bool {
				st := e.Status()[0]
				return st.Stats.InBytes == total && st.Stats.OutBytes == total+greet &&
					st.Dests[0].Stats.InBytes == total && st.Dests[0].Stats.OutBytes == total+greet
			})
			st := e.Status()[0].Stats
			if minPkts := segments(int64(total)); st.InPkts < minPkts || st.InPkts > minPkts+uint64(total/100+10) {
				t.Fatalf("in packets %d for %d bytes, want about one per 1460 bytes", st.InPkts, total)
			}
		})
	}
}

// TestServerDataThenClose has a real server send data and close at once,
// the way an HTTP server answers "Connection: close": the client must get
// every byte and then EOF, the entry must be CLOSE_WAIT until the client
// closes too and TIME_WAIT after, and the bytes must be counted exactly.
// On the event loops the proxy reads on to the server's EOF before it
// writes, so the last data and the FIN leave together; a client that
// reads late makes those writes wait with the FIN behind them.
func TestServerDataThenClose(t *testing.T) {
	tests := []struct {
		name       string
		goroutines bool
		size       int
		late       bool // the client starts reading only after the server is done (or 200 ms)
	}{
		{name: "small", size: 4},
		{name: "one buffer less a byte", size: copyBufSize - 1},
		{name: "one buffer and a byte", size: copyBufSize + 1},
		{name: "bulk", size: 4 << 20},
		{name: "small, late reader", size: 4, late: true},
		{name: "bulk, late reader", size: 4 << 20, late: true},
		{name: "goroutines small", goroutines: true, size: 4},
		{name: "goroutines bulk, late reader", goroutines: true, size: 4 << 20, late: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, Options{})
			e.goroutines = e.goroutines || tt.goroutines
			svc := vs(t, ipvs.TCP, lo4, "rr")
			msg := make([]byte, tt.size)
			for i := range msg {
				msg[i] = byte(rand.IntN(256))
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			sent := make(chan error, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					sent <- err
					return
				}
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				_, err = c.Write(msg)
				if err == nil {
					err = c.(*net.TCPConn).CloseWrite()
				}
				sent <- err
				io.Copy(io.Discard, c)
			}()
			rs := ln.Addr().(*net.TCPAddr).AddrPort()
			newTable(t, e).exec(addSvc(svc), addDest(svc, rs, 1))
			c, err := net.DialTimeout("tcp", svc.AddrPort().String(), 2*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			c.SetDeadline(time.Now().Add(20 * time.Second))
			if tt.late {
				select {
				case err := <-sent:
					sent <- err
				case <-time.After(200 * time.Millisecond):
				}
			}
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("client read: %v after %d bytes, want %d bytes and EOF", err, len(got), len(msg))
			}
			if !bytes.Equal(got, msg) {
				t.Fatalf("client got %d bytes, want the server's %d unchanged", len(got), len(msg))
			}
			if err := <-sent; err != nil {
				t.Fatalf("server: %v", err)
			}
			eventually(t, 2*time.Second, "CLOSE_WAIT", func() bool {
				l := connsOf(e, svc.AddrPort())
				return len(l) == 1 && l[0].State == "CLOSE_WAIT"
			})
			c.Close()
			eventually(t, 2*time.Second, "TIME_WAIT", func() bool {
				l := connsOf(e, svc.AddrPort())
				return len(l) == 1 && l[0].State == "TIME_WAIT"
			})
			eventually(t, 2*time.Second, "exact byte counters", func() bool {
				st := e.Status()[0].Stats
				return st.OutBytes == uint64(len(msg)) && st.InBytes == 0
			})
		})
	}
}
