package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/engine/xdp"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// serveXDPDirector runs the xdp engine in a helper process (inside the
// director's namespace) and serves a small control API on the unix socket
// sock until ctx ends: POST /apply takes an ipvs.Snapshot, GET /status,
// /conns, /entries and /drops return the engine's view as JSON.
func serveXDPDirector(t *testing.T, ctx context.Context, log *slog.Logger, opts xdp.Options, sock string) {
	e, err := xdp.New(log, opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /apply", func(w http.ResponseWriter, r *http.Request) {
		var s ipvs.Snapshot
		if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := engine.ApplySnapshot(e, &s); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(e.Status()) })
	mux.HandleFunc("GET /conns", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(e.Conns()) })
	mux.HandleFunc("GET /entries", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(e.ConnEntries()) })
	mux.HandleFunc("GET /drops", func(w http.ResponseWriter, r *http.Request) { json.NewEncoder(w).Encode(e.Drops()) })
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	go hs.Serve(ln)
	<-ctx.Done()
	hs.Close()
	log.Info("drops", "reasons", e.Drops())
	cctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	e.Close(cctx)
}

// startXDPDirector starts the test binary's helper test in the director's
// namespace with env's ROLE=director and SOCK set (env is the prefix of the
// helper's variables, e.g. GVS_XDP), and returns the process and a client
// for its control socket once it answers.
func startXDPDirector(t *testing.T, dir *netnstest.NS, env, helper string) (*netnstest.Proc, *directorCtl) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "director.sock")
	t.Setenv(env+"_ROLE", "director")
	t.Setenv(env+"_SOCK", sock)
	p := dir.Start(os.Args[0], "-test.run=^"+helper+"$", "-test.v")
	os.Unsetenv(env + "_ROLE")
	return p, dialDirector(t, sock)
}

// directorCtl is the test's side of serveXDPDirector's control socket.
type directorCtl struct {
	c *http.Client
}

// dialDirector waits (up to a minute: the helper loads a BPF program)
// until the director at sock answers.
func dialDirector(t *testing.T, sock string) *directorCtl {
	t.Helper()
	d := &directorCtl{c: &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}}
	waitFor(t, 60*time.Second, "the xdp director", func() bool {
		resp, err := d.c.Get("http://director/status")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return d
}

// call sends in (if not nil) as JSON and decodes the answer into out (if
// not nil); anything but 200 OK fails the test.
func (d *directorCtl) call(t *testing.T, method, path string, in, out any) {
	t.Helper()
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://director"+path, body)
	resp, err := d.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s %s: %s", method, path, msg)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// helperRole is the role a test's helper process plays (its environment
// variable), or a skip when the test binary runs it on its own.
func helperRole(t *testing.T, env, parent string) string {
	role := os.Getenv(env)
	if role == "" {
		t.Skipf("helper process of %s; runs only when it starts it", parent)
	}
	return role
}

// fetchFrom makes n HTTP GETs from the client namespace to addr, each on
// a new connection, and returns the bodies; a failure shows the
// director's log. t is the (sub)test that fails.
func fetchFrom(t *testing.T, clientNS, addr string, n int, director *netnstest.Proc) []string {
	t.Helper()
	var got []string
	for i := range n {
		body, err := getInNS(clientNS, addr)
		if err != nil {
			t.Fatalf("GET %d from the client to %s: %v\ndirector log:\n%s", i, addr, err, director.Output())
		}
		got = append(got, body)
	}
	return got
}

// alternate fails unless every answer's first word is a or b and no two
// answers in a row share it.
func alternate(t *testing.T, seq []string, a, b string) {
	t.Helper()
	for i, s := range seq {
		name, _, _ := strings.Cut(s, " ")
		if name != a && name != b {
			t.Fatalf("answer %d is %q, want %s or %s (all: %v)", i, s, a, b, seq)
		}
		if i > 0 && strings.HasPrefix(seq[i-1]+" ", name+" ") {
			t.Fatalf("answers do not alternate: %v", seq)
		}
	}
}

// waitListening waits until a server in namespace ns accepts TCP
// connections on each of addrs (a helper process may take a while to load
// its BPF program before it listens).
func waitListening(t *testing.T, ns *netnstest.NS, addrs ...string) {
	t.Helper()
	for _, addr := range addrs {
		waitFor(t, 30*time.Second, fmt.Sprintf("a listener on %s in %s", addr, ns.Name), func() bool {
			c, err := dialInNS(ns.Name, addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		})
	}
}
