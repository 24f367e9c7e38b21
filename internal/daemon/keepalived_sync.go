package daemon

import (
	"fmt"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvssync"
	"github.com/gvs-lb/gvs/internal/plan"
	"github.com/gvs-lb/gvs/internal/vrrp"
)

// runLVSSync keeps the sync daemon of lvs_sync_daemon in step with its
// VRRP instance, as keepalived does: the master daemon while the instance
// is MASTER, the backup daemon otherwise (the backup first stopped before
// the master starts, and the other way round). It looks again when told
// (k.wakeSync: a VRRP state change, a reload), and every retry while the
// daemon it wants could not start or its instance is not running; it
// stops what it started when keepalived stops.
func (k *keepalived) runLVSSync(m *ipvssync.Manager, retry time.Duration) {
	var running *ipvssync.Config // what this loop started
	stop := func() {
		if running != nil {
			m.Stop(running.State)
			running = nil
		}
	}
	defer stop()
	warned := ""
	warn := func(msg string, args ...any) {
		if msg != warned {
			k.log.Error(msg, args...)
		}
		warned = msg
	}
	for {
		var again <-chan time.Time
		want, err := k.lvsSyncWanted()
		switch {
		case err != nil:
			warn("lvs_sync_daemon: " + err.Error())
			again = time.After(retry)
		case want == nil || running == nil || *want != *running:
			stop()
			if want == nil {
				break
			}
			if err := m.Start(*want); err != nil {
				warn("lvs_sync_daemon: starting the "+want.State+" sync daemon: "+err.Error(), "interface", want.Interface)
				again = time.After(retry)
				break
			}
			running, warned = want, ""
		}
		select {
		case <-k.ctx.Done():
			return
		case <-k.vrrpChanges:
		case <-again:
		}
	}
}

// wakeSync tells runLVSSync to look again.
func (k *keepalived) wakeSync() {
	select {
	case k.vrrpChanges <- struct{}{}:
	default: // a wake-up is pending already
	}
}

// lvsSyncWanted is the daemon lvs_sync_daemon wants now, or nil.
func (k *keepalived) lvsSyncWanted() (*ipvssync.Config, error) {
	k.mu.Lock()
	var sd *plan.SyncDaemon
	if k.plan != nil {
		sd = k.plan.Sync
	}
	var inst *vrrp.Instance
	for _, u := range k.vrrp {
		for _, in := range u.insts {
			if sd != nil && in.Name() == sd.Instance {
				inst = in
			}
		}
	}
	k.mu.Unlock()
	if sd == nil {
		return nil, nil
	}
	if inst == nil {
		return nil, fmt.Errorf("VRRP instance %q is not running", sd.Instance)
	}
	want := sd.Config
	want.State = ipvssync.Backup
	if inst.Status().State == vrrp.StateMaster {
		want.State = ipvssync.Master
	}
	return &want, nil
}
