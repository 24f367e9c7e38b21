package xdp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netns"

	"github.com/gvs-lb/gvs/internal/engine/enginetest"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// The conformance topology, in namespaces each scenario makes:
//
//	client 198.18.0.100 ─┐
//	director 198.18.0.1 ─┼─ br0   VIP 198.18.0.200 on the director's eth0
//	rs1 198.18.0.11 ─────┤        and on the real servers' lo (DR)
//	rs2 198.18.0.12 ─────┘
//
// The engine runs in a helper process in the director's namespace (its
// netlink lookups and attachment are per namespace) behind a control
// socket; the real servers and the client are sockets this process opens
// inside their namespaces.
const confVIP = "198.18.0.200"

func TestConformance(t *testing.T) {
	netnstest.Require(t, "sysctl")
	enginetest.Run(t, func(t *testing.T) *enginetest.Setup {
		hub := netnstest.New(t, "hub")
		client, dir := netnstest.New(t, "cli"), netnstest.New(t, "dir")
		rs := []*netnstest.NS{netnstest.New(t, "rs1"), netnstest.New(t, "rs2")}
		netnstest.Bridge(t, hub, "br0", "eth0", client, dir, rs[0], rs[1])
		client.Addr("eth0", "198.18.0.100/24")
		dir.Addr("eth0", "198.18.0.1/24")
		dir.Addr("eth0", confVIP+"/32")
		vip := netip.MustParseAddr(confVIP)
		s := &enginetest.Setup{
			Services: []ipvs.ServiceKey{{Proto: ipvs.TCP, Addr: vip, Port: 80}, {Proto: ipvs.TCP, Addr: vip, Port: 81}},
			Dial: func(ap netip.AddrPort) (c net.Conn, err error) {
				err = inNS(client.Name, func() error {
					c, err = net.DialTimeout("tcp", ap.String(), 3*time.Second)
					return err
				})
				return c, err
			},
		}
		for i, n := range rs {
			addr := fmt.Sprintf("198.18.0.%d", 11+i)
			n.Addr("eth0", addr+"/24")
			n.Addr("lo", confVIP+"/32")
			n.Run("sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
				"net.ipv4.conf.eth0.arp_ignore=1", "net.ipv4.conf.eth0.arp_announce=2")
			name := fmt.Sprintf("RS%d", i+1)
			for _, port := range []string{"80", "81"} {
				var ln net.Listener
				if err := inNS(n.Name, func() (err error) { ln, err = net.Listen("tcp", "0.0.0.0:"+port); return err }); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				go serveNamed(ln, name)
			}
			s.Dests = append(s.Dests, ipvs.Dest{Addr: netip.MustParseAddr(addr), Port: 80, Method: ipvs.Route, Weight: 1})
			s.Names = append(s.Names, name)
		}
		sock := filepath.Join(t.TempDir(), "engine.sock")
		t.Setenv("GVS_XDPCONF_SOCK", sock)
		dir.Start(os.Args[0], "-test.run=^TestConformanceHelper$", "-test.v")
		os.Unsetenv("GVS_XDPCONF_SOCK")
		s.Engine = dialEngine(t, sock)
		return s
	})
}

// serveNamed greets each connection with name and echoes it.
func serveNamed(ln net.Listener, name string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			fmt.Fprintf(c, "%s\n", name)
			io.Copy(c, c)
		}()
	}
}

// inNS runs fn on a thread in the named namespace: sockets it opens stay
// there.
func inNS(name string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	h, err := netns.GetFromName(name)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer func() {
		// A thread that cannot go back stays locked and dies with the
		// goroutine.
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return fn()
}

// TestConformanceHelper is the engine's process for TestConformance: it
// serves the engine on GVS_XDPCONF_SOCK until killed.
func TestConformanceHelper(t *testing.T) {
	sock := os.Getenv("GVS_XDPCONF_SOCK")
	if sock == "" {
		t.Skip("helper process of TestConformance; runs only when it starts it")
	}
	e, err := New(slog.New(slog.NewTextHandler(os.Stderr, nil)), Options{Interfaces: []string{"eth0"}, Mode: "generic"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /apply", func(w http.ResponseWriter, r *http.Request) {
		var batch []ipvs.Command
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := e.Apply(batch); err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
		}
	})
	mux.HandleFunc("POST /zero", func(w http.ResponseWriter, r *http.Request) {
		var k *ipvs.ServiceKey
		json.NewDecoder(r.Body).Decode(&k)
		e.Zero(k)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(e.Status()) })
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	http.Serve(ln, mux)
}

// remoteEngine is the helper's engine, through its control socket.
type remoteEngine struct {
	t *testing.T
	c *http.Client
}

func dialEngine(t *testing.T, sock string) *remoteEngine {
	t.Helper()
	e := &remoteEngine{t: t, c: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := e.c.Get("http://engine/status")
		if err == nil {
			resp.Body.Close()
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("the xdp engine's helper does not answer: %v", err)
		}
	}
}

func (e *remoteEngine) call(method, path string, in, out any) error {
	b, _ := json.Marshal(in)
	req, _ := http.NewRequest(method, "http://engine"+path, bytes.NewReader(b))
	resp, err := e.c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(bufio.NewReader(resp.Body))
		return errors.New(string(msg))
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
}

func (e *remoteEngine) Apply(batch []ipvs.Command) error { return e.call("POST", "/apply", batch, nil) }

func (e *remoteEngine) Status() []ipvs.ServiceStatus {
	var st []ipvs.ServiceStatus
	if err := e.call("GET", "/status", nil, &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

func (e *remoteEngine) Zero(k *ipvs.ServiceKey) {
	if err := e.call("POST", "/zero", k, nil); err != nil {
		e.t.Fatal(err)
	}
}
