package fwmark

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// MaxEntries is the most classifier entries the rules may compile to
// (the xdp engine's trie holds that many; each costs about 100 bytes of
// kernel memory, only when used).
const MaxEntries = 65536

// Entry is one entry of the xdp engine's classifier, a longest-prefix
// match on the destination under an exact protocol and port: a packet is
// looked up under its port, then, when nothing matches, under port 0,
// which holds the rules of any port. The entry's Mark is what the
// iptables rules give every packet whose longest matching entry it is
// (0: unmarked, which also overrides a port-0 entry).
type Entry struct {
	Proto ipvs.Protocol // TCP or UDP
	Port  uint16        // 0: any port
	Dst   netip.Prefix
	Mark  uint32
}

// Entries compiles the rules into the classifier's entries. Under one
// protocol and port, the longest prefix that matches a packet is
// contained in every rule's prefix that matches it, so each prefix's
// entry holds the mark of the last rule containing it: that is the last
// rule matching any address the entry is the longest match of.
func (rs *Rules) Entries() []Entry {
	var out []Entry
	for _, v6 := range []bool{false, true} {
		for _, proto := range []ipvs.Protocol{ipvs.TCP, ipvs.UDP} {
			out = appendEntries(out, rs.family(v6), proto)
		}
	}
	return out
}

func appendEntries(out []Entry, rules []Rule, proto ipvs.Protocol) []Entry {
	var mine []int // indexes into rules of this protocol's rules
	ports := map[uint16]bool{}
	for i := range rules {
		r := &rules[i]
		if r.Proto != 0 && r.Proto != proto {
			continue
		}
		mine = append(mine, i)
		for _, pr := range r.Ports {
			for p := int(pr.Lo); p <= int(pr.Hi); p++ {
				ports[uint16(p)] = true
			}
		}
	}
	if len(mine) == 0 {
		return out
	}
	// The rules that apply under a port; ports with the same rules share
	// their entries but for the port.
	cache := map[string][]Entry{}
	bucket := func(port uint16) []Entry {
		var applies []int
		var sig strings.Builder
		for _, i := range mine {
			r := &rules[i]
			if r.Ports == nil || port != 0 && r.hasPort(port) {
				applies = append(applies, i)
				sig.WriteString(strconv.Itoa(i))
				sig.WriteByte(',')
			}
		}
		if es, ok := cache[sig.String()]; ok {
			return es
		}
		es := marksByPrefix(rules, applies)
		cache[sig.String()] = es
		return es
	}
	add := func(port uint16) {
		for _, e := range bucket(port) {
			e.Proto, e.Port = proto, port
			out = append(out, e)
		}
	}
	add(0)
	sorted := make([]uint16, 0, len(ports))
	for p := range ports {
		sorted = append(sorted, p)
	}
	slices.Sort(sorted)
	for _, p := range sorted {
		add(p)
	}
	return out
}

// marksByPrefix gives each distinct prefix of the rules the mark of the
// last of them that contains it.
func marksByPrefix(rules []Rule, applies []int) []Entry {
	var es []Entry
	seen := map[netip.Prefix]bool{}
	for _, i := range applies {
		q := rules[i].Dst
		if seen[q] {
			continue
		}
		seen[q] = true
		var mark uint32
		for _, j := range applies {
			if d := rules[j].Dst; d.Bits() <= q.Bits() && d.Contains(q.Addr()) {
				mark = rules[j].Mark
			}
		}
		es = append(es, Entry{Dst: q, Mark: mark})
	}
	return es
}

// checkSize refuses rules that compile to more than MaxEntries entries,
// naming the rule with the most ports.
func (rs *Rules) checkSize() error {
	n := len(rs.Entries())
	if n <= MaxEntries {
		return nil
	}
	var widest *Rule
	most := 0
	for _, v6 := range []bool{false, true} {
		list := rs.family(v6)
		for i := range list {
			c := 0
			for _, pr := range list[i].Ports {
				c += int(pr.Hi) - int(pr.Lo) + 1
			}
			if c > most {
				widest, most = &list[i], c
			}
		}
	}
	where := "firewall-mark rules"
	if widest != nil {
		where = widest.Pos
	}
	return fmt.Errorf("%s: the rules need %d classifier entries, more than the xdp engine's %d (every port of a --dport range or --dports list takes one per destination prefix); this rule marks %d ports: mark fewer ports, or all of them (drop --dport), or run gvsd --engine ipvs", where, n, MaxEntries, most)
}
