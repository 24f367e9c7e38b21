package daemon

import (
	"context"
	"net/netip"
	"os/exec"
	"slices"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/internal/check"
	"github.com/gvs-lb/gvs/internal/notify"
	"github.com/gvs-lb/gvs/internal/plan"
)

// notifyFIFOs are the notify FIFOs open now (notify_fifo,
// vrrp_notify_fifo, lvs_notify_fifo) and the readers gvsd started for
// them; the reconciler owns them. The VRRP instances and the checkers
// write through k.vrrpFIFO and k.lvsFIFO, which live as long as gvsd: a
// reload that changes the FIFOs swaps what those two write to.
type notifyFIFOs struct {
	want    []plan.NotifyFIFO
	open    []*notify.FIFO
	readers []*fifoReader
}

// fifoReader is a running notify_fifo_script.
type fifoReader struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// readerStop is how long a reader has to exit after SIGTERM before it is
// killed.
const readerStop = 2 * time.Second

// applyFIFOs opens the notify FIFOs of want, as keepalived does: each is
// created when missing, its reader started, then it is opened. FIFOs that
// did not change stay open and their readers keep running; when any
// changed, all are closed (those gvsd created removed) and opened again.
func (k *keepalived) applyFIFOs(want []plan.NotifyFIFO) {
	if slices.EqualFunc(k.fifos.want, want, func(a, b plan.NotifyFIFO) bool { return a.Equal(&b) }) {
		return
	}
	k.closeFIFOs()
	k.fifos.want = want
	var toVRRP, toLVS []*notify.FIFO
	for _, w := range want {
		created, err := notify.CreateFIFO(w.Path, w.Owner.UID, w.Owner.GID)
		if err != nil {
			k.log.Error("notify FIFO not written: "+err.Error(), "at", w.Pos.String())
			continue
		}
		if !w.Reader.IsZero() {
			k.fifos.readers = append(k.fifos.readers, k.startFIFOReader(w))
		}
		f, err := notify.OpenFIFO(w.Path, created, k.log)
		if err != nil {
			k.log.Error("notify FIFO not written: "+err.Error(), "at", w.Pos.String())
			continue
		}
		k.fifos.open = append(k.fifos.open, f)
		if w.VRRP {
			toVRRP = append(toVRRP, f)
		}
		if w.LVS {
			toLVS = append(toLVS, f)
		}
	}
	k.vrrpFIFO.Set(toVRRP)
	k.lvsFIFO.Set(toLVS)
}

// startFIFOReader runs w's notify_fifo_script with the FIFO's path as
// its last argument, as its user, in its own process group, with no time
// limit; it is not restarted when it exits.
func (k *keepalived) startFIFOReader(w plan.NotifyFIFO) *fifoReader {
	ctx, cancel := context.WithCancel(k.ctx)
	r := &fifoReader{cancel: cancel, done: make(chan struct{})}
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", w.Reader.Line+` "$@"`, "sh", w.Path)
	cmd.SysProcAttr = w.Reader.SysProcAttr()
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = readerStop
	log := k.log.With("notify_fifo", w.Path, "script", w.Reader.Line)
	if err := cmd.Start(); err != nil {
		log.Error("notify FIFO script not started", "error", err)
		close(r.done)
		return r
	}
	go func() {
		defer close(r.done)
		err := cmd.Wait()
		if ctx.Err() == nil {
			log.Info("notify FIFO script terminated", "exit", err)
		}
	}()
	return r
}

// closeFIFOs stops writing the notify FIFOs, removes those gvsd created,
// closes them, and ends their readers (SIGTERM to the reader's process
// group).
func (k *keepalived) closeFIFOs() {
	k.vrrpFIFO.Set(nil)
	k.lvsFIFO.Set(nil)
	for _, f := range k.fifos.open {
		f.Close()
	}
	for _, r := range k.fifos.readers {
		r.cancel()
	}
	for _, r := range k.fifos.readers {
		<-r.done
	}
	k.fifos = notifyFIFOs{}
}

// writeLVSEvent writes a checker event to the notify FIFOs, in keepalived's
// words: RS [198.18.1.11]:tcp:80 [198.18.0.10]:tcp:80 DOWN, VS
// [198.18.0.10]:tcp:80 UP. It runs in the unit's manager.
func (k *keepalived) writeLVSEvent(u *lvsUnit, ev check.Event) {
	al := u.alerts.Load()
	if al == nil {
		return
	}
	vs := al.vs
	proto := uint8(ev.Service.Proto)
	if ev.Service.IsFWMark() {
		proto = 0 // keepalived's fwmark services have no protocol
	}
	vsName := notify.VirtualServerName(vs.Group, ev.Service.FWMark,
		netip.AddrPortFrom(ev.Service.Addr, ev.Service.Port), proto)
	switch ev.Kind {
	case check.RealServerUp, check.RealServerDown:
		k.lvsFIFO.WriteLine(notify.RealServerLine(notify.ServerName(ev.RealServer, proto), vsName, ev.Kind == check.RealServerUp))
	case check.QuorumUp, check.QuorumDown:
		k.lvsFIFO.WriteLine(notify.VirtualServerLine(vsName, ev.Kind == check.QuorumUp))
	}
}
