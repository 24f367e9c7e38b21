package api_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/api"
	"github.com/gvs-lb/gvs/internal/director"
	"github.com/gvs-lb/gvs/internal/engine/proxy"
)

// serve runs a server over a real director and proxy engine on a socket
// in a new directory, and returns the socket's path once it answers.
func serve(t *testing.T, configure func(*api.Server)) (string, *api.Server) {
	t.Helper()
	eng := proxy.New(nil, proxy.Options{})
	t.Cleanup(func() { eng.Close(context.Background()) })
	srv := api.NewServer(director.New(eng, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler), nil)
	if configure != nil {
		configure(srv)
	}
	path := filepath.Join(t.TempDir(), "gvsd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Listen(ctx, path) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Listen: %v", err)
		}
	})
	waitDial(t, path)
	return path, srv
}

func waitDial(t testing.TB, path string) {
	t.Helper()
	for range 500 {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("nothing answers on %s after 5 s", path)
}

// TestSocketPrivateFromTheStart watches the socket's directory while the
// server starts under umask 0: the socket must never exist at a path
// other users can reach before its mode is 0600. Binding it in place and
// chmod'ing it after leaves a window in which anyone can connect.
func TestSocketPrivateFromTheStart(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO); err != nil {
		t.Fatal(err)
	}

	eng := proxy.New(nil, proxy.Options{})
	defer eng.Close(context.Background())
	srv := api.NewServer(director.New(eng, slog.New(slog.DiscardHandler)), slog.New(slog.DiscardHandler), nil)
	path := filepath.Join(dir, "gvsd.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Listen(ctx, path) }()
	defer func() { cancel(); <-done }()
	waitDial(t, path)

	buf := make([]byte, 64<<10)
	n, err := unix.Read(fd, buf)
	if err != nil {
		t.Fatalf("reading inotify events: %v", err)
	}
	var events []string
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
		off += unix.SizeofInotifyEvent + int(ev.Len)
		switch {
		case ev.Mask&unix.IN_CREATE != 0 && ev.Mask&unix.IN_ISDIR != 0:
			events = append(events, "mkdir "+name)
		case ev.Mask&unix.IN_CREATE != 0:
			events = append(events, "create "+name)
			if name == "gvsd.sock" {
				t.Errorf("the socket was bound in place under umask 0: reachable by anyone until its mode is set")
			}
		case ev.Mask&unix.IN_MOVED_TO != 0:
			events = append(events, "rename to "+name)
		}
	}
	t.Logf("events in the socket's directory: %v", events)

	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with mode 0600", fi.Mode())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the socket's directory holds %v, want only gvsd.sock", names)
	}
}

// TestSocketReplacesStale: a socket file left by a gvsd that died is
// replaced; a live one is not.
func TestSocketReplacesStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gvsd.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // a stale socket: the file stays, nobody answers

	srv := api.NewServer(nil, slog.New(slog.DiscardHandler), nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Listen(ctx, path) }()
	waitDial(t, path)

	err = api.NewServer(nil, slog.New(slog.DiscardHandler), nil).Listen(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "another gvsd is already listening there") {
		t.Errorf("a second server on a live socket: %v, want it refused", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Listen: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the socket is left behind after the server stopped: %v", err)
	}
}

// TestIdleConnectionsAreClosed: a kept-alive connection that sends no
// further request, and one that never finishes its headers or its body,
// are closed by the server.
func TestIdleConnectionsAreClosed(t *testing.T) {
	short := api.Timeouts{ReadHeader: 100 * time.Millisecond, Read: 200 * time.Millisecond, Idle: 100 * time.Millisecond}
	path, _ := serve(t, func(s *api.Server) { s.SetTimeouts(short) })

	for _, tc := range []struct {
		name    string
		request string // written once; then the client goes quiet
	}{
		{"idle after a request", "GET /v1/timeouts HTTP/1.1\r\nHost: gvsd\r\n\r\n"},
		{"headers never finished", "GET /v1/timeouts HTTP/1.1\r\nHost: gv"},
		{"body never finished", "POST /v1/commands HTTP/1.1\r\nHost: gvsd\r\nContent-Length: 100\r\n\r\n[{\"op\":"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.request); err != nil {
				t.Fatal(err)
			}
			// The test's own limit: far above the server's timeouts.
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			r := bufio.NewReader(c)
			if strings.HasSuffix(tc.request, "\r\n\r\n") && strings.HasPrefix(tc.request, "GET") {
				resp, err := http.ReadResponse(r, nil)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			_, err = io.Copy(io.Discard, r)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the server kept the connection open")
			}
		})
	}
}
