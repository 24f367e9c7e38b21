package engine

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

func key(port uint16) ipvs.ServiceKey {
	return ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.MustParseAddr("198.18.0.10"), Port: port}
}

func dest(last byte, w int32) *ipvs.Dest {
	return &ipvs.Dest{Addr: netip.AddrFrom4([4]byte{198, 18, 1, last}), Port: 80, Method: ipvs.Masq, Weight: w}
}

func TestFold(t *testing.T) {
	a, b, c := key(80), key(81), key(82)
	serving := map[ipvs.ServiceKey]ipvs.ServiceConfig{
		a: {Service: ipvs.Service{ServiceKey: a, Scheduler: "rr"}, Dests: []ipvs.Dest{*dest(2, 1), *dest(1, 1)}},
		b: {Service: ipvs.Service{ServiceKey: b, Scheduler: "rr"}},
	}
	cur := func(k ipvs.ServiceKey) (ipvs.ServiceConfig, bool) { sc, ok := serving[k]; return sc, ok }
	on := func(k ipvs.ServiceKey) *ipvs.Service { return &ipvs.Service{ServiceKey: k} }
	to := ipvs.Timeouts{TCP: 1, TCPFin: 2, UDP: 3}
	p, err := Fold([]ipvs.Command{
		{Op: ipvs.OpAddDest, Service: on(a), Dest: dest(3, 1)},
		{Op: ipvs.OpEditDest, Service: on(a), Dest: dest(1, 0)},
		{Op: ipvs.OpDelDest, Service: on(a), Dest: dest(2, 0)},
		{Op: ipvs.OpAddService, Service: &ipvs.Service{ServiceKey: c, Scheduler: "wlc"}},
		{Op: ipvs.OpDelService, Service: on(b)},
		{Op: ipvs.OpAddService, Service: &ipvs.Service{ServiceKey: b, Scheduler: "sh"}},
		{Op: ipvs.OpSetTimeout, Timeouts: &to},
	}, cur)
	if err != nil {
		t.Fatal(err)
	}
	want := &Plan{
		Updates: []*Update{
			{Key: a, Existed: true, Config: &ipvs.ServiceConfig{Service: ipvs.Service{ServiceKey: a, Scheduler: "rr"}, Dests: []ipvs.Dest{*dest(3, 1), *dest(1, 0)}}},
			{Key: c, Config: &ipvs.ServiceConfig{Service: ipvs.Service{ServiceKey: c, Scheduler: "wlc"}}},
			{Key: b, Existed: true, Recreated: true, Config: &ipvs.ServiceConfig{Service: ipvs.Service{ServiceKey: b, Scheduler: "sh"}}},
		},
		Added:    []ipvs.ServiceKey{c, b},
		Timeouts: &to,
	}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("Fold gave %+v, want %+v", p, want)
	}
	if len(serving[a].Dests) != 2 || serving[a].Dests[0] != *dest(2, 1) {
		t.Fatalf("Fold changed the engine's configuration: %+v", serving[a])
	}
}

func TestFoldRefuses(t *testing.T) {
	a := key(80)
	cur := func(k ipvs.ServiceKey) (ipvs.ServiceConfig, bool) {
		if k == a {
			return ipvs.ServiceConfig{Service: ipvs.Service{ServiceKey: a}, Dests: []ipvs.Dest{*dest(1, 1)}}, true
		}
		return ipvs.ServiceConfig{}, false
	}
	on := func(k ipvs.ServiceKey) *ipvs.Service { return &ipvs.Service{ServiceKey: k} }
	for _, tc := range []struct {
		c    ipvs.Command
		want error
	}{
		{ipvs.Command{Op: ipvs.OpAddService, Service: on(a)}, ipvs.ErrServiceExists},
		{ipvs.Command{Op: ipvs.OpEditService, Service: on(key(1))}, ipvs.ErrNoService},
		{ipvs.Command{Op: ipvs.OpDelService, Service: on(key(1))}, ipvs.ErrNoService},
		{ipvs.Command{Op: ipvs.OpAddDest, Service: on(key(1)), Dest: dest(1, 1)}, ipvs.ErrServiceNotDefined},
		{ipvs.Command{Op: ipvs.OpAddDest, Service: on(a), Dest: dest(1, 1)}, ipvs.ErrDestExists},
		{ipvs.Command{Op: ipvs.OpEditDest, Service: on(a), Dest: dest(9, 1)}, ipvs.ErrNoDest},
		{ipvs.Command{Op: ipvs.OpDelDest, Service: on(a), Dest: dest(9, 1)}, ipvs.ErrNoDest},
		{ipvs.Command{Op: ipvs.OpSetTimeout}, ipvs.ErrInvalidTimeout},
	} {
		batch := []ipvs.Command{{Op: ipvs.OpEditDest, Service: on(a), Dest: dest(1, 7)}, tc.c}
		if _, err := Fold(batch, cur); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.c.Op, err, tc.want)
		}
	}
	for _, op := range []ipvs.Op{ipvs.OpClear, ipvs.OpZero} {
		if _, err := Fold([]ipvs.Command{{Op: op, Service: on(a)}}, cur); err == nil {
			t.Errorf("Fold took %s, which is not a change", op)
		}
	}
}
