package vrrp

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestParseRoute(t *testing.T) {
	tests := []struct {
		name string
		line string
		want Route
		err  string
	}{
		{name: "via dev src metric table", line: "198.19.5.0/24 via 198.18.1.254 dev eth0 src 198.18.1.100 metric 7 table 100",
			want: Route{Dst: netip.MustParsePrefix("198.19.5.0/24"), Via: netip.MustParseAddr("198.18.1.254"), Dev: "eth0",
				Src: netip.MustParseAddr("198.18.1.100"), Metric: 7, Table: 100}},
		{name: "to and gw", line: "to 198.19.5.0/24 gw 198.18.1.254", want: Route{Dst: netip.MustParsePrefix("198.19.5.0/24"), Via: netip.MustParseAddr("198.18.1.254")}},
		{name: "host route", line: "198.19.5.7 dev eth0 scope link", want: Route{Dst: netip.MustParsePrefix("198.19.5.7/32"), Dev: "eth0", Scope: netlink.SCOPE_LINK}},
		{name: "masked", line: "198.19.5.9/24 dev eth0", want: Route{Dst: netip.MustParsePrefix("198.19.5.0/24"), Dev: "eth0"}},
		{name: "blackhole", line: "blackhole 198.19.6.0/24", want: Route{Type: "blackhole", Dst: netip.MustParsePrefix("198.19.6.0/24")}},
		{name: "unreachable ipv6", line: "unreachable 2001:db8:9::/48 table main", want: Route{Type: "unreachable", Dst: netip.MustParsePrefix("2001:db8:9::/48"), Table: 254}},
		{name: "proto onlink mtu", line: "198.19.5.0/24 via 198.18.1.254 proto static onlink mtu 1400 advmss 1360 no_track",
			want: Route{Dst: netip.MustParsePrefix("198.19.5.0/24"), Via: netip.MustParseAddr("198.18.1.254"), Protocol: 4, OnLink: true, MTU: 1400, AdvMSS: 1360}},
		{name: "default", line: "default via 198.18.1.254", want: Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Via: netip.MustParseAddr("198.18.1.254")}},
		{name: "no destination", line: "via 198.18.1.254", err: "no destination"},
		{name: "bad gateway", line: "198.19.5.0/24 via eth0", err: `via "eth0" is not an address`},
		{name: "family mix", line: "198.19.5.0/24 via 2001:db8::1", err: "not of the destination's address family"},
		{name: "blackhole with dev", line: "blackhole 198.19.6.0/24 dev eth0", err: "takes no via or dev"},
		{name: "unknown word", line: "198.19.5.0/24 dev eth0 frobnicate", err: `unsupported word "frobnicate"`},
		{name: "bad metric", line: "198.19.5.0/24 dev eth0 metric x", err: "metric"},
		{name: "bad table", line: "198.19.5.0/24 dev eth0 table nope", err: "table"},
		{name: "missing value", line: "198.19.5.0/24 dev", err: "dev needs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRoute(strings.Fields(tt.line))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("ParseRoute(%q) error %v, want one containing %q", tt.line, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("ParseRoute(%q)\n got %+v\nwant %+v", tt.line, got, tt.want)
			}
		})
	}
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"198.19.5.0/24 via 198.18.1.254 dev eth0 src 198.18.1.100 metric 7 table 100",
		"blackhole 198.19.6.0/24", "unreachable 2001:db8:9::/48 table main proto static",
		"198.19.5.7 dev eth0 scope link onlink mtu 1400 advmss 1360", "default via 198.18.1.254",
		"to", "198.19.5.0/24 dev", "throw 0/0 table 7 metric 2147483647",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseRoute(strings.Fields(line))
		if err != nil {
			return
		}
		back, err := ParseRoute(strings.Fields(r.String()))
		if err != nil {
			t.Fatalf("%q parsed to %q, which does not parse: %v", line, r, err)
		}
		if !reflect.DeepEqual(back, r) {
			t.Fatalf("%q: %+v round-trips to %+v", line, r, back)
		}
	})
}
