// Package realserver prepares a host to be an LVS real server for direct
// routing (DR) and tunnelling (TUN), doing what the LVS guides tell admins
// to do by hand: the virtual IP on lo as a /32 (or /128), arp_ignore=1 and
// arp_announce=2 on "all" and "lo" so the host neither answers ARP for the
// VIP nor announces it, and for TUN a small XDP program (bpf/xdp_decap.c)
// that strips IPIP, IPv6-in-IPv6, GUE and GRE headers on the given interface,
// so no ipip, fou or ip_gre kernel module is needed. Teardown puts back every
// sysctl value it changed and removes what Setup added.
package realserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Mode is the forwarding method the director uses towards this host.
type Mode string

// Modes.
const (
	DR  Mode = "dr"
	TUN Mode = "tun"
)

// Options complete Setup.
type Options struct {
	// Interface is where tunnelled packets arrive (TUN only): the decap
	// program is attached there.
	Interface string
	// GUEPorts are the UDP ports to decapsulate GUE on (TUN only).
	GUEPorts []uint16
	// Generic attaches the decap program in generic (skb) mode.
	Generic bool
	// Persist attaches the decap program to the interface itself (over
	// netlink, not as a bpf_link owned by this process), so that it stays
	// attached after this process exits, as a CLI needs; Teardown and
	// TeardownFile detach it if it is still the one Setup attached. It
	// needs no BPF file system, so it works in any network namespace.
	Persist bool
	// StateFile, when set, is where Setup records what it changed, so
	// that a later process can undo it with TeardownFile.
	StateFile string
}

// Server is a host set up as a real server.
type Server struct {
	State
	link link.Link
	objs decapObjects
}

// State is what Setup changed, as recorded in Options.StateFile.
type State struct {
	VIP      netip.Addr        `json:"vip"`
	Mode     Mode              `json:"mode"`
	AddedVIP bool              `json:"added_vip"`
	Sysctls  map[string]string `json:"sysctls"` // path -> previous value
	// Decap is the decap program Setup attached with Options.Persist.
	Decap     *PersistedDecap `json:"decap,omitempty"`
	StateFile string          `json:"state_file,omitempty"`
}

// PersistedDecap is a decap program attached to an interface over
// netlink: the interface, and the program's ID to recognise it by.
type PersistedDecap struct {
	Interface string `json:"interface"`
	ProgID    uint32 `json:"prog_id"`
	Generic   bool   `json:"generic"`
}

// sysctlRoot is where sysctls live; tests may point it elsewhere.
var sysctlRoot = "/proc/sys"

// Setup makes this host a real server for vip.
func Setup(vip netip.Addr, mode Mode, opts Options) (_ *Server, err error) {
	if mode != DR && mode != TUN {
		return nil, fmt.Errorf("real server mode %q: want dr or tun", mode)
	}
	if mode == TUN && opts.Interface == "" {
		return nil, errors.New("a TUN real server needs the interface tunnelled packets arrive on")
	}
	vip = vip.Unmap()
	s := &Server{State: State{VIP: vip, Mode: mode, Sysctls: map[string]string{}, StateFile: opts.StateFile}}
	defer func() {
		if err != nil {
			s.Teardown()
		}
	}()

	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return nil, fmt.Errorf("lo: %w", err)
	}
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: vip.AsSlice(), Mask: net.CIDRMask(vip.BitLen(), vip.BitLen())}}
	if vip.Is6() {
		// Usable at once: without NODAD an IPv6 address starts
		// tentative and a server binding to it right away fails, though
		// lo never runs duplicate address detection.
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := netlink.AddrAdd(lo, addr); err != nil {
		if !errors.Is(err, os.ErrExist) && !strings.Contains(err.Error(), "exists") {
			return nil, fmt.Errorf("adding %s to lo: %w", vip, err)
		}
	} else {
		s.AddedVIP = true
	}

	set := map[string]string{
		"net/ipv4/conf/all/arp_ignore":   "1",
		"net/ipv4/conf/all/arp_announce": "2",
		"net/ipv4/conf/lo/arp_ignore":    "1",
		"net/ipv4/conf/lo/arp_announce":  "2",
	}
	if mode == TUN {
		// The inner packet arrives on Interface with the client as source.
		set["net/ipv4/conf/all/rp_filter"] = "0"
		set["net/ipv4/conf/"+opts.Interface+"/rp_filter"] = "0"
	}
	for k, v := range set {
		if err := s.sysctl(k, v); err != nil {
			return nil, err
		}
	}

	if mode == TUN {
		if err := s.attachDecap(opts); err != nil {
			return nil, err
		}
	}
	if opts.StateFile != "" {
		b, _ := json.MarshalIndent(s.State, "", "  ")
		if err := os.MkdirAll(filepath.Dir(opts.StateFile), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(opts.StateFile, b, 0o644); err != nil {
			return nil, fmt.Errorf("recording the real server state: %w", err)
		}
	}
	return s, nil
}

func (s *Server) sysctl(path, value string) error {
	p := filepath.Join(sysctlRoot, path)
	old, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", strings.ReplaceAll(path, "/", "."), err)
	}
	if _, seen := s.Sysctls[path]; !seen {
		s.Sysctls[path] = strings.TrimSpace(string(old))
	}
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s=%s: %w", strings.ReplaceAll(path, "/", "."), value, err)
	}
	return nil
}

func (s *Server) attachDecap(opts Options) error {
	l, err := netlink.LinkByName(opts.Interface)
	if err != nil {
		return fmt.Errorf("interface %q: %w", opts.Interface, err)
	}
	if err := loadDecapObjects(&s.objs, nil); err != nil {
		return fmt.Errorf("loading the decapsulation program: %w (needs root)", err)
	}
	for _, p := range opts.GUEPorts {
		if err := s.objs.GuePorts.Update(bits.ReverseBytes16(p), uint8(1), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("GUE port %d: %w", p, err)
		}
	}
	if opts.Persist {
		return s.attachPersistent(l, opts)
	}
	flags := link.XDPDriverMode
	if opts.Generic {
		flags = link.XDPGenericMode
	}
	s.link, err = link.AttachXDP(link.XDPOptions{Program: s.objs.XdpDecap, Interface: l.Attrs().Index, Flags: flags})
	if err != nil && !opts.Generic {
		s.link, err = link.AttachXDP(link.XDPOptions{Program: s.objs.XdpDecap, Interface: l.Attrs().Index, Flags: link.XDPGenericMode})
	}
	if err != nil {
		return fmt.Errorf("attaching the decapsulation program to %s: %w", opts.Interface, err)
	}
	return nil
}

// attachPersistent attaches the decap program to l over netlink, native
// mode first unless opts.Generic, never replacing a program already there.
func (s *Server) attachPersistent(l netlink.Link, opts Options) error {
	info, err := s.objs.XdpDecap.Info()
	if err != nil {
		return fmt.Errorf("reading the decapsulation program's ID: %w", err)
	}
	id, _ := info.ID()
	attach := func(generic bool) error {
		mode := nl.XDP_FLAGS_DRV_MODE
		if generic {
			mode = nl.XDP_FLAGS_SKB_MODE
		}
		return netlink.LinkSetXdpFdWithFlags(l, s.objs.XdpDecap.FD(), nl.XDP_FLAGS_UPDATE_IF_NOEXIST|mode)
	}
	generic := opts.Generic
	err = attach(generic)
	if err != nil && !generic && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.EEXIST) {
		generic = true
		err = attach(true)
	}
	switch {
	case errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST):
		return fmt.Errorf("attaching the decapsulation program to %s: another XDP program is attached there (ip link show dev %s); detach it first", opts.Interface, opts.Interface)
	case err != nil:
		return fmt.Errorf("attaching the decapsulation program to %s: %w", opts.Interface, err)
	}
	s.Decap = &PersistedDecap{Interface: opts.Interface, ProgID: uint32(id), Generic: generic}
	return nil
}

// detach removes the persisted decap program from its interface if the
// program attached there is still the one Setup attached.
func (d *PersistedDecap) detach() error {
	l, err := netlink.LinkByName(d.Interface)
	if err != nil {
		return nil // the interface is gone, and the program with it
	}
	if x := l.Attrs().Xdp; x == nil || !x.Attached || x.ProgId != d.ProgID {
		return nil // someone else's program, or none
	}
	mode := nl.XDP_FLAGS_DRV_MODE
	if d.Generic {
		mode = nl.XDP_FLAGS_SKB_MODE
	}
	if err := netlink.LinkSetXdpFdWithFlags(l, -1, mode); err != nil {
		return fmt.Errorf("detaching the decapsulation program from %s: %w", d.Interface, err)
	}
	return nil
}

// Decapsulated is how many tunnelled packets the decap program unwrapped.
func (s *Server) Decapsulated() uint64 {
	if s.objs.Decapped == nil {
		return 0
	}
	var per []uint64
	if err := s.objs.Decapped.Lookup(uint32(0), &per); err != nil {
		return 0
	}
	var n uint64
	for _, x := range per {
		n += x
	}
	return n
}

// Teardown undoes Setup: detaches the decap program, removes the VIP if
// Setup added it, and restores every sysctl to its previous value.
func (s *Server) Teardown() error {
	var errs []error
	if s.link != nil {
		errs = append(errs, s.link.Close())
		s.link = nil
	}
	s.objs.Close()
	errs = append(errs, s.State.undo())
	return errors.Join(errs...)
}

// TeardownFile undoes what a Setup in another process recorded in
// stateFile, and removes the file.
func TeardownFile(stateFile string) error {
	b, err := os.ReadFile(stateFile)
	if err != nil {
		return fmt.Errorf("no real server state to undo: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("%s: %w", stateFile, err)
	}
	return st.undo()
}

func (st *State) undo() error {
	var errs []error
	if st.Decap != nil {
		errs = append(errs, st.Decap.detach())
		st.Decap = nil
	}
	if st.AddedVIP {
		if lo, err := netlink.LinkByName("lo"); err == nil {
			addr := &netlink.Addr{IPNet: &net.IPNet{IP: st.VIP.AsSlice(), Mask: net.CIDRMask(st.VIP.BitLen(), st.VIP.BitLen())}}
			if err := netlink.AddrDel(lo, addr); err != nil {
				errs = append(errs, fmt.Errorf("removing %s from lo: %w", st.VIP, err))
			}
		}
		st.AddedVIP = false
	}
	for path, v := range st.Sysctls {
		if err := os.WriteFile(filepath.Join(sysctlRoot, path), []byte(v), 0o644); err != nil {
			errs = append(errs, fmt.Errorf("restoring %s: %w", path, err))
		}
	}
	st.Sysctls = map[string]string{}
	if st.StateFile != "" {
		os.Remove(st.StateFile)
	}
	return errors.Join(errs...)
}

// DefaultRouteInterface is the interface of the default route of vip's
// family: where tunnelled packets for vip most likely arrive.
func DefaultRouteInterface(vip netip.Addr) (string, error) {
	family := netlink.FAMILY_V4
	if vip.Is6() {
		family = netlink.FAMILY_V6
	}
	routes, err := netlink.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return "", fmt.Errorf("listing routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		if r.LinkIndex == 0 {
			continue
		}
		l, err := netlink.LinkByIndex(r.LinkIndex)
		if err != nil {
			return "", fmt.Errorf("the default route's interface %d: %w", r.LinkIndex, err)
		}
		return l.Attrs().Name, nil
	}
	return "", errors.New("there is no default route to take the interface from")
}
