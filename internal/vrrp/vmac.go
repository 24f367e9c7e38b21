package vrrp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// VMAC is the virtual router MAC address of RFC 5798 section 7.3:
// 00-00-5E-00-01-{VRID} for IPv4, 00-00-5E-00-02-{VRID} for IPv6.
func VMAC(vrid uint8, ipv6 bool) net.HardwareAddr {
	if ipv6 {
		return net.HardwareAddr{0, 0, 0x5e, 0, 2, vrid}
	}
	return net.HardwareAddr{0, 0, 0x5e, 0, 1, vrid}
}

// vmacIf is a macvlan interface made for use_vmac, and what was changed
// on the machine for it.
type vmacIf struct {
	ns, name, base string
	sysctls        map[string]string // path -> value before we wrote it
}

// withHandle runs f with a netlink handle in the named namespace.
func withHandle(nsName string, f func(h *netlink.Handle) error) error {
	return inNetns(nsName, func() error {
		ns, err := netns.Get()
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		defer ns.Close()
		h, err := netlink.NewHandleAt(ns)
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		defer h.Close()
		return f(h)
	})
}

// createVMAC makes the macvlan name on base with the virtual MAC, in
// private mode as keepalived does, sets it up, and sets arp_ignore=1 on
// both interfaces so that only the macvlan answers ARP for the VIPs (with
// the virtual MAC) and only base answers for base's own addresses, and
// arp_announce=2 on base so that its ARP requests never give a VIP as
// sender (which would teach neighbours base's MAC for it). For
// IPv6 the macvlan gets no address of its own but primary, base's
// link-local address, so that adverts leave it with the same source.
// A macvlan left with that name (by a crash) is replaced.
func createVMAC(nsName, base, name string, mac net.HardwareAddr, primary netip.Addr) (*vmacIf, error) {
	v := &vmacIf{ns: nsName, name: name, base: base, sysctls: map[string]string{}}
	is6 := primary.Is6()
	err := withHandle(nsName, func(h *netlink.Handle) error {
		bl, err := h.LinkByName(base)
		if err != nil {
			return fmt.Errorf("use_vmac: interface %s: %w", base, err)
		}
		if old, err := h.LinkByName(name); err == nil {
			if old.Type() != "macvlan" {
				return fmt.Errorf("use_vmac: interface %s exists and is a %s, not a macvlan (pick another vmac name)", name, old.Type())
			}
			if err := h.LinkDel(old); err != nil {
				return fmt.Errorf("use_vmac: remove stale %s: %w", name, err)
			}
		}
		mv := &netlink.Macvlan{
			LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: bl.Attrs().Index, HardwareAddr: mac},
			Mode:      netlink.MACVLAN_MODE_PRIVATE,
		}
		if err := h.LinkAdd(mv); err != nil {
			return fmt.Errorf("use_vmac: create macvlan %s on %s with MAC %s: %w", name, base, mac, err)
		}
		l, err := h.LinkByName(name)
		if err != nil {
			return fmt.Errorf("use_vmac: %s: %w", name, err)
		}
		// no addresses of its own: two routers' macvlans share the MAC,
		// so a link-local address made from it would be a duplicate
		if err := h.LinkSetIP6AddrGenMode(l, 1 /* IN6_ADDR_GEN_MODE_NONE */); err != nil {
			return fmt.Errorf("use_vmac: addr_gen_mode none on %s: %w", name, err)
		}
		for _, dev := range []string{base, name} {
			if err := v.sysctl("net/ipv4/conf/"+dev+"/arp_ignore", "1"); err != nil {
				return err
			}
		}
		// replies from a VIP may leave through base; its ARP requests
		// must not announce the VIP with base's MAC
		if err := v.sysctl("net/ipv4/conf/"+base+"/arp_announce", "2"); err != nil {
			return err
		}
		if err := h.LinkSetUp(l); err != nil {
			return fmt.Errorf("use_vmac: set %s up: %w", name, err)
		}
		if is6 {
			a := &netlink.Addr{IPNet: &net.IPNet{IP: primary.AsSlice(), Mask: net.CIDRMask(64, 128)}, Flags: unix.IFA_F_NODAD}
			if err := h.AddrAdd(l, a); err != nil {
				return fmt.Errorf("use_vmac: link-local %s on %s: %w", primary, name, err)
			}
		}
		return nil
	})
	if err != nil {
		v.remove()
		return nil, err
	}
	return v, nil
}

// sysctl writes value to /proc/sys/path, remembering the old value; it
// must run in the namespace.
func (v *vmacIf) sysctl(path, value string) error {
	full := "/proc/sys/" + path
	old, err := os.ReadFile(full)
	if err != nil {
		return fmt.Errorf("use_vmac: read %s: %w", full, err)
	}
	if _, seen := v.sysctls[path]; !seen {
		v.sysctls[path] = strings.TrimSpace(string(old))
	}
	if err := os.WriteFile(full, []byte(value), 0o644); err != nil {
		return fmt.Errorf("use_vmac: write %s: %w", full, err)
	}
	return nil
}

// remove deletes the macvlan (and the VIPs on it) and restores the
// sysctls of the base interface.
func (v *vmacIf) remove() error {
	return withHandle(v.ns, func(h *netlink.Handle) error {
		var errs []error
		if l, err := h.LinkByName(v.name); err == nil {
			if err := h.LinkDel(l); err != nil {
				errs = append(errs, fmt.Errorf("remove vmac %s: %w", v.name, err))
			}
		}
		others := false // another vmac on the same base still needs arp_ignore
		if bl, err := h.LinkByName(v.base); err == nil {
			links, _ := h.LinkList()
			for _, l := range links {
				others = others || l.Type() == "macvlan" && l.Attrs().ParentIndex == bl.Attrs().Index
			}
		}
		for path, old := range v.sysctls {
			if strings.Contains(path, "/"+v.name+"/") || others {
				continue // gone with the interface, or still needed
			}
			if err := os.WriteFile("/proc/sys/"+path, []byte(old), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("restore %s: %w", path, err))
			}
		}
		return errors.Join(errs...)
	})
}
