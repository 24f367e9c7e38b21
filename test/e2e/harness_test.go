// Package e2e holds end-to-end tests: the real gvsd and gvsadm binaries,
// real servers and real clients, on loopback or in network namespaces.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/porttest"
)

// bin is the directory holding the freshly built gvsd, gvsadm (with
// gvs-realserver, which gvsadm realserver runs) and rs.
var bin string

// helperBinEnv passes bin to the helper processes the xdp tests start
// from the test binary: they use the binaries built already instead of
// building their own (seven helpers building at once on a busy machine
// took longer than the 30 s a test waits for their listeners).
const helperBinEnv = "GVS_E2E_BIN"

func TestMain(m *testing.M) {
	if dir := os.Getenv(helperBinEnv); dir != "" {
		bin = dir
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "gvs-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	build := exec.Command("go", "build", "-o", dir+"/", "../../cmd/gvsd", "../../cmd/gvsadm", "../../cmd/gvs-realserver", "../../test/rs")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the binaries:", err)
		os.Exit(1)
	}
	bin = dir
	os.Setenv(helperBinEnv, dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a running gvsd.
type daemon struct {
	socket  string
	cmd     *exec.Cmd
	log     *bytes.Buffer
	exited  chan struct{} // closed when gvsd has exited
	waitErr error         // how it exited, once exited is closed
}

// startGVSD starts gvsd with the given extra arguments and waits for its
// admin socket. The test's cleanup stops it.
func startGVSD(t *testing.T, args ...string) *daemon {
	t.Helper()
	return startGVSDWith(t, nil, args...)
}

// startGVSDWith is startGVSD with wrap, when set, turning gvsd's command
// line into the one run (a shell that sets limits and execs it).
func startGVSDWith(t *testing.T, wrap func(argv []string) []string, args ...string) *daemon {
	t.Helper()
	d := &daemon{socket: filepath.Join(t.TempDir(), "gvsd.sock"), log: &bytes.Buffer{}}
	argv := append([]string{filepath.Join(bin, "gvsd"), "--socket", d.socket, "--grace", "1s"}, args...)
	if wrap != nil {
		argv = wrap(argv)
	}
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d.exited = make(chan struct{})
	go func() { d.waitErr = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(os.Interrupt)
		select {
		case <-d.exited:
		case <-time.After(5 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
		if t.Failed() {
			t.Logf("gvsd log:\n%s", d.log)
		}
	})
	waitFor(t, 5*time.Second, "gvsd's admin socket", func() bool {
		c, err := net.Dial("unix", d.socket)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return d
}

// gvsadm runs gvsadm against the daemon and returns its output; it fails
// the test when gvsadm exits non-zero.
func (d *daemon) gvsadm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := d.gvsadmErr(args...)
	if err != nil {
		t.Fatalf("gvsadm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (d *daemon) gvsadmErr(args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(bin, "gvsadm"), args...)
	cmd.Env = append(os.Environ(), "GVS_SOCKET="+d.socket)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// realServer is an HTTP server on loopback answering with its name.
type realServer struct {
	name string
	addr string
	srv  *http.Server
	ln   net.Listener
}

func startRS(t *testing.T, name, addr string) *realServer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("real server %s: %v", name, err)
	}
	rs := &realServer{name: name, addr: ln.Addr().String(), ln: ln}
	rs.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d, err := time.ParseDuration(r.URL.Query().Get("hold")); err == nil {
			time.Sleep(d)
		}
		w.Header().Set("X-Client", r.RemoteAddr)
		io.WriteString(w, name)
	})}
	go rs.srv.Serve(ln)
	t.Cleanup(rs.stop)
	return rs
}

func (rs *realServer) stop() { rs.srv.Close() }

// port is the real server's port as a string.
func (rs *realServer) port() string { _, p, _ := net.SplitHostPort(rs.addr); return p }

// get fetches url on a new connection (from the local address src when
// set) and returns the body.
func get(t *testing.T, url, src string) string {
	t.Helper()
	body, err := tryGet(url, src)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return body
}

func tryGet(url, src string) (string, error) {
	dialer := &net.Dialer{Timeout: 2 * time.Second}
	if src != "" {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, DialContext: dialer.DialContext}}
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	for !ok() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// exitCode is the exit status of a command that ran to its end with err:
// 0 when err is nil; any other error (the command did not run) is fatal.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// freePort returns a TCP port free on 127.0.0.1 (and likely on other
// loopback addresses), out of the way of ports given to port-0 sockets.
func freePort(t *testing.T) string {
	t.Helper()
	return strconv.Itoa(int(porttest.Free(t, "tcp", netip.MustParseAddr("127.0.0.1"))))
}
