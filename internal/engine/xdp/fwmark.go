package xdp

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/gvs-lb/gvs/internal/fwmark"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Firewall-mark services. XDP runs before iptables or nftables mark a
// packet, so the program cannot read skb->mark: it classifies a new
// connection's packet by the user's MARK rules itself (internal/fwmark),
// compiled into an LPM trie (the fwm map's one slot), and prefers the
// firewall-mark service of the mark, as the kernel's
// ip_vs_service_find does; see svc_find in bpf/xdp_lb.c. Established
// connections never reach the classifier. The trie is installed only
// while a firewall-mark service exists, so without one a new connection
// pays one array lookup for it.

// fwmKey is bpf/xdp_lb.h's struct fwm_key (the program's BTF does not
// carry it: an inner map's key type is only declared there).
// TestFWMarkKeySize holds the two equal.
type fwmKey struct {
	Prefixlen uint32
	Proto     uint8
	Family    uint8
	Port      uint16 // network order
	Addr      [4]uint32
}

// SetFWMarkRules makes rs the rules that classify new connections for
// the firewall-mark services (nil: none), replacing the classifier in
// one update.
func (e *Engine) SetFWMarkRules(rs *fwmark.Rules) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fwmRules = rs
	e.fwmStale = true
	return e.syncClassifier()
}

// syncClassifier installs the classifier while a firewall-mark service
// exists and removes it otherwise, and warns of firewall-mark services
// whose mark no rule sets.
func (e *Engine) syncClassifier() error {
	var unmarked []ipvs.ServiceKey
	have := false
	for k := range e.svcs {
		if !k.IsFWMark() {
			continue
		}
		have = true
		if !e.fwmRules.Sets(k.IPv6(), k.FWMark) {
			unmarked = append(unmarked, k)
		}
	}
	warned := map[ipvs.ServiceKey]bool{}
	for _, k := range unmarked {
		warned[k] = true
		if !e.fwmWarned[k] {
			e.log.Warn("no firewall-mark rule sets this service's mark: it gets no connections; give gvsd --fwmark-rules (IPv6: --fwmark-rules6) a file of MARK rules in iptables-save form",
				"service", k.String(), "rules", e.fwmRules.Files())
		}
	}
	e.fwmWarned = warned

	want := have && !e.fwmRules.Empty()
	switch {
	case want && (!e.fwmLive || e.fwmStale):
		if err := e.putClassifier(); err != nil {
			return err
		}
		e.fwmLive, e.fwmStale = true, false
	case !want && e.fwmLive:
		if err := e.objs.Fwm.Delete(uint32(0)); err != nil {
			return fmt.Errorf("xdp engine: removing the firewall-mark classifier: %w", err)
		}
		e.fwmLive = false
	}
	return nil
}

// putClassifier builds a trie of the rules' entries and swaps it in.
func (e *Engine) putClassifier() error {
	entries := e.fwmRules.Entries()
	spec := *e.fwmSpec
	m, err := ebpf.NewMap(&spec)
	if err != nil {
		return fmt.Errorf("xdp engine: making the firewall-mark classifier: %w", err)
	}
	defer m.Close() // the fwm map keeps it
	for _, en := range entries {
		k := classifierKey(en)
		if err := m.Update(&k, en.Mark, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("xdp engine: filling the firewall-mark classifier: %w", err)
		}
	}
	if err := e.objs.Fwm.Update(uint32(0), m, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("xdp engine: installing the firewall-mark classifier: %w", err)
	}
	e.log.Info("firewall-mark classifier installed", "rules", e.fwmRules.Files(), "entries", len(entries))
	return nil
}

// classifierKey is the trie key of an entry: 32 bits of protocol,
// family and port, then the prefix.
func classifierKey(en fwmark.Entry) fwmKey {
	w, fam := addrWords(en.Dst.Addr())
	return fwmKey{Prefixlen: uint32(32 + en.Dst.Bits()), Proto: uint8(en.Proto), Family: fam, Port: be16(en.Port), Addr: w}
}

// fwmarkSvcKey is the services map's key of a firewall-mark service:
// the mark in the first address word, as svc_find builds it.
func fwmarkSvcKey(k ipvs.ServiceKey) lbSvcKey {
	_, fam := addrWords(k.Addr)
	return lbSvcKey{Addr: [4]uint32{k.FWMark}, Family: fam}
}

// fwmarkKey is the firewall-mark service of mark in the family of addr.
func fwmarkKey(mark uint32, addr netip.Addr) ipvs.ServiceKey {
	a := netip.IPv4Unspecified()
	if addr.Is6() && !addr.Is4In6() {
		a = netip.IPv6Unspecified()
	}
	return ipvs.ServiceKey{Addr: a, FWMark: mark}
}

// serviceKeyOf is the service of a services map key (adopt).
func serviceKeyOf(k lbSvcKey) ipvs.ServiceKey {
	if k.Proto == 0 {
		a := netip.IPv4Unspecified()
		if k.Family != afInet {
			a = netip.IPv6Unspecified()
		}
		return ipvs.ServiceKey{Addr: a, FWMark: k.Addr[0]}
	}
	return ipvs.ServiceKey{Proto: ipvs.Protocol(k.Proto), Addr: wordsAddr(k.Addr, k.Family), Port: be16(k.Port)}
}
