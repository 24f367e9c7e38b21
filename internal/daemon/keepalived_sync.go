package daemon

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/gvs-lb/gvs/internal/ipvssync"
	"github.com/gvs-lb/gvs/internal/vrrp"
)

// syncRole is lvs_sync_daemon's state in the reconciler.
type syncRole struct {
	running *ipvssync.Config // the daemon the reconciler started
	warned  string           // the last error logged, not repeated
	// links wakes the reconciler on the host's link and address changes
	// while a daemon waits for its interface (ipvssync.NeedsLink); nil
	// otherwise.
	links *linkEvents
	// retry is how soon a daemon that failed for another reason (or
	// whose wait for links could not be subscribed) is tried again: no
	// event announces that, say, a daemon gvsadm started was stopped.
	retry time.Duration
	again <-chan time.Time // that retry, nil when none is due
}

// syncRetry is syncRole.retry: slow, as nothing but a timer can find
// out what it waits for.
const syncRetry = 10 * time.Second

// linkChanged is the reconciler's wake-up from links, nil when it has none.
func (r *syncRole) linkChanged() <-chan struct{} {
	if r.links == nil {
		return nil
	}
	return r.links.C
}

// stopLinks ends the wait for links, if any.
func (r *syncRole) stopLinks() {
	if r.links != nil {
		r.links.close()
		r.links = nil
	}
}

// reconcileSync keeps the sync daemon of lvs_sync_daemon in step with
// its VRRP instance, as keepalived does: the master daemon while the
// instance is MASTER, the backup daemon otherwise (the backup first
// stopped before the master starts, and the other way round). The
// reconciler calls it when the plan or a VRRP state changed, and when a
// daemon that could not start may start now: for want of its interface
// (missing, down, without an address), on the next netlink link or
// address update; for any other reason, after retry.
func (k *keepalived) reconcileSync() {
	if k.syncd == nil {
		return
	}
	r := &k.sync
	r.again = nil
	want, err := k.syncWanted()
	switch {
	case err != nil:
		r.stopLinks()
		k.warnSync("lvs_sync_daemon: " + err.Error())
	case want == nil || r.running == nil || *want != *r.running:
		k.stopSync()
		if want == nil {
			r.stopLinks()
			break
		}
		k.startSync(*want)
	}
}

// startSync starts the daemon want, or arranges for the event that may
// let it start to call reconcileSync again.
func (k *keepalived) startSync(want ipvssync.Config) {
	r := &k.sync
	err := k.syncd.Start(want)
	if err != nil && ipvssync.NeedsLink(err) && (r.links == nil || r.links.lost.Load()) {
		// Subscribe, then try again: a change between the failure and
		// the subscription would wake no one.
		r.stopLinks()
		links, serr := watchLinkEvents()
		if serr != nil {
			k.log.Warn("lvs_sync_daemon: cannot follow link changes; trying the sync daemon again on a timer", "err", serr, "retry_in", r.retry)
		} else {
			r.links = links
			err = k.syncd.Start(want)
		}
	}
	if err == nil {
		r.stopLinks()
		r.running, r.warned = &want, ""
		return
	}
	k.warnSync("lvs_sync_daemon: starting the "+want.State+" sync daemon: "+err.Error(), "interface", want.Interface)
	if !ipvssync.NeedsLink(err) || r.links == nil {
		r.stopLinks()
		r.again = time.After(r.retry)
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

// linkEvents wakes its reader on every netlink link and address update
// of gvsd's network namespace, coalesced: one pending wake-up at most.
// A subscription that ends (the kernel dropped messages) sets lost and
// wakes it too, so that the reader subscribes again.
type linkEvents struct {
	C    chan struct{}
	lost atomic.Bool
	done chan struct{}
	wg   sync.WaitGroup
}

func watchLinkEvents() (*linkEvents, error) {
	e := &linkEvents{C: make(chan struct{}, 1), done: make(chan struct{})}
	links := make(chan netlink.LinkUpdate, 16)
	if err := netlink.LinkSubscribe(links, e.done); err != nil {
		close(e.done)
		return nil, fmt.Errorf("subscribe to link updates: %w", err)
	}
	e.wg.Add(1)
	go forwardEvents(e, links)
	addrs := make(chan netlink.AddrUpdate, 16)
	if err := netlink.AddrSubscribe(addrs, e.done); err != nil {
		e.close()
		return nil, fmt.Errorf("subscribe to address updates: %w", err)
	}
	e.wg.Add(1)
	go forwardEvents(e, addrs)
	return e, nil
}

func forwardEvents[T any](e *linkEvents, updates <-chan T) {
	defer e.wg.Done()
	for range updates { // until the library closes it
		e.wake()
	}
	e.lost.Store(true)
	e.wake()
}

func (e *linkEvents) wake() {
	select {
	case e.C <- struct{}{}:
	default:
	}
}

// close ends the subscriptions and waits for their goroutines.
func (e *linkEvents) close() {
	close(e.done)
	e.wg.Wait()
}
