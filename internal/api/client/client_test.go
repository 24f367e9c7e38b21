package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/api"
	"github.com/gvs-lb/gvs/internal/api/client"
	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/director"
	"github.com/gvs-lb/gvs/internal/engine/proxy"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// serve runs the real admin API over a director and the proxy engine.
func serve(t *testing.T) *client.Client {
	t.Helper()
	eng := proxy.New(nil, proxy.Options{})
	t.Cleanup(func() { eng.Close(context.Background()) })
	log := slog.New(slog.DiscardHandler)
	srv := api.NewServer(director.New(eng, log), log, nil)
	path := filepath.Join(t.TempDir(), "gvsd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Listen(ctx, path) }()
	t.Cleanup(func() { cancel(); <-done })
	c := client.New(path)
	for range 500 {
		if _, err := c.Info(context.Background()); err == nil {
			return c
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the admin API does not answer after 5 s")
	return nil
}

func TestClient(t *testing.T) {
	ctx := context.Background()
	c := serve(t)

	info, err := c.Info(ctx)
	if err != nil || info != (wire.Info{Version: "1.2.1", ConnTabSize: 4096, Engine: "proxy"}) {
		t.Errorf("Info: %+v, %v", info, err)
	}

	// Enough services for an answer of many kilobytes.
	var cmds []ipvs.Command
	for i := range 200 {
		key := ipvs.ServiceKey{Proto: ipvs.UDP, Addr: netip.MustParseAddr("127.0.0.1"), Port: uint16(20000 + i)}
		cmds = append(cmds, ipvs.Command{Op: ipvs.OpAddService, Service: &ipvs.Service{ServiceKey: key, Scheduler: "rr"}})
	}
	if err := c.Exec(ctx, cmds); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	svcs, err := c.Services(ctx)
	if err != nil || len(svcs) != 200 || svcs[199].Port != 20199 {
		t.Errorf("Services: %d services, %v; want 200", len(svcs), err)
	}

	// A refused command comes back as ipvsadm's words and its index.
	err = c.Exec(ctx, []ipvs.Command{{Op: ipvs.OpZero}, cmds[3]})
	var ce *wire.CommandError
	if !errors.As(err, &ce) || ce.Index != 1 || ce.Msg != "Service already exists" {
		t.Errorf("Exec of an existing service: %#v, want CommandError 1 \"Service already exists\"", err)
	}

	if to, err := c.Timeouts(ctx); err != nil || to != ipvs.DefaultTimeouts {
		t.Errorf("Timeouts: %+v, %v", to, err)
	}
	if conns, err := c.Conns(ctx); err != nil || len(conns) != 0 {
		t.Errorf("Conns: %+v, %v", conns, err)
	}
	// What the server does not serve.
	if err := c.State(ctx, "nope", new(any)); err == nil || err.Error() != "gvsd answered 404 Not Found for /v1/state/nope" {
		t.Errorf("an unknown view: %v", err)
	}
	if ds, err := c.Daemons(ctx); ds != nil || err != nil {
		t.Errorf("Daemons of a gvsd without sync daemons: %v, %v; want none", ds, err)
	}
}

func TestClientNotRunning(t *testing.T) {
	_, err := client.New(filepath.Join(t.TempDir(), "none.sock")).Info(context.Background())
	if !errors.Is(err, client.ErrNotRunning) {
		t.Errorf("no socket: %v, want ErrNotRunning", err)
	}
}

// TestClientCancel: a gvsd that accepts and never answers does not hold
// the client past its context.
func TestClientCancel(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mute.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, err := client.New(path).Services(ctx); done <- err }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("got %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client ignored its context")
	}
}

// TestClientMalformedAnswer: something other than gvsd's API on the socket
// is reported, not misread.
func TestClientMalformedAnswer(t *testing.T) {
	for _, answer := range []string{"SSH-2.0-OpenSSH\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"} {
		path := filepath.Join(t.TempDir(), "other.sock")
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			fmt.Fprint(c, answer)
			c.Close()
		}()
		if _, err := client.New(path).Info(context.Background()); err == nil {
			t.Errorf("answer %q was taken for gvsd's", answer)
		}
		l.Close()
	}
}

// TestClientServicesCutShort: a table whose answer ends before its
// Content-Length, or before its JSON when the end of the connection
// delimits it, is an error, not a shorter table; bytes past the
// Content-Length are not read.
func TestClientServicesCutShort(t *testing.T) {
	const svc = `{"proto":6,"addr":"198.18.0.1","port":80,"scheduler":"rr","netmask":32,"stats":{},"rates":{},"dests":[]}`
	for _, tt := range []struct {
		answer string
		want   int // services; -1: an error
	}{
		{"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n[" + svc + "]\n", -1},
		{"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[" + svc + "," + svc[:40], -1},
		{"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[" + svc + "," + svc + "]\n", 2},
		{fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n[%s]\nnot JSON", len(svc)+3, svc), 1},
	} {
		path := filepath.Join(t.TempDir(), "gvsd.sock")
		l, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Read(make([]byte, 4096))
			fmt.Fprint(c, tt.answer)
			c.Close()
		}()
		got, err := client.New(path).Services(context.Background())
		if tt.want < 0 && err == nil || tt.want >= 0 && (err != nil || len(got) != tt.want) {
			t.Errorf("answer %q: %d services, %v; want %d", tt.answer, len(got), err, tt.want)
		}
		l.Close()
	}
}
