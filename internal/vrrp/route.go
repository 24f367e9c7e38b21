package vrrp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Route is one virtual_routes line: installed while the instance is
// MASTER, removed when it is not. The syntax is ip-route's, as keepalived
// takes it:
//
//	[blackhole|unreachable|prohibit|throw] [to] DST [via|gw GW] [dev IF]
//	[src ADDR] [scope SCOPE] [table T] [metric|preference|priority N]
//	[proto P] [onlink] [mtu N] [advmss N]
type Route struct {
	// Type is "" for a unicast route, else blackhole, unreachable,
	// prohibit or throw.
	Type     string
	Dst      netip.Prefix
	Via      netip.Addr
	Dev      string // empty: found by the kernel from Via, else the instance's interface
	Src      netip.Addr
	Scope    netlink.Scope
	Table    int // 0: main
	Metric   int
	Protocol int // 0: boot, as ip route
	OnLink   bool
	MTU      int
	AdvMSS   int
}

var routeTypes = map[string]int{
	"blackhole": unix.RTN_BLACKHOLE, "unreachable": unix.RTN_UNREACHABLE,
	"prohibit": unix.RTN_PROHIBIT, "throw": unix.RTN_THROW,
}

var routeScopes = map[string]netlink.Scope{
	"global": netlink.SCOPE_UNIVERSE, "universe": netlink.SCOPE_UNIVERSE, "site": netlink.SCOPE_SITE,
	"link": netlink.SCOPE_LINK, "host": netlink.SCOPE_HOST, "nowhere": netlink.SCOPE_NOWHERE,
}

var routeTables = map[string]int{"main": unix.RT_TABLE_MAIN, "local": unix.RT_TABLE_LOCAL, "default": unix.RT_TABLE_DEFAULT}

var routeProtos = map[string]int{
	"redirect": unix.RTPROT_REDIRECT, "kernel": unix.RTPROT_KERNEL, "boot": unix.RTPROT_BOOT,
	"static": unix.RTPROT_STATIC, "keepalived": 18,
}

// ParseRoute parses the words of one virtual_routes line.
func ParseRoute(words []string) (Route, error) {
	var r Route
	line := strings.Join(words, " ")
	bad := func(f string, a ...any) (Route, error) {
		return Route{}, fmt.Errorf("virtual_routes %q: "+f, append([]any{line}, a...)...)
	}
	i := 0
	if len(words) > 0 {
		if _, ok := routeTypes[words[0]]; ok {
			r.Type, i = words[0], 1
		} else if words[0] == "unicast" {
			i = 1
		}
	}
	for ; i < len(words); i++ {
		w := words[i]
		val := func() (string, bool) {
			if i+1 >= len(words) {
				return "", false
			}
			i++
			return words[i], true
		}
		num := func(max int) (int, error) {
			v, ok := val()
			if !ok {
				return 0, fmt.Errorf("%s needs a value", w)
			}
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > max {
				return 0, fmt.Errorf("%s %q: want a number 0..%d", w, v, max)
			}
			return n, nil
		}
		var err error
		switch w {
		case "to":
			v, ok := val()
			if !ok {
				return bad("to needs a destination")
			}
			if r.Dst, err = parsePrefix(v); err != nil {
				return bad("%v", err)
			}
		case "via", "gw":
			v, ok := val()
			if !ok {
				return bad("%s needs an address", w)
			}
			if r.Via, err = netip.ParseAddr(v); err != nil {
				return bad("%s %q is not an address", w, v)
			}
		case "src":
			v, ok := val()
			if !ok {
				return bad("src needs an address")
			}
			if r.Src, err = netip.ParseAddr(v); err != nil {
				return bad("src %q is not an address", v)
			}
		case "dev", "oif":
			v, ok := val()
			if !ok {
				return bad("dev needs an interface name")
			}
			r.Dev = v
		case "scope":
			v, _ := val()
			s, ok := routeScopes[v]
			if !ok {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 || n > 255 {
					return bad("scope %q: want global, site, link, host, nowhere or 0..255", v)
				}
				s = netlink.Scope(n)
			}
			r.Scope = s
		case "table":
			v, _ := val()
			t, ok := routeTables[v]
			if !ok {
				n, err := strconv.ParseUint(v, 10, 32)
				if err != nil || n == 0 {
					return bad("table %q: want main, local, default or a number", v)
				}
				t = int(n)
			}
			r.Table = t
		case "metric", "preference", "priority":
			if r.Metric, err = num(1<<31 - 1); err != nil {
				return bad("%v", err)
			}
		case "proto", "protocol":
			v, _ := val()
			p, ok := routeProtos[v]
			if !ok {
				n, err := strconv.Atoi(v)
				if err != nil || n < 0 || n > 255 {
					return bad("proto %q: want boot, static, kernel, keepalived or 0..255", v)
				}
				p = n
			}
			r.Protocol = p
		case "onlink":
			r.OnLink = true
		case "mtu":
			if r.MTU, err = num(65535); err != nil {
				return bad("%v", err)
			}
		case "advmss":
			if r.AdvMSS, err = num(65535); err != nil {
				return bad("%v", err)
			}
		case "no_track":
			// keepalived: do not fault the instance when the route goes; we
			// do not track routes at all
		default:
			if r.Dst.IsValid() {
				return bad("unknown or unsupported word %q", w)
			}
			if r.Dst, err = parsePrefix(w); err != nil {
				return bad("%v", err)
			}
		}
	}
	if !r.Dst.IsValid() {
		return bad("no destination (write: DST/LEN [via GW] [dev IF] ...)")
	}
	if r.Via.IsValid() && r.Via.Is4() != r.Dst.Addr().Is4() {
		return bad("via %s is not of the destination's address family", r.Via)
	}
	if r.Src.IsValid() && r.Src.Is4() != r.Dst.Addr().Is4() {
		return bad("src %s is not of the destination's address family", r.Src)
	}
	if r.Type != "" && (r.Via.IsValid() || r.Dev != "") {
		return bad("a %s route takes no via or dev", r.Type)
	}
	return r, nil
}

// parsePrefix reads DST/LEN, a bare address (a host route) or "default".
func parsePrefix(s string) (netip.Prefix, error) {
	switch s {
	case "default", "0/0":
		return netip.MustParsePrefix("0.0.0.0/0"), nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("destination %q is not ADDR/LEN", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("destination %q is not an address or ADDR/LEN", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// String is the route in ip-route's words; ParseRoute reads it back.
func (r Route) String() string {
	var b strings.Builder
	if r.Type != "" {
		b.WriteString(r.Type + " ")
	}
	b.WriteString(r.Dst.String())
	add := func(k string, v any) { fmt.Fprintf(&b, " %s %v", k, v) }
	if r.Via.IsValid() {
		add("via", r.Via)
	}
	if r.Dev != "" {
		add("dev", r.Dev)
	}
	if r.Src.IsValid() {
		add("src", r.Src)
	}
	if r.Scope != 0 {
		add("scope", int(r.Scope))
	}
	if r.Table != 0 {
		add("table", r.Table)
	}
	if r.Metric != 0 {
		add("metric", r.Metric)
	}
	if r.Protocol != 0 {
		add("proto", r.Protocol)
	}
	if r.OnLink {
		b.WriteString(" onlink")
	}
	if r.MTU != 0 {
		add("mtu", r.MTU)
	}
	if r.AdvMSS != 0 {
		add("advmss", r.AdvMSS)
	}
	return b.String()
}

// RouteHost is a Host that also installs virtual_routes; the Host from
// NewHost is one.
type RouteHost interface {
	// AddRoutes installs the routes; one already there is not an error.
	AddRoutes(routes []Route) error
	// DelRoutes removes the routes; one already gone is not an error.
	DelRoutes(routes []Route) error
}

func (h *netHost) route(r Route) (*netlink.Route, error) {
	nr := &netlink.Route{
		Dst:      &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), r.Dst.Addr().BitLen())},
		Scope:    r.Scope,
		Table:    r.Table,
		Priority: r.Metric,
		Protocol: netlink.RouteProtocol(r.Protocol),
		MTU:      r.MTU,
		AdvMSS:   r.AdvMSS,
		Family:   unix.AF_INET,
	}
	if r.Dst.Addr().Is6() {
		nr.Family = unix.AF_INET6
	}
	if r.Protocol == 0 {
		nr.Protocol = unix.RTPROT_BOOT
	}
	if r.Type != "" {
		nr.Type = routeTypes[r.Type]
		return nr, nil
	}
	if r.Via.IsValid() {
		nr.Gw = r.Via.AsSlice()
	}
	if r.Src.IsValid() {
		nr.Src = r.Src.AsSlice()
	}
	if r.OnLink {
		nr.Flags |= int(netlink.FLAG_ONLINK)
	}
	dev := r.Dev
	if dev == "" && !r.Via.IsValid() {
		dev = h.defDev
	}
	if dev != "" {
		l, err := h.nl.LinkByName(dev)
		if err != nil {
			return nil, fmt.Errorf("interface %s: %w", dev, err)
		}
		nr.LinkIndex = l.Attrs().Index
	}
	if !r.Via.IsValid() && r.Scope == netlink.SCOPE_UNIVERSE && r.Dst.Addr().Is4() {
		nr.Scope = netlink.SCOPE_LINK // as ip route does for a route with no gateway
	}
	return nr, nil
}

func (h *netHost) AddRoutes(routes []Route) error {
	var errs []error
	for _, r := range routes {
		nr, err := h.route(r)
		if err == nil {
			err = h.nl.RouteAdd(nr)
		}
		if err != nil && !errors.Is(err, syscall.EEXIST) {
			errs = append(errs, fmt.Errorf("add route %s: %w", r, err))
		}
	}
	return errors.Join(errs...)
}

func (h *netHost) DelRoutes(routes []Route) error {
	var errs []error
	for _, r := range routes {
		nr, err := h.route(r)
		if err == nil {
			err = h.nl.RouteDel(nr)
		}
		if err != nil && !errors.Is(err, syscall.ESRCH) && !errors.Is(err, syscall.ENODEV) {
			errs = append(errs, fmt.Errorf("remove route %s: %w", r, err))
		}
	}
	return errors.Join(errs...)
}
