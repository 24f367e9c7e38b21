// Package fwmark reads the firewall-mark rules a user has for kernel IPVS
// (`ipvsadm -A -f MARK`, keepalived's `virtual_server fwmark N`) in the
// form iptables-save and ip6tables-save print the mangle table, and
// answers which mark a packet would get. The xdp engine sees packets
// before iptables or nftables mark them, so it classifies new
// connections by these rules itself (Entries compiles them for its BPF
// classifier).
//
// The subset read is what marks packets for IPVS: -A PREROUTING (and
// -A INPUT, which also runs before IPVS) rules with -d ADDR[/PREFIX],
// -p tcp|udp, --dport N[:M], -m multiport --dports LIST, -m comment and
// -j MARK --set-mark N or --set-xmark N/0xffffffff. MARK does not end the
// chain: as in iptables, the last matching rule's mark wins, PREROUTING's
// rules before INPUT's. Every other rule in those chains is refused with
// its file and line; other tables, other chains, chain declarations,
// COMMIT and comments are skipped.
package fwmark

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// PortRange is a destination port range, both ends included.
type PortRange struct{ Lo, Hi uint16 }

// Rule is one MARK rule.
type Rule struct {
	Pos   string        // FILE:LINE
	Proto ipvs.Protocol // 0: any protocol
	Dst   netip.Prefix  // masked; 0.0.0.0/0 or ::/0 without -d
	Ports []PortRange   // nil: any port
	Mark  uint32
	input bool // in the INPUT chain, which runs after PREROUTING
}

// Rules are the rules of both families in the order the kernel applies
// them.
type Rules struct {
	v4, v6 []Rule
	files  []string
}

// Files are where the rules were read from, "FAMILY FILE" each.
func (rs *Rules) Files() []string {
	if rs == nil {
		return nil
	}
	return rs.files
}

// Empty reports whether no rule marks anything.
func (rs *Rules) Empty() bool { return rs == nil || len(rs.v4)+len(rs.v6) == 0 }

func (rs *Rules) family(v6 bool) []Rule {
	if rs == nil {
		return nil
	}
	if v6 {
		return rs.v6
	}
	return rs.v4
}

// Load reads the IPv4 rules from path4 and the IPv6 rules from path6
// (either may be ""). The error lists every line refused, FILE:LINE each.
func Load(path4, path6 string) (*Rules, error) {
	rs := &Rules{}
	var errs []error
	for _, f := range []struct {
		path string
		v6   bool
		list *[]Rule
	}{{path4, false, &rs.v4}, {path6, true, &rs.v6}} {
		if f.path == "" {
			continue
		}
		file, err := os.Open(f.path)
		if err != nil {
			errs = append(errs, fmt.Errorf("firewall-mark rules: %w", err))
			continue
		}
		list, err := Parse(f.path, file, f.v6)
		file.Close()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*f.list = list
		fam := "IPv4"
		if f.v6 {
			fam = "IPv6"
		}
		rs.files = append(rs.files, fam+" "+f.path)
	}
	if len(errs) == 0 {
		if err := rs.checkSize(); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return rs, nil
}

// Parse reads one file of iptables-save (v6: ip6tables-save) output; name
// is its name in the errors. The rules come back in the kernel's order.
func Parse(name string, r io.Reader, v6 bool) ([]Rule, error) {
	var pre, input []Rule
	var errs []error
	table := "mangle" // a file of bare -A lines is taken as the mangle table
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		pos := fmt.Sprintf("%s:%d", name, n)
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ':' || line == "COMMIT":
			continue
		case line[0] == '*':
			table = line[1:]
			continue
		}
		words, err := split(line)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", pos, err))
			continue
		}
		if len(words) > 0 && strings.HasPrefix(words[0], "[") { // iptables-save -c counters
			words = words[1:]
		}
		if len(words) < 2 || (words[0] != "-A" && words[0] != "--append") {
			errs = append(errs, fmt.Errorf("%s: not a line of iptables-save output (want -A CHAIN ..., *mangle, :CHAIN, COMMIT or a # comment): give the output of %s -t mangle", pos, saveTool(v6)))
			continue
		}
		if table != "mangle" {
			continue
		}
		chain := words[1]
		if chain != "PREROUTING" && chain != "INPUT" {
			continue // runs after IPVS, or only where a refused jump would lead
		}
		rule, ok, err := parseRule(words[2:], v6)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %v", pos, err))
			continue
		}
		if !ok {
			continue
		}
		rule.Pos = pos
		rule.input = chain == "INPUT"
		if rule.input {
			input = append(input, rule)
		} else {
			pre = append(pre, rule)
		}
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", name, err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return append(pre, input...), nil
}

func saveTool(v6 bool) string {
	if v6 {
		return "ip6tables-save"
	}
	return "iptables-save"
}

// unsupported is the advice every refused rule ends with.
const unsupported = "mark by destination address, protocol and port only, or run gvsd --engine ipvs, which reads the kernel's marks"

// options are the options parseRule knows, read or refused.
var options = []string{"-d", "--destination", "--dst", "-p", "--protocol", "-m", "--match",
	"--dport", "--destination-port", "--dports", "--destination-ports", "--comment",
	"-s", "--source", "--src", "-i", "--in-interface", "-j", "--jump",
	"--set-mark", "--set-xmark", "--and-mark", "--or-mark", "--xor-mark"}

// parseRule reads a rule's words after -A CHAIN; ok is false for a rule
// that sets no mark (no target).
func parseRule(words []string, v6 bool) (r Rule, ok bool, err error) {
	fam := "IPv4"
	r.Dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	if v6 {
		fam = "IPv6"
		r.Dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	var target string
	var haveMark, sawProto bool
	var matches []string
	arg := func(i int, opt string) (string, error) {
		if i+1 >= len(words) || strings.HasPrefix(words[i+1], "-") && words[i+1] != "-" {
			return "", fmt.Errorf("%s needs a value", opt)
		}
		return words[i+1], nil
	}
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "!" {
			return r, false, fmt.Errorf("negation (! %s) is not supported by the xdp engine's classifier: %s", strings.Join(words[i+1:min(i+3, len(words))], " "), unsupported)
		}
		var v string
		if !slices.Contains(options, w) {
			if strings.HasPrefix(w, "-") {
				return r, false, fmt.Errorf("option %s is not supported by the xdp engine's classifier: %s", w, unsupported)
			}
			return r, false, fmt.Errorf("unexpected word %q", w)
		}
		if w != "-j" && w != "--jump" {
			if v, err = arg(i, w); err != nil {
				return r, false, err
			}
			if v == "!" {
				return r, false, fmt.Errorf("negation (%s ! ...) is not supported by the xdp engine's classifier: %s", w, unsupported)
			}
		}
		switch w {
		case "-d", "--destination", "--dst":
			p, err := parsePrefix(v)
			if err != nil {
				return r, false, fmt.Errorf("-d %s: %v", v, err)
			}
			if p.Addr().Is6() != v6 {
				return r, false, fmt.Errorf("-d %s is not an %s address: IPv4 rules go in the file of gvsd --fwmark-rules, IPv6 ones in --fwmark-rules6", v, fam)
			}
			r.Dst = p
		case "-p", "--protocol":
			switch strings.ToLower(v) {
			case "tcp", "6":
				r.Proto = ipvs.TCP
			case "udp", "17":
				r.Proto = ipvs.UDP
			case "all", "0":
				r.Proto = 0
			default:
				return r, false, fmt.Errorf("-p %s: the xdp engine serves TCP and UDP only; mark tcp or udp", v)
			}
			sawProto = true
		case "-m", "--match":
			switch v {
			case "tcp", "udp":
				if !sawProto || !strings.EqualFold(v, r.Proto.String()) {
					return r, false, fmt.Errorf("-m %s needs -p %s before it", v, v)
				}
			case "multiport", "comment":
			default:
				return r, false, fmt.Errorf("-m %s is not supported by the xdp engine's classifier: %s", v, unsupported)
			}
			matches = append(matches, v)
		case "--dport", "--destination-port":
			if r.Proto == 0 {
				return r, false, fmt.Errorf("--dport needs -p tcp or -p udp before it")
			}
			pr, err := parsePorts(v)
			if err != nil {
				return r, false, fmt.Errorf("--dport %s: %v", v, err)
			}
			r.Ports = addPorts(r.Ports, pr)
		case "--dports", "--destination-ports":
			if !slices.Contains(matches, "multiport") || r.Proto == 0 {
				return r, false, fmt.Errorf("--dports needs -p tcp or -p udp and -m multiport before it")
			}
			for _, item := range strings.Split(v, ",") {
				pr, err := parsePorts(item)
				if err != nil {
					return r, false, fmt.Errorf("--dports %s: %v", v, err)
				}
				r.Ports = addPorts(r.Ports, pr)
			}
		case "--comment":
			if !slices.Contains(matches, "comment") {
				return r, false, errors.New("--comment needs -m comment before it")
			}
		case "-s", "--source", "--src":
			return r, false, fmt.Errorf("source addresses (-s %s) are not supported by the xdp engine's classifier: %s", v, unsupported)
		case "-i", "--in-interface":
			return r, false, fmt.Errorf("interfaces (-i %s) are not supported by the xdp engine's classifier: it sees only the --interface interfaces; drop -i, or run gvsd --engine ipvs", v)
		case "-j", "--jump":
			if i+1 >= len(words) {
				return r, false, errors.New("-j needs a target")
			}
			target = words[i+1]
			i++
			if target != "MARK" {
				return r, false, fmt.Errorf("-j %s: only -j MARK is read; other targets (and jumps to other chains, which are not followed) change what later rules see: put the MARK rules themselves in PREROUTING, or run gvsd --engine ipvs", target)
			}
			continue
		case "--set-mark", "--set-xmark":
			if target != "MARK" {
				return r, false, fmt.Errorf("%s needs -j MARK before it", w)
			}
			m, err := parseMark(v)
			if err != nil {
				return r, false, fmt.Errorf("%s %s: %v", w, v, err)
			}
			r.Mark, haveMark = m, true
		case "--and-mark", "--or-mark", "--xor-mark":
			return r, false, fmt.Errorf("%s changes only some bits of the mark, which the xdp engine's classifier does not keep: use --set-mark N", w)
		}
		i++ // the option's value
	}
	if target == "" {
		return r, false, nil // counts packets, marks nothing
	}
	if !haveMark {
		return r, false, errors.New("-j MARK without --set-mark or --set-xmark: give --set-mark N")
	}
	if r.Proto == 0 && r.Ports != nil {
		return r, false, errors.New("ports need -p tcp or -p udp")
	}
	if covers(r.Ports) {
		r.Ports = nil
	}
	return r, true, nil
}

// split cuts a line into words as iptables-save quotes them: double
// quotes around a word with spaces, \" and \\ inside.
func split(line string) ([]string, error) {
	var words []string
	var b strings.Builder
	in, have := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case in && c == '\\' && i+1 < len(line):
			i++
			b.WriteByte(line[i])
		case c == '"':
			in, have = !in, true
		case !in && (c == ' ' || c == '\t'):
			if have || b.Len() > 0 {
				words = append(words, b.String())
				b.Reset()
				have = false
			}
		default:
			b.WriteByte(c)
		}
	}
	if in {
		return nil, errors.New("a quote is not closed")
	}
	if have || b.Len() > 0 {
		words = append(words, b.String())
	}
	return words, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, errors.New("not an address: give a literal address with an optional /PREFIX")
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Addr().Zone() != "" {
		return netip.Prefix{}, errors.New("not an address with a /PREFIX length (as iptables-save prints it)")
	}
	return p.Masked(), nil
}

func parsePorts(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, ":")
	if !isRange {
		hi = lo
	}
	if lo == "" {
		lo = "0"
	}
	if hi == "" {
		hi = "65535"
	}
	l, err1 := strconv.ParseUint(lo, 10, 16)
	h, err2 := strconv.ParseUint(hi, 10, 16)
	if err1 != nil || err2 != nil {
		return PortRange{}, errors.New("not a port or range: give numbers, N or N:M")
	}
	if l > h {
		return PortRange{}, fmt.Errorf("the range's first port %d is above its last %d", l, h)
	}
	if h == 0 {
		return PortRange{}, errors.New("port 0 is no port to mark: give ports 1 to 65535")
	}
	return PortRange{uint16(max(l, 1)), uint16(h)}, nil
}

func addPorts(list []PortRange, r PortRange) []PortRange {
	if list == nil {
		list = []PortRange{}
	}
	return append(list, r)
}

// covers reports whether the ranges take every port (1 to 65535): then
// the rule is one of any port.
func covers(ranges []PortRange) bool {
	for _, r := range ranges {
		if r.Lo <= 1 && r.Hi == 65535 {
			return true
		}
	}
	return false
}

func parseMark(s string) (uint32, error) {
	v, m, masked := strings.Cut(s, "/")
	mark, err := strconv.ParseUint(v, 0, 32)
	if err != nil {
		return 0, errors.New("not a mark: give a number (0x1 or 1)")
	}
	if masked {
		mask, err := strconv.ParseUint(m, 0, 32)
		if err != nil {
			return 0, errors.New("not a mask: give a number")
		}
		if mask != 0xffffffff {
			return 0, fmt.Errorf("the mask %s keeps some bits of the old mark, which the xdp engine's classifier does not keep: set the whole mark (mask 0xffffffff, or no mask)", m)
		}
	}
	return uint32(mark), nil
}

func (r *Rule) matches(proto ipvs.Protocol, dst netip.Addr, port uint16) bool {
	if r.Proto != 0 && r.Proto != proto || !r.Dst.Contains(dst) {
		return false
	}
	return r.Ports == nil || r.hasPort(port)
}

func (r *Rule) hasPort(port uint16) bool {
	for _, pr := range r.Ports {
		if pr.Lo <= port && port <= pr.Hi {
			return true
		}
	}
	return false
}

// Mark is the mark a packet to dst:port of proto leaves the mangle table
// with (0: none), as iptables gives it: every matching rule sets it, so
// the last one's stays.
func (rs *Rules) Mark(proto ipvs.Protocol, dst netip.Addr, port uint16) uint32 {
	var mark uint32
	for _, r := range rs.family(dst.Is6() && !dst.Is4In6()) {
		if r.matches(proto, dst.Unmap(), port) {
			mark = r.Mark
		}
	}
	return mark
}

// Sets reports whether some rule of the family sets mark.
func (rs *Rules) Sets(v6 bool, mark uint32) bool {
	for _, r := range rs.family(v6) {
		if r.Mark == mark {
			return true
		}
	}
	return false
}
