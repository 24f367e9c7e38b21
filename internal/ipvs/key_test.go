package ipvs

import (
	"net/netip"
	"strings"
	"testing"
)

func TestParseServiceKeyReadsString(t *testing.T) {
	for _, k := range []ServiceKey{
		{Proto: TCP, Addr: netip.MustParseAddr("198.18.0.10"), Port: 80},
		{Proto: UDP, Addr: netip.MustParseAddr("2001:db8::1"), Port: 53},
		{Proto: SCTP, Addr: netip.MustParseAddr("198.18.0.10"), Port: 0},
		{FWMark: 5, Addr: netip.IPv4Unspecified()},
		{FWMark: 4294967295, Addr: netip.IPv6Unspecified()},
	} {
		got, err := ParseServiceKey(k.String())
		if err != nil || got != k {
			t.Errorf("ParseServiceKey(%q) = %v, %v; want %v", k.String(), got, err, k)
		}
	}
	got, err := ParseServiceKey("TCP [::ffff:198.18.0.10]:80")
	if want := (ServiceKey{Proto: TCP, Addr: netip.MustParseAddr("198.18.0.10"), Port: 80}); err != nil || got != want {
		t.Errorf("an IPv4-mapped address: %v, %v; want %v", got, err, want)
	}
}

func TestParseServiceKeyRefuses(t *testing.T) {
	for in, want := range map[string]string{
		"":                      `unknown protocol ""`,
		"tcp 198.18.0.10:80":    `unknown protocol "tcp"`,
		"TCP":                   "want the protocol, one space and ADDR:PORT",
		"TCP  198.18.0.10:80":   "want the protocol, one space and ADDR:PORT",
		"TCP 198.18.0.10":       `"198.18.0.10" is not ADDR:PORT`,
		"TCP 198.18.0.10:65536": `"198.18.0.10:65536" is not ADDR:PORT`,
		"UDP 2001:db8::1:53":    "is not ADDR:PORT (an IPv6 address goes in brackets)",
		"TCP [fe80::1%eth0]:80": "has a zone",
		"FWM":                   `"FWM MARK", or "FWM MARK IPv6"`,
		"FWM 0":                 `the firewall mark "0" is not a number from 1 to 4294967295`,
		"FWM 4294967296":        `the firewall mark "4294967296" is not`,
		"FWM +5":                `the firewall mark "+5" is not`,
		"FWM 5 ipv6":            `"FWM MARK", or "FWM MARK IPv6"`,
		"FWM 5 IPv6 x":          `"FWM MARK", or "FWM MARK IPv6"`,
		"TCP 198.18.0.10:80 x":  "want the protocol, one space and ADDR:PORT",
	} {
		_, err := ParseServiceKey(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "service \"") {
			t.Errorf("ParseServiceKey(%q) = %v; want an error with %q", in, err, want)
		}
	}
}
