package fwmark

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// FuzzParse reads whatever a rules file may hold: Parse must never panic,
// every line of an error must name the file and line, and rules it
// accepts must compile and classify without panicking.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"*mangle\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -d 198.18.0.200/32 -p tcp -m multiport --dports 80,443 -j MARK --set-xmark 0x1/0xffffffff\nCOMMIT\n",
		"-A PREROUTING -d 198.18.0.0/24 -p udp -m udp --dport 53:54 -j MARK --set-mark 2\n-A INPUT -p tcp -j MARK --set-mark 0\n",
		"-A PREROUTING -d 2001:db8::1/128 -p tcp --dport 443 -m comment --comment \"x y\" -j MARK --set-mark 3\n",
		"-A PREROUTING ! -d 198.18.0.1 -j MARK --set-mark 1\n-A PREROUTING -s 198.18.0.1 -j ACCEPT\n*filter\n-A INPUT -j DROP\n",
		"-A PREROUTING -p tcp --dport 1:65535 -j MARK --set-xmark 0x1/0xff\n",
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	f.Fuzz(func(t *testing.T, data []byte, v6 bool) {
		rules, err := Parse("fuzz.rules", bytes.NewReader(data), v6)
		if err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "fuzz.rules:") {
					t.Fatalf("error line %q does not name the file and line", line)
				}
			}
			return
		}
		rs := &Rules{v4: rules}
		dst := netip.MustParseAddr("198.18.0.200")
		if v6 {
			rs = &Rules{v6: rules}
			dst = netip.MustParseAddr("2001:db8::1")
		}
		if rs.checkSize() != nil {
			return
		}
		rs.Entries()
		rs.Mark(ipvs.TCP, dst, 80)
		rs.Sets(v6, 1)
	})
}
