package check

import (
	"context"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// TestSNIName: SSL_GET sends sni_name as the TLS server name, else the
// virtualhost with enable_sni, else none.
func TestSNIName(t *testing.T) {
	srv := newWebServer(t, true)
	for _, tt := range []struct {
		name    string
		enable  bool
		sniName string
		virtual string
		wantSNI string
	}{
		{name: "none", virtual: "vh.example.org"},
		{name: "enable_sni: the virtualhost", enable: true, virtual: "vh.example.org", wantSNI: "vh.example.org"},
		{name: "sni_name", enable: true, virtual: "vh.example.org", sniName: "sni.example.org", wantSNI: "sni.example.org"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := spec(SSL)
			s.URLs = []URL{{Path: "/", Status: ok2xx}}
			s.EnableSNI, s.SNIName, s.VirtualHost = tt.enable, tt.sniName, tt.virtual
			if got, _ := probe(t, s, srv.addr(t)); got != "" {
				t.Fatalf("check failed: %s", got)
			}
			if got, _ := srv.sni.Load().(string); got != tt.wantSNI {
				t.Errorf("server name %q, want %q", got, tt.wantSNI)
			}
		})
	}
}

// TestBindIfAndFWMark: bind_if sends the probe out of the interface named
// (an unknown one fails the check), fwmark marks it (root only).
func TestBindIfAndFWMark(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("bind_if and fwmark are Linux socket options")
	}
	srv := newTCPServer(t)
	for _, tt := range []struct {
		name    string
		bindIf  string
		mark    uint32
		root    bool
		wantErr string
	}{
		{name: "bind_if lo", bindIf: "lo", root: true},
		{name: "bind_if of no interface", bindIf: "gvsnone0", root: true, wantErr: "no such device"},
		{name: "fwmark", mark: 5, root: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && os.Geteuid() != 0 {
				if os.Getenv("CI") == "true" {
					t.Fatal("needs root (SO_BINDTODEVICE, SO_MARK), and CI runs as root")
				}
				t.Skip("needs root: SO_BINDTODEVICE and SO_MARK need CAP_NET_RAW / CAP_NET_ADMIN")
			}
			s := spec(TCP)
			s.BindIf, s.FWMark = tt.bindIf, tt.mark
			got, _ := probe(t, s, srv.addr)
			if !strings.Contains(got, tt.wantErr) || (tt.wantErr == "") != (got == "") {
				t.Fatalf("error %q, want %q", got, tt.wantErr)
			}
		})
	}
}

// countHandler counts the log records with a message.
type countHandler struct {
	msg string
	n   *atomic.Int64
}

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

// TestLogAllFailures: a failing checker logs the failure that takes the
// server down, and with log_all_failures every later one too.
func TestLogAllFailures(t *testing.T) {
	closed := newTCPServer(t)
	closed.stop()
	for _, tt := range []struct {
		name string
		all  bool
		want int64
	}{
		{"state changes only", false, 1},
		{"log_all_failures", true, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int64
			s := spec(TCP)
			s.Retry, s.LogAllFailures = 0, tt.all
			c, err := NewChecker(s, closed.addr, slog.New(countHandler{"check failed", &n}))
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				c.Attempt(context.Background())
			}
			if got := n.Load(); got != tt.want {
				t.Errorf("%d failures logged, want %d", got, tt.want)
			}
		})
	}
}
