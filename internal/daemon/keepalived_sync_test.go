package daemon

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/engine/enginetest"
	"github.com/gvs-lb/gvs/internal/ipvssync"
	"github.com/gvs-lb/gvs/internal/netns/netnstest"
	"github.com/gvs-lb/gvs/internal/plan"
	"github.com/gvs-lb/gvs/internal/vrrp"
)

// logBuffer collects log lines from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// syncReconciler is a reconciler whose plan has only lvs_sync_daemon on
// ifName, following VI_1, an instance that never runs (so it is BACKUP:
// the backup daemon is wanted). Its slow retry is retry.
func syncReconciler(t *testing.T, ifName string, retry time.Duration) (*keepalived, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	inst, err := vrrp.NewInstance(vrrp.InstanceConfig{Name: "VI_1", State: vrrp.StateBackup, Interface: "lo", VRID: 7, Priority: 100,
		Version: 2, AdvertInt: time.Second},
		vrrp.Options{Logger: log, Conn: quietConn{closed: make(chan struct{})}, Host: noHost{}, Links: noHost{}})
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	close(stopped)
	ctx, cancel := context.WithCancel(context.Background())
	syncd := ipvssync.NewManager(log, enginetest.SyncEngine{EngineName: "xdp"})
	k := &keepalived{log: log, ctx: ctx, cancel: cancel, syncd: syncd,
		requests: make(chan request), vrrpEvents: make(chan vrrpEvent, 256), done: make(chan struct{}),
		lvs: map[string]*lvsUnit{}, vips: map[netip.Addr]int{}, sync: syncRole{retry: retry},
		vrrp: map[string]*vrrpUnit{"VI_1": {plan: &plan.VRRPUnit{Name: "VI_1"}, insts: []*vrrp.Instance{inst},
			last: map[*vrrp.Instance]vrrp.State{}, cancel: func() {}, done: stopped}},
		plan: &plan.Plan{Sync: &plan.SyncDaemon{Instance: "VI_1", Config: ipvssync.Config{Interface: ifName, SyncID: 7}}}}
	t.Cleanup(syncd.Close)
	return k, logs
}

// runsBackup waits (up to 5 s) for the backup daemon on ifName.
func runsBackup(syncd *ipvssync.Manager, ifName string) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if d := syncd.Daemons(); len(d) == 1 && d[0].State == ipvssync.Backup && d[0].Interface == ifName {
			return true
		}
	}
	return false
}

// TestNetnsSyncStartsOnLink: a sync daemon whose interface does not
// exist yet starts when the interface is made, woken by the netlink
// link update (its timer is an hour away), and its failure is logged
// once. It runs in a process of its own inside a new network namespace,
// since the reconciler's goroutines run on any thread.
func TestNetnsSyncStartsOnLink(t *testing.T) {
	netnstest.Require(t)
	ns := netnstest.New(t, "sync")
	cmd := ns.Cmd(os.Args[0], "-test.run=^TestSyncStartsOnLinkHelper$", "-test.v", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), "GVS_SYNC_LINK_HELPER=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestSyncStartsOnLinkHelper") {
		t.Fatalf("the helper in the namespace: %v\n%s", err, out)
	}
}

// TestSyncStartsOnLinkHelper is TestNetnsSyncStartsOnLink's process.
func TestSyncStartsOnLinkHelper(t *testing.T) {
	if os.Getenv("GVS_SYNC_LINK_HELPER") == "" {
		t.Skip("helper process of TestNetnsSyncStartsOnLink; runs only when it starts it")
	}
	k, logs := syncReconciler(t, "sync0", time.Hour)
	k.reconcileSync() // as the first plan's reconcile
	if d := k.syncd.Daemons(); len(d) != 0 {
		t.Fatalf("daemons %+v before sync0 exists, want none", d)
	}
	go k.run()
	defer k.stop()
	if out, err := exec.Command("ip", "link", "add", "sync0", "type", "veth", "peer", "name", "sync1").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	if !runsBackup(k.syncd, "sync0") {
		t.Fatalf("no backup daemon on sync0 5 s after it was made; daemons %+v; log:\n%s", k.syncd.Daemons(), logs)
	}
	const failed = `msg="lvs_sync_daemon: starting the backup sync daemon: No such device" interface=sync0`
	if n := strings.Count(logs.String(), failed); n != 1 {
		t.Errorf("the failure logged %d times, want once; log:\n%s", n, logs)
	}
}

// TestSyncRetriesOnTimer: a daemon that cannot start for a reason no
// event announces (the backup daemon gvsadm started holds its place) is
// tried again on the slow timer, with no link subscription, and starts
// once the place is free.
func TestSyncRetriesOnTimer(t *testing.T) {
	k, logs := syncReconciler(t, "lo", 10*time.Millisecond)
	if err := k.syncd.Start(ipvssync.Config{State: ipvssync.Backup, Interface: "lo", SyncID: 9}); err != nil {
		t.Skipf("cannot start a backup daemon on lo here: %v", err)
	}
	k.reconcileSync()
	if k.sync.links != nil || k.sync.again == nil {
		t.Fatalf("after %q: link subscription %v, timer %v; want none and one", ipvssync.ErrRunning, k.sync.links != nil, k.sync.again != nil)
	}
	go k.run()
	defer k.stop()
	if err := k.syncd.Stop(ipvssync.Backup); err != nil {
		t.Fatal(err)
	}
	if !runsBackup(k.syncd, "lo") {
		t.Fatalf("no backup daemon on lo after gvsadm's stopped; daemons %+v; log:\n%s", k.syncd.Daemons(), logs)
	}
	if d := k.syncd.Daemons(); d[0].SyncID != 7 {
		t.Errorf("the backup daemon has syncid %d, want lvs_sync_daemon's 7", d[0].SyncID)
	}
	if !strings.Contains(logs.String(), "Daemon has already run") {
		t.Errorf("the failure is not logged:\n%s", logs)
	}
}
