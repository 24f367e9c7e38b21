package config

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// decoder walks the statement tree into typed values, collecting errors
// and warnings.
type decoder struct {
	lx *lexer
}

func (d *decoder) errorf(n *node, format string, args ...any) {
	d.lx.errorf(n.pos, format, args...)
}

func (d *decoder) warnf(n *node, format string, args ...any) {
	d.lx.warnf(n.pos, format, args...)
}

// kaWarnf records a warning for something keepalived -t reports as a
// configuration error, although it carries on.
func (d *decoder) kaWarnf(n *node, format string, args ...any) {
	d.lx.warns = append(d.lx.warns, Warning{Pos: n.pos, Msg: fmt.Sprintf(format, args...), KeepalivedError: true})
}

// handler decodes one statement into *T.
type handler[T any] struct {
	min, max int  // number of arguments after the keyword; max -1 is any
	block    bool // the statement must have a block
	fn       func(d *decoder, n *node, t *T)
}

// table maps a block's keywords to their handlers.
type table[T any] map[string]handler[T]

// ignored lists keepalived keywords GVS reads and ignores, by block.
type ignored map[string]bool

// run decodes every statement of a block with tab.
func run[T any](d *decoder, block string, nodes []*node, tab table[T], ign ignored, t *T) {
	for _, n := range nodes {
		h, ok := tab[n.kw()]
		if !ok {
			if ign[n.kw()] {
				d.warnf(n, "%s is not supported by GVS and is ignored", n.kw())
				continue
			}
			d.unknown(n, block, keys(tab))
			continue
		}
		nargs := len(n.args) - 1
		switch {
		case nargs < h.min:
			if h.min == 1 {
				d.errorf(n, "%s needs a value", n.kw())
			} else {
				d.errorf(n, "%s needs %d values, got %d", n.kw(), h.min, nargs)
			}
			continue
		case h.max >= 0 && nargs > h.max:
			d.warnf(n, "%s: extra words %q ignored", n.kw(), strings.Join(n.args[1+h.max:], " "))
			n = &node{pos: n.pos, args: n.args[:1+h.max], block: n.block, children: n.children}
		}
		if h.block && !n.block {
			d.errorf(n, "%s needs a { ... } block", n.kw())
			continue
		}
		if !h.block && n.block {
			d.errorf(n, "%s takes no { ... } block", n.kw())
			continue
		}
		h.fn(d, n, t)
	}
}

func keys[T any](tab table[T]) []string {
	out := make([]string, 0, len(tab))
	for k := range tab {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// where tells in which block a keyword belongs, for the hint of an
// unknown keyword.
var where = map[string]string{}

// unknown reports a keyword the block does not know, with a hint: the
// block it belongs in, or the closest known keyword.
func (d *decoder) unknown(n *node, block string, known []string) {
	kw := n.kw()
	if kw == "{" {
		d.errorf(n, "block with no keyword")
		return
	}
	if home, ok := where[kw]; ok && home != block {
		d.errorf(n, "%s is not valid in %s (it belongs in %s)", kw, blockName(block), home)
		return
	}
	msg := fmt.Sprintf("unknown keyword %q in %s", kw, blockName(block))
	if best := closest(kw, known); best != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", best)
	}
	d.errorf(n, "%s", msg)
}

func blockName(b string) string {
	if b == "" {
		return "the top level"
	}
	return b
}

// closest is the known word nearest to w by edit distance, if near
// enough, or the known word w begins.
func closest(w string, known []string) string {
	lw := strings.ToLower(w)
	best, bestD := "", max(2, len(w)/3)+1
	for _, k := range known {
		lk := strings.ToLower(k)
		dist := editDistance(lw, lk)
		if len(lw) >= 4 && strings.HasPrefix(lk, lw) {
			dist = min(dist, 1)
		}
		if dist < bestD {
			best, bestD = k, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 99
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Value parsers. Each reports its own error and returns ok=false.

func (d *decoder) uint(n *node, i int, lo, hi uint64) (uint64, bool) {
	s := n.args[i]
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v < lo || v > hi {
		d.errorf(n, "%s %q is not a whole number in [%d, %d]", n.kw(), s, lo, hi)
		return 0, false
	}
	return v, true
}

func (d *decoder) int(n *node, i int, lo, hi int64) (int64, bool) {
	s := n.args[i]
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < lo || v > hi {
		d.errorf(n, "%s %q is not a whole number in [%d, %d]", n.kw(), s, lo, hi)
		return 0, false
	}
	return v, true
}

// timer is a <TIMER>: seconds, fractions allowed, microsecond resolution.
func (d *decoder) timer(n *node, i int, lo, hi float64) (time.Duration, bool) {
	s := n.args[i]
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v < lo || v > hi {
		d.errorf(n, "%s %q is not a number of seconds in [%g, %g]", n.kw(), s, lo, hi)
		return 0, false
	}
	return time.Duration(math.Round(v*1e6)) * time.Microsecond, true
}

// maxTimer is keepalived's largest timer, in seconds.
const maxTimer = 4294.967295 * 1000

// boolArg is an optional <BOOL> at args[i]; a missing value means true.
func (d *decoder) boolArg(n *node, i int) (bool, bool) {
	if len(n.args) <= i {
		return true, true
	}
	switch strings.ToLower(n.args[i]) {
	case "on", "true", "yes":
		return true, true
	case "off", "false", "no":
		return false, true
	}
	d.errorf(n, "%s %q is not a boolean (want on, off, true, false, yes or no)", n.kw(), n.args[i])
	return false, false
}

func (d *decoder) addr(n *node, i int, what string) (netip.Addr, bool) {
	s := n.args[i]
	a, err := netip.ParseAddr(s)
	if err != nil {
		d.errorf(n, "%s: %q is not an IP address", what, s)
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

func (d *decoder) port(n *node, i int, what string) (uint16, bool) {
	s := n.args[i]
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil {
		d.errorf(n, "%s: %q is not a port number in [0, 65535]", what, s)
		return 0, false
	}
	return uint16(v), true
}

// oneOf checks a word against a fixed set (case-insensitively) and returns
// the set's spelling.
func (d *decoder) oneOf(n *node, i int, what string, want ...string) (string, bool) {
	s := n.args[i]
	for _, w := range want {
		if strings.EqualFold(s, w) {
			return w, true
		}
	}
	d.errorf(n, "unknown %s %q (want %s)", what, s, orList(want))
	return "", false
}

// orList is "a, b or c".
func orList(ws []string) string {
	switch len(ws) {
	case 0:
		return ""
	case 1:
		return ws[0]
	}
	return strings.Join(ws[:len(ws)-1], ", ") + " or " + ws[len(ws)-1]
}

// Script is a command keepalived runs (notify scripts, misc_path,
// vrrp_script): the command line as written, and the optional user and
// group to run it as.
//
// Load (not Parse) resolves who runs it and whether it may run, as
// keepalived does at start and reload (see resolveScripts): UID and GID
// are the script's user, else global_defs script_user, else
// keepalived_script when that user exists, else gvsd's own; Disabled
// says why the script must not run at all. A Config from Parse alone has
// them zero.
type Script struct {
	Pos   Pos    `json:"-"`
	Cmd   string `json:"cmd"`
	User  string `json:"user,omitempty"`
	Group string `json:"group,omitempty"`

	UID      uint32 `json:"uid"`
	GID      uint32 `json:"gid"`
	Disabled string `json:"disabled,omitempty"`
}

// Args splits the command line into words; single quotes keep spaces.
func (s *Script) Args() []string {
	var out []string
	var cur strings.Builder
	in, quoted := false, false
	for _, c := range s.Cmd {
		switch {
		case c == '\'':
			quoted, in = !quoted, true
		case (c == ' ' || c == '\t') && !quoted:
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(c)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}

// script reads "<STRING>|<QUOTED-STRING> [username [:][groupname]]" from
// args[i:].
func (d *decoder) script(n *node, i int) *Script {
	s := &Script{Pos: n.pos, Cmd: n.args[i]}
	rest := n.args[i+1:]
	if len(rest) > 0 {
		s.User = rest[0]
		if u, g, ok := strings.Cut(s.User, ":"); ok {
			s.User, s.Group = u, g
		}
	}
	if len(rest) > 1 {
		s.Group = strings.TrimPrefix(rest[1], ":")
	}
	if len(rest) > 2 {
		d.warnf(n, "%s: extra words %q ignored", n.kw(), strings.Join(rest[2:], " "))
	}
	return s
}

// netmask parses a persistence granularity: a dotted IPv4 netmask or a
// prefix length.
func (d *decoder) netmask(n *node, i int) (int, bool) {
	s := n.args[i]
	if v, err := strconv.Atoi(s); err == nil && v >= 1 && v <= 128 {
		return v, true
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Is4() {
		b := a.As4()
		bits := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		ones := 0
		for bits&0x80000000 != 0 {
			ones++
			bits <<= 1
		}
		if bits == 0 && ones > 0 {
			return ones, true
		}
	}
	d.errorf(n, "%s %q is not a netmask (want a dotted mask like 255.255.255.0 or a prefix length)", n.kw(), s)
	return 0, false
}

// children is a block's statements, each a single word or a line of words
// (notification_email, group, unicast_peer, track_*).
func lines(n *node) []*node { return n.children }

func has(ws []string, w string) bool { return slices.Contains(ws, w) }
