package xdp

// Pinning: with Options.PinPath the engine keeps what the program needs
// to go on forwarding established connections on a BPF filesystem, and a
// new engine (a restarted gvsd) takes it over:
//
//   - the maps conns, conns4 (connections, NAT reply entries included),
//     persist (persistence templates), dests (the real servers that
//     entries point at, by index), services (which service each index
//     was, so that a real server keeps its index) and generic_ifs;
//   - the XDP link of each interface (link-<name>), so the program stays
//     attached and keeps forwarding while no gvsd runs.
//
// A new engine re-uses the pinned maps when every one of them has this
// program's type, key and value sizes and size (MaxConns), and their
// layout (the Go types generated from bpf/xdp_lb.h, hashed, kept in the
// pinned one-entry map "layout") is this program's; otherwise it logs why, removes them
// and starts with empty ones. It puts its program into the pinned links
// (bpf_link_update: the cut-over is atomic) and attaches afresh where
// there is none. The real servers it finds are kept as removed ones
// (they forward their established connections and take no new ones);
// Apply puts a real server that comes back in its service at its old
// index. Close removes the pins, unless Options.KeepPinned.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// pinnedMaps are the maps a restarted engine takes over.
var pinnedMaps = []string{"conns", "conns4", "persist", "dests", "services", "generic_ifs"}

const layoutFile = "layout"

// layout names the pinned maps' key and value types, field by field: a
// change of bpf/xdp_lb.h that keeps their sizes still changes it.
func layout() string {
	h := sha256.New()
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		fmt.Fprintf(h, "%s/%d{", t.Kind(), t.Size())
		switch t.Kind() {
		case reflect.Struct:
			for i := range t.NumField() {
				f := t.Field(i)
				fmt.Fprintf(h, "%s@%d:", f.Name, f.Offset)
				walk(f.Type)
			}
		case reflect.Array:
			fmt.Fprintf(h, "%d*", t.Len())
			walk(t.Elem())
		}
		fmt.Fprint(h, "}")
	}
	for _, v := range []any{lbConnKey{}, lbConnKey4{}, lbConnVal{}, lbPersistKey{}, lbPersistVal{}, lbDestInfo{}, lbSvcKey{}, lbSvcInfo{}} {
		walk(reflect.TypeOf(v))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// checkPinDir makes dir and refuses it when it is not on a BPF
// filesystem, where pins cannot be made.
func checkPinDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("xdp engine: pin directory: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("xdp engine: pin directory: %w", err)
	}
	if st.Type != unix.BPF_FS_MAGIC {
		return fmt.Errorf("xdp engine: pin directory %s is not on a BPF filesystem; mount one (mount -t bpf bpf /sys/fs/bpf) or choose a directory under one", dir)
	}
	return nil
}

// layoutMap is the pinned "layout": one array entry holding layout(), as
// a BPF filesystem holds no regular files.
var layoutMap = &ebpf.MapSpec{Name: "gvs_layout", Type: ebpf.Array, KeySize: 4, ValueSize: 32, MaxEntries: 1}

// pinnedLayout is what the pinned layout map holds, or "" with none.
func pinnedLayout(dir string) (string, error) {
	m, err := ebpf.LoadPinnedMap(filepath.Join(dir, layoutFile), nil)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer m.Close()
	var v [32]byte
	if err := m.Lookup(uint32(0), &v); err != nil {
		return "", err
	}
	return strings.TrimRight(string(v[:]), "\x00"), nil
}

// pinLayout pins the layout map with layout().
func pinLayout(dir string) error {
	os.Remove(filepath.Join(dir, layoutFile))
	m, err := ebpf.NewMap(layoutMap)
	if err != nil {
		return err
	}
	defer m.Close()
	var v [32]byte
	copy(v[:], layout())
	if err := m.Update(uint32(0), v, ebpf.UpdateAny); err != nil {
		return err
	}
	return m.Pin(filepath.Join(dir, layoutFile))
}

// pinnedReplacements opens the maps pinned in dir when all of them fit
// spec; otherwise it says why (nil maps, a reason), or nothing when
// there are none.
func pinnedReplacements(spec *ebpf.CollectionSpec, dir string) (map[string]*ebpf.Map, string) {
	got, err := pinnedLayout(dir)
	if err != nil {
		return nil, fmt.Sprintf("layout: %v", err)
	}
	if got == "" {
		if _, err := os.Stat(filepath.Join(dir, pinnedMaps[0])); err == nil {
			return nil, "they carry no layout"
		}
		return nil, ""
	}
	if got != layout() {
		return nil, fmt.Sprintf("their layout %s is not this gvsd's %s", got, layout())
	}
	maps := map[string]*ebpf.Map{}
	closeAll := func() {
		for _, m := range maps {
			m.Close()
		}
	}
	for _, name := range pinnedMaps {
		m, err := ebpf.LoadPinnedMap(filepath.Join(dir, name), nil)
		if err != nil {
			closeAll()
			return nil, fmt.Sprintf("map %s: %v", name, err)
		}
		maps[name] = m
		if err := spec.Maps[name].Compatible(m); err != nil {
			closeAll()
			return nil, fmt.Sprintf("map %s: %v", name, err)
		}
	}
	return maps, ""
}

// mapsByName are the engine's maps that may be pinned.
func (e *Engine) mapsByName() map[string]*ebpf.Map {
	return map[string]*ebpf.Map{
		"conns": e.objs.Conns, "conns4": e.objs.Conns4, "persist": e.objs.Persist,
		"dests": e.objs.Dests, "services": e.objs.Services, "generic_ifs": e.objs.GenericIfs,
	}
}

// removePins removes what is pinned in dir (maps, links, the layout);
// a link whose pin goes and that nothing else holds detaches.
func removePins(dir string) {
	for _, name := range pinnedMaps {
		os.Remove(filepath.Join(dir, name))
	}
	os.Remove(filepath.Join(dir, layoutFile))
	links, _ := filepath.Glob(filepath.Join(dir, "link-*"))
	for _, l := range links {
		os.Remove(l)
	}
	os.Remove(dir) // only when empty
}

// pinMaps pins the maps, then the layout, unless they are the pinned
// ones.
func (e *Engine) pinMaps() error {
	if e.reused {
		return nil
	}
	for name, m := range e.mapsByName() {
		if err := m.Pin(filepath.Join(e.opts.PinPath, name)); err != nil {
			return fmt.Errorf("xdp engine: pinning map %s: %w", name, err)
		}
	}
	if err := pinLayout(e.opts.PinPath); err != nil {
		return fmt.Errorf("xdp engine: pinning the layout: %w", err)
	}
	return nil
}

func linkPin(dir, ifname string) string { return filepath.Join(dir, "link-"+ifname) }

// adoptLink puts the program into the link pinned for interface ifname
// at ifindex; false when there is none that can take it (a stale one is
// removed).
func (e *Engine) adoptLink(ifname string, ifindex int) (link.Link, bool) {
	if e.opts.PinPath == "" {
		return nil, false
	}
	path := linkPin(e.opts.PinPath, ifname)
	lk, err := link.LoadPinnedLink(path, nil)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	if err == nil {
		var info *link.Info
		if info, err = lk.Info(); err == nil {
			if x := info.XDP(); x == nil {
				err = errors.New("it is not an XDP link")
			} else if x.Ifindex != uint32(ifindex) {
				err = fmt.Errorf("it is attached to ifindex %d, the interface is %d now", x.Ifindex, ifindex)
			}
		}
		if err == nil {
			err = lk.Update(e.objs.XdpLb)
		}
		if err == nil {
			return lk, true
		}
		lk.Close()
	}
	e.log.Warn("not re-using the pinned XDP link; attaching afresh", "interface", ifname, "pin", path, "err", err)
	os.Remove(path)
	return nil, false
}

// dropStaleLinks detaches the pinned links of interfaces the engine is no
// longer given.
func (e *Engine) dropStaleLinks() {
	links, _ := filepath.Glob(filepath.Join(e.opts.PinPath, "link-*"))
	for _, p := range links {
		name := strings.TrimPrefix(filepath.Base(p), "link-")
		keep := false
		for _, i := range e.opts.Interfaces {
			keep = keep || i == name
		}
		if !keep {
			e.log.Info("detaching the pinned XDP link of an interface no longer configured", "interface", name)
			os.Remove(p)
		}
	}
}

// adopt takes over the services and real servers the pinned maps hold:
// each service becomes a retired one (its entry goes: the scheduler
// tables were the old program's) that Apply revives at its index when
// the service is configured again; each real server stays in its slot,
// out of its service, so its established connections go on.
func (e *Engine) adopt() {
	byIndex := map[uint32]*svcState{}
	var k lbSvcKey
	var info lbSvcInfo
	var keys []lbSvcKey
	it := e.objs.Services.Iterate()
	for it.Next(&k, &info) {
		keys = append(keys, k)
		if !e.svcIdx.claim(info.Index) {
			continue
		}
		sk := serviceKeyOf(k)
		s := &svcState{index: info.Index, all: map[netip.AddrPort]*destState{}, adopted: true}
		s.cfg.ServiceKey = sk
		if info.Flags&svcPersistent != 0 {
			s.cfg.Flags |= ipvs.FlagPersistent
			s.cfg.Timeout = info.Ptimeout
		}
		byIndex[info.Index] = s
		e.retired = append(e.retired, s)
	}
	for i := range keys {
		e.objs.Services.Delete(&keys[i])
	}
	n := 0
	for idx := uint32(0); idx < uint32(e.destIdx.size()); idx++ {
		var di lbDestInfo
		if e.objs.Dests.Lookup(idx, &di) != nil || di.Flags&destInUse == 0 {
			continue
		}
		s := byIndex[di.Svc]
		if s == nil && e.svcIdx.claim(di.Svc) {
			// A service the old gvsd had deleted, with connections left.
			s = &svcState{index: di.Svc, all: map[netip.AddrPort]*destState{}}
			byIndex[di.Svc] = s
			e.retired = append(e.retired, s)
		}
		if s == nil || !e.destIdx.claim(idx) {
			continue
		}
		d := &destState{index: idx, svc: s, lastWeight: di.Weight, ifindex: int(di.Ifindex), mtu: int(di.Mtu)}
		d.cfg = ipvs.Dest{Addr: wordsAddr(di.Addr, di.Family), Port: be16(di.Port), Weight: di.Weight, UThreshold: di.Uthreshold,
			Method: methodOf(di.Method), TunPort: be16(di.TunPort)}
		d.cfg.TunType, d.cfg.TunFlags = tunOf(di.TunType)
		if di.Flags&destHaveMAC != 0 {
			d.smac, d.dmac = net.HardwareAddr(slices.Clone(di.Smac[:])), net.HardwareAddr(slices.Clone(di.Dmac[:]))
		}
		s.all[d.cfg.AddrPort()] = d
		e.dests[idx] = d
		e.est[estKey{index: idx}] = &estimator{}
		e.writeDest(d) // out of its service until Apply says otherwise
		n++
	}
	e.log.Info("re-using the pinned connection table", "dir", e.opts.PinPath, "services", len(keys), "real servers", n)
}

func methodOf(m uint8) ipvs.Method {
	switch m {
	case methodNAT:
		return ipvs.Masq
	case methodFullNAT:
		return ipvs.FullNAT
	case methodTunnel:
		return ipvs.Tunnel
	}
	return ipvs.Route
}

// revive returns the service a previous gvsd served under k (see adopt),
// back in e.svcs, or nil.
func (e *Engine) revive(k ipvs.ServiceKey) *svcState {
	for i, s := range e.retired {
		if !s.adopted || s.cfg.ServiceKey != k {
			continue
		}
		e.retired = append(e.retired[:i], e.retired[i+1:]...)
		s.adopted = false
		e.svcs[k] = s
		e.est[estKey{svc: true, index: s.index}] = &estimator{}
		e.objs.Cursors.Update(s.index, uint64(0), ebpf.UpdateAny)
		return s
	}
	return nil
}
