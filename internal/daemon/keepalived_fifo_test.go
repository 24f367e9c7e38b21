package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/check"
	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/plan"
	"github.com/gvs-lb/gvs/internal/script"
)

func waitFile(t *testing.T, path, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if string(b) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %q, want %q", path, b, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFIFOsOpenedReadAndSwapped: the reconciler creates the FIFOs, starts
// their readers with the FIFO's path last, writes the checkers' and
// VRRP's lines to the FIFOs that take them, keeps everything at a reload
// that changes nothing, and closes and removes them when they change.
func TestFIFOsOpenedReadAndSwapped(t *testing.T) {
	dir := t.TempDir()
	reader := filepath.Join(dir, "reader.sh")
	if err := os.WriteFile(reader, []byte("#!/bin/sh\necho \"$@\" >> \"$(dirname \"$2\")/args\"\nexec cat \"$2\" > \"$2.out\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	me := script.Credential{UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}
	lvsPath, allPath := filepath.Join(dir, "lvs.fifo"), filepath.Join(dir, "all.fifo")
	fifos := []plan.NotifyFIFO{
		{Path: allPath, Owner: me, VRRP: true, LVS: true},
		{Path: lvsPath, Owner: me, Reader: script.Cmd{Line: reader + " lvs"}, LVS: true},
	}
	k := &keepalived{log: slog.New(slog.DiscardHandler), ctx: context.Background()}
	k.applyFIFOs(fifos)
	for _, p := range []string{allPath, lvsPath} {
		if st, err := os.Stat(p); err != nil || st.Mode()&os.ModeNamedPipe == 0 {
			t.Fatalf("%s: %v, want a FIFO", p, err)
		}
	}
	u := &lvsUnit{}
	u.alerts.Store(&lvsAlerts{vs: &config.VirtualServer{}})
	svc := ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.MustParseAddr("198.18.0.10"), Port: 80}
	k.writeLVSEvent(u, check.Event{Kind: check.RealServerDown, Service: svc, RealServer: netip.MustParseAddrPort("198.18.1.11:80")})
	k.writeLVSEvent(u, check.Event{Kind: check.QuorumDown, Service: svc})
	k.vrrpFIFO.WriteLine("INSTANCE \"VI_1\" MASTER 100\n")
	lvsLines := "RS [198.18.1.11]:tcp:80 [198.18.0.10]:tcp:80 DOWN\nVS [198.18.0.10]:tcp:80 DOWN\n"
	waitFile(t, lvsPath+".out", lvsLines)

	k.applyFIFOs(append([]plan.NotifyFIFO(nil), fifos...)) // a reload that changes nothing
	if _, err := os.Stat(lvsPath); err != nil {
		t.Fatalf("an unchanged reload removed the FIFO: %v", err)
	}
	k.applyFIFOs(fifos[:1]) // lvs_notify_fifo gone
	if _, err := os.Lstat(lvsPath); !os.IsNotExist(err) {
		t.Fatalf("the dropped FIFO is still there: %v", err)
	}
	k.writeLVSEvent(u, check.Event{Kind: check.QuorumUp, Service: svc})

	// all.fifo was reopened: what it held went with the old one.
	r, err := os.OpenFile(allPath, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	buf := make([]byte, 256)
	n, _ := r.Read(buf)
	if got, want := string(buf[:n]), "VS [198.18.0.10]:tcp:80 UP\n"; got != want {
		t.Errorf("all.fifo after the reload: %q, want %q", got, want)
	}
	k.closeFIFOs()
	if _, err := os.Lstat(allPath); !os.IsNotExist(err) {
		t.Errorf("closeFIFOs left %s: %v", allPath, err)
	}
	args, _ := os.ReadFile(filepath.Join(dir, "args"))
	if got, want := string(args), "lvs "+lvsPath+"\n"; got != want {
		t.Errorf("reader ran with %q, want %q (once)", got, want)
	}
	if got, _ := os.ReadFile(lvsPath + ".out"); !strings.HasPrefix(string(got), lvsLines) {
		t.Errorf("reader read %q", got)
	}
}
