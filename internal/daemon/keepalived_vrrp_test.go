package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/plan"
	"github.com/gvs-lb/gvs/internal/vrrp"
)

// quietConn is a VRRP connection on an empty LAN: adverts go nowhere,
// nothing arrives until it is closed.
type quietConn struct{ closed chan struct{} }

func (c quietConn) WriteAdvert([]byte, netip.Addr) error { return nil }
func (c quietConn) ReadAdvert() (vrrp.Received, error) {
	<-c.closed
	return vrrp.Received{}, errors.New("closed")
}
func (c quietConn) Close() error {
	select {
	case <-c.closed:
	default:
		close(c.closed)
	}
	return nil
}

// noHost leaves the kernel alone; its links are always up.
type noHost struct{}

func (noHost) AddVIPs([]vrrp.VIP) error      { return nil }
func (noHost) DelVIPs([]vrrp.VIP) error      { return nil }
func (noHost) Gratuitous([]vrrp.VIP) error   { return nil }
func (noHost) Close() error                  { return nil }
func (noHost) Up(string) bool                { return true }
func (noHost) Notify(chan<- struct{}) func() { return func() {} }

// TestVRRPStateEvents: a running instance's state changes reach the
// reconciler as they happen (no polling): the VIP counts as held once it
// is MASTER, and is released when the unit stops. The test plays the
// reconciler's part, taking the events from its channel.
func TestVRRPStateEvents(t *testing.T) {
	vip := netip.MustParseAddr("198.18.9.100")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	k := &keepalived{log: slog.New(slog.DiscardHandler), ctx: ctx, cancel: cancel,
		lvs: map[string]*lvsUnit{}, vrrp: map[string]*vrrpUnit{}, vips: map[netip.Addr]int{},
		vrrpEvents: make(chan vrrpEvent, 256)}

	// priority 255: the address owner is MASTER at once
	inst, err := vrrp.NewInstance(vrrp.InstanceConfig{Name: "VI_1", State: vrrp.StateBackup, Interface: "lo", VRID: 61, Priority: 255,
		Version: 2, AdvertInt: time.Second,
		MCastSrcIP: netip.MustParseAddr("198.18.9.1"), VIPs: []vrrp.VIP{{Prefix: netip.PrefixFrom(vip, 32)}}},
		vrrp.Options{Logger: k.log, Conn: quietConn{closed: make(chan struct{})}, Host: noHost{}, Links: noHost{}})
	if err != nil {
		t.Fatal(err)
	}
	u := &vrrpUnit{plan: &plan.VRRPUnit{Name: "VI_1", Blocks: []*config.VRRPInstance{{Name: "VI_1"}}},
		insts: []*vrrp.Instance{inst}, last: map[*vrrp.Instance]vrrp.State{}, done: make(chan struct{})}
	k.vrrp[u.plan.Name] = u
	k.startVRRPUnit(u)

	timeout := time.After(5 * time.Second)
	for k.vips[vip] != 1 {
		select {
		case ev := <-k.vrrpEvents:
			k.vrrpChanged(ev)
		case <-timeout:
			t.Fatalf("the VIP is not held 5 s after the start; instance is %s", inst.Status().State)
		}
	}
	if u.last[inst] != vrrp.StateMaster {
		t.Errorf("the reconciler was told %s, want MASTER", u.last[inst])
	}
	k.stopVRRPUnits([]*vrrpUnit{u})
	if n := k.vips[vip]; n != 0 || inst.Status().State != vrrp.StateStop {
		t.Errorf("after the stop: VIP held %d times, instance %s; want 0 and STOP", n, inst.Status().State)
	}
	// The STOP change, if it was queued, is ignored: the stop accounted for it.
	for len(k.vrrpEvents) > 0 {
		k.vrrpChanged(<-k.vrrpEvents)
	}
	if n := k.vips[vip]; n != 0 {
		t.Errorf("after the stopped unit's late changes: VIP held %d times, want 0", n)
	}
}
