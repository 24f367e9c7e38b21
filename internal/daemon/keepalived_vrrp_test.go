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

// TestVRRPStateEvents: a running instance's state changes reach gvsd as
// they happen (no polling): the VIP counts as held once it is MASTER, and
// is released when the unit stops.
func TestVRRPStateEvents(t *testing.T) {
	vip := netip.MustParseAddr("198.18.9.100")
	ctx, cancel := context.WithCancel(context.Background())
	k := &keepalived{log: slog.New(slog.DiscardHandler), ctx: ctx, cancel: cancel,
		lvs: map[string]*lvsUnit{}, vrrp: map[string]*vrrpUnit{}, vips: map[netip.Addr]int{},
		vrrpEvents: make(chan vrrpEvent, 256)}
	k.poll.Add(1)
	go func() { defer k.poll.Done(); k.watchVRRP(ctx) }()
	t.Cleanup(func() { cancel(); k.poll.Wait() })

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

	held := func() int {
		k.mu.Lock()
		defer k.mu.Unlock()
		return k.vips[vip]
	}
	deadline := time.Now().Add(5 * time.Second)
	for held() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the VIP is not held 5 s after the start; instance is %s", inst.Status().State)
		}
		time.Sleep(5 * time.Millisecond)
	}
	k.stopVRRPUnits([]*vrrpUnit{u})
	if n := held(); n != 0 || inst.Status().State != vrrp.StateStop {
		t.Errorf("after the stop: VIP held %d times, instance %s; want 0 and STOP", n, inst.Status().State)
	}
}
