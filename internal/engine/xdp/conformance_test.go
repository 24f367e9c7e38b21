package xdp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/engine/enginetest"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// TestConformance runs the engine contract's scenarios on
// enginetest.DRLab. The engine runs in a helper process in the director's
// namespace (its netlink lookups and attachment are per namespace) behind
// a control socket.
func TestConformance(t *testing.T) {
	enginetest.Run(t, func(t *testing.T) *enginetest.Setup {
		s, dir := enginetest.DRLab(t)
		sock := filepath.Join(t.TempDir(), "engine.sock")
		t.Setenv("GVS_XDPCONF_SOCK", sock)
		dir.Start(os.Args[0], "-test.run=^TestConformanceHelper$", "-test.v")
		os.Unsetenv("GVS_XDPCONF_SOCK")
		s.Engine = dialEngine(t, sock)
		return s
	})
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
