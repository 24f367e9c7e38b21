package api_test

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/internal/api"
	"github.com/gvs-lb/gvs/internal/api/client"
	"github.com/gvs-lb/gvs/internal/director"
	"github.com/gvs-lb/gvs/internal/engine/proxy"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/porttest"
)

// BenchmarkServiceStatus is what one poll of a service costs at 10,000
// services of 4 real servers (proxy engine, VIPs 127.79.x.y): the
// director's status of the whole table against that of one service, and
// the same through the admin socket, where the whole table is also
// encoded, sent and decoded (gvsadm -L -n -t VIP:PORT before and after
// GET /v1/services?service=KEY).
func BenchmarkServiceStatus(b *testing.B) {
	const n, perSvc = 10000, 4
	port := porttest.Free(b, "tcp4", netip.MustParseAddr("127.79.0.1"))
	eng := proxy.New(slog.New(slog.DiscardHandler), proxy.Options{})
	b.Cleanup(func() { eng.Close(context.Background()) })
	dir := director.New(eng, slog.New(slog.DiscardHandler))
	cmds := make([]ipvs.Command, 0, n*(1+perSvc))
	var key ipvs.ServiceKey
	for i := range n {
		s := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.AddrFrom4([4]byte{127, 79, byte(i >> 8), byte(i)}), Port: port}, Scheduler: "rr"}
		cmds = append(cmds, ipvs.Command{Op: ipvs.OpAddService, Service: &s})
		for j := range perSvc {
			d := ipvs.Dest{Addr: netip.AddrFrom4([4]byte{127, 80, 0, byte(1 + (perSvc*i+j)%64)}), Port: port, Method: ipvs.Masq, Weight: 1}
			cmds = append(cmds, ipvs.Command{Op: ipvs.OpAddDest, Service: &s, Dest: &d})
		}
		if i == n/2 {
			key = s.ServiceKey
		}
	}
	if err := dir.Exec(cmds); err != nil {
		b.Fatal(err)
	}

	b.Run("director/all", func(b *testing.B) {
		for b.Loop() {
			if len(dir.Services()) != n {
				b.Fatal("not every service")
			}
		}
	})
	b.Run("director/one", func(b *testing.B) {
		for b.Loop() {
			if _, ok := dir.Service(key); !ok {
				b.Fatal("no service")
			}
		}
	})

	srv := api.NewServer(dir, slog.New(slog.DiscardHandler), nil)
	socket := b.TempDir() + "/gvsd.sock"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Listen(ctx, socket) }()
	b.Cleanup(func() { cancel(); <-done })
	waitDial(b, socket)
	c := client.New(socket)
	b.Run("api/all", func(b *testing.B) {
		for b.Loop() {
			if all, err := c.Services(context.Background()); err != nil || len(all) != n {
				b.Fatal(len(all), err)
			}
		}
	})
	b.Run("api/one", func(b *testing.B) {
		for b.Loop() {
			if _, ok, err := c.Service(context.Background(), key); err != nil || !ok {
				b.Fatal(ok, err)
			}
		}
	})
}
