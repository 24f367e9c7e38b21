package daemon

import (
	"fmt"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvssync"
	"github.com/gvs-lb/gvs/internal/vrrp"
)

// syncRole is lvs_sync_daemon's state in the reconciler.
type syncRole struct {
	running *ipvssync.Config // the daemon the reconciler started
	warned  string           // the last error logged, not repeated
	retry   time.Duration    // how soon a daemon that failed to start is tried again
	again   <-chan time.Time // that retry, nil when none is due
}

// reconcileSync keeps the sync daemon of lvs_sync_daemon in step with
// its VRRP instance, as keepalived does: the master daemon while the
// instance is MASTER, the backup daemon otherwise (the backup first
// stopped before the master starts, and the other way round). The
// reconciler calls it when the plan or a VRRP state changed, and when a
// daemon that could not start is due to be tried again (the only
// timer: nothing tells gvsd that the interface it wants came up).
func (k *keepalived) reconcileSync() {
	if k.syncd == nil {
		return
	}
	r := &k.sync
	r.again = nil
	want, err := k.syncWanted()
	switch {
	case err != nil:
		k.warnSync("lvs_sync_daemon: " + err.Error())
	case want == nil || r.running == nil || *want != *r.running:
		k.stopSync()
		if want == nil {
			break
		}
		if err := k.syncd.Start(*want); err != nil {
			k.warnSync("lvs_sync_daemon: starting the "+want.State+" sync daemon: "+err.Error(), "interface", want.Interface)
			r.again = time.After(r.retry)
			break
		}
		r.running, r.warned = want, ""
	}
}

// stopSync stops the daemon the reconciler started, if any.
func (k *keepalived) stopSync() {
	if r := &k.sync; r.running != nil {
		k.syncd.Stop(r.running.State)
		r.running = nil
	}
}

// warnSync logs msg unless it was the last one logged.
func (k *keepalived) warnSync(msg string, args ...any) {
	if msg != k.sync.warned {
		k.log.Error(msg, args...)
	}
	k.sync.warned = msg
}

// syncWanted is the daemon lvs_sync_daemon wants now, or nil: its
// instance's state is the last one the instance reported.
func (k *keepalived) syncWanted() (*ipvssync.Config, error) {
	if k.plan == nil || k.plan.Sync == nil {
		return nil, nil
	}
	sd := k.plan.Sync
	for _, u := range k.vrrp {
		for _, inst := range u.insts {
			if inst.Name() != sd.Instance {
				continue
			}
			want := sd.Config
			want.State = ipvssync.Backup
			if u.last[inst] == vrrp.StateMaster {
				want.State = ipvssync.Master
			}
			return &want, nil
		}
	}
	// The plan names only instances it runs (plan.Compile checks).
	return nil, fmt.Errorf("VRRP instance %q is not running", sd.Instance)
}
