package vrrp

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var (
	src4 = netip.MustParseAddr("198.18.0.1")
	src6 = netip.MustParseAddr("fe80::1")
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func parseHex(s string) ([]byte, error) {
	var sb strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		sb.WriteString(strings.Join(strings.Fields(line), ""))
	}
	return hex.DecodeString(sb.String())
}

// goldenHex reads testdata/NAME.hex: hex digits, '#' comments ignored.
func goldenHex(tb testing.TB, name string) []byte {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", name+".hex"))
	if err != nil {
		tb.Fatal(err)
	}
	b, err := parseHex(string(raw))
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return b
}

func TestMarshalGolden(t *testing.T) {
	tests := []struct {
		name     string
		golden   string
		adv      Advert
		src, dst netip.Addr
	}{
		{
			name:   "v2 PASS auth truncated to 8 characters",
			golden: "v2_pass",
			adv: Advert{Version: 2, Type: TypeAdv, VRID: 51, Priority: 100, Interval: 1,
				AuthType: AuthPass, AuthData: PassAuthData("secretpassword"), Addrs: addrs("198.18.0.10")},
		},
		{
			name:   "v3 IPv4 with pseudo-header",
			golden: "v3_ipv4",
			adv: Advert{Version: 3, Type: TypeAdv, VRID: 7, Priority: 150, Interval: 100,
				Addrs: addrs("198.18.0.10", "198.18.0.11")},
			src: src4, dst: Group4,
		},
		{
			name:   "v3 IPv6 owner 500ms",
			golden: "v3_ipv6",
			adv: Advert{Version: 3, Type: TypeAdv, VRID: 9, Priority: 255, Interval: 50,
				Addrs: addrs("2001:db8::10")},
			src: src6, dst: Group6,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := goldenHex(t, tt.golden)
			got, err := tt.adv.Marshal(tt.src, tt.dst)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Marshal:\n got %x\nwant %x", got, want)
			}
			back, err := Unmarshal(want, tt.adv.Addrs[0].Is6())
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*back, tt.adv) {
				t.Fatalf("Unmarshal:\n got %+v\nwant %+v", *back, tt.adv)
			}
			if !Verify(tt.adv.Version, tt.src, tt.dst, want) {
				t.Fatal("Verify says the golden checksum is wrong")
			}
		})
	}
}

func TestPassAuthData(t *testing.T) {
	tests := []struct{ name, pass, want string }{
		{"short is zero padded", "abc", "abc\x00\x00\x00\x00\x00"},
		{"exactly 8", "12345678", "12345678"},
		{"long is cut", "1234567890", "12345678"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := PassAuthData(tt.pass)
			if string(got[:]) != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidatorCheck(t *testing.T) {
	v2 := Validator{Version: 2, VRID: 51, AuthType: AuthPass, AuthData: PassAuthData("secretpassword"),
		Interval: 1, VIPs: addrs("198.18.0.10"), Own: addrs("198.18.0.2")}
	good2 := func() Advert {
		return Advert{Version: 2, Type: TypeAdv, VRID: 51, Priority: 100, Interval: 1,
			AuthType: AuthPass, AuthData: PassAuthData("secretpassword"), Addrs: addrs("198.18.0.10")}
	}
	v3 := Validator{Version: 3, VRID: 7, VIPs: addrs("198.18.0.10", "198.18.0.11")}
	good3 := func() Advert {
		return Advert{Version: 3, Type: TypeAdv, VRID: 7, Priority: 150, Interval: 100,
			Addrs: addrs("198.18.0.10", "198.18.0.11")}
	}
	type mod func(a *Advert, r *Received)
	tests := []struct {
		name string
		v    Validator
		adv  func() Advert
		mod  mod
		raw  func(b []byte) []byte
		want DropReason
	}{
		{name: "v2 good", v: v2, adv: good2, want: DropNone},
		{name: "v3 good", v: v3, adv: good3, want: DropNone},
		{name: "own advert", v: v2, adv: good2, mod: func(a *Advert, r *Received) { r.Src = netip.MustParseAddr("198.18.0.2") }, want: DropOwn},
		{name: "ttl 64", v: v2, adv: good2, mod: func(a *Advert, r *Received) { r.TTL = 64 }, want: DropTTL},
		{name: "ttl ignored for unicast", v: func() Validator { v := v3; v.Unicast = true; return v }(), adv: good3, mod: func(a *Advert, r *Received) { r.TTL = 63 }, want: DropNone},
		{name: "v3 advert to v2 instance", v: v2, adv: good3, want: DropVersion},
		{name: "type 2", v: v3, adv: good3, mod: func(a *Advert, r *Received) { a.Type = 2 }, want: DropType},
		{name: "other vrid", v: v3, adv: good3, mod: func(a *Advert, r *Received) { a.VRID = 8 }, want: DropVRID},
		{name: "auth none vs pass", v: v2, adv: good2, mod: func(a *Advert, r *Received) { a.AuthType = AuthNone }, want: DropAuthType},
		{name: "wrong password", v: v2, adv: good2, mod: func(a *Advert, r *Received) { a.AuthData = PassAuthData("secretpX") }, want: DropAuth},
		{name: "password equal in first 8", v: v2, adv: good2, mod: func(a *Advert, r *Received) { a.AuthData = PassAuthData("secretpaZZZ") }, want: DropNone},
		{name: "v2 interval", v: v2, adv: good2, mod: func(a *Advert, r *Received) { a.Interval = 2 }, want: DropInterval},
		{name: "address count", v: v3, adv: good3, mod: func(a *Advert, r *Received) { a.Addrs = a.Addrs[:1] }, want: DropAddrCount},
		{name: "missing vip", v: v3, adv: good3, mod: func(a *Advert, r *Received) { a.Addrs[1] = netip.MustParseAddr("198.18.0.99") }, want: DropAddrList},
		{name: "truncated", v: v3, adv: good3, raw: func(b []byte) []byte { return b[:len(b)-1] }, want: DropLength},
		{name: "trailing byte", v: v3, adv: good3, raw: func(b []byte) []byte { return append(b, 0) }, want: DropLength},
		{name: "header only", v: v3, adv: good3, raw: func(b []byte) []byte { return b[:7] }, want: DropShort},
		{name: "bad checksum", v: v3, adv: good3, raw: func(b []byte) []byte { b[7] ^= 1; return b }, want: DropChecksum},
		{name: "v2 bad checksum", v: v2, adv: good2, raw: func(b []byte) []byte { b[6] ^= 0x80; return b }, want: DropChecksum},
		{name: "unicast source is a peer", v: func() Validator { v := v2; v.Unicast, v.Peers = true, []netip.Addr{src4}; return v }(), adv: good2, want: DropNone},
		{name: "unicast source not a peer", v: func() Validator { v := v2; v.Unicast, v.Peers = true, addrs("198.18.0.77"); return v }(), adv: good2, want: DropUnicastSrc},
		{name: "v3 checksum with wrong pseudo dst", v: v3, adv: good3, mod: func(a *Advert, r *Received) { r.Dst = netip.MustParseAddr("198.18.0.3") }, want: DropChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.adv()
			r := Received{Src: src4, Dst: Group4, TTL: 255}
			if tt.mod != nil {
				tt.mod(&a, &r)
			}
			// the checksum is made for the group; r.Dst may be changed
			b, err := a.Marshal(r.Src, Group4)
			if err != nil {
				t.Fatal(err)
			}
			if tt.raw != nil {
				b = tt.raw(b)
			}
			r.Payload = b
			got, why := tt.v.Check(r)
			if why != tt.want {
				t.Fatalf("Check = %v, want %v", why, tt.want)
			}
			if (got != nil) != (why == DropNone) {
				t.Fatalf("advert %v with reason %v", got, why)
			}
		})
	}
}

func TestDropCounters(t *testing.T) {
	var c DropCounters
	c.Add(DropTTL)
	c.Add(DropTTL)
	c.Add(DropAuth)
	c.Add(DropReason(200)) // ignored, no panic
	want := map[string]uint64{"bad_ttl": 2, "auth_failure": 1}
	if got := c.Map(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Map = %v, want %v", got, want)
	}
	if c.Get(DropTTL) != 2 {
		t.Fatal("Get(DropTTL) != 2")
	}
}

func FuzzUnmarshal(f *testing.F) {
	for _, name := range []string{"v2_pass", "v3_ipv4", "v3_ipv6"} {
		f.Add(goldenHex(f, name), strings.Contains(name, "ipv6"))
	}
	f.Add([]byte{0x31, 1, 100, 255, 0, 100, 0, 0}, false) // count larger than the packet
	f.Add([]byte{0x21, 1, 100, 0, 1, 1, 0, 0}, true)      // v2 over IPv6
	f.Fuzz(func(t *testing.T, b []byte, is6 bool) {
		a, err := Unmarshal(b, is6)
		if err != nil {
			return
		}
		raw, err := a.AppendRaw(nil)
		if err != nil {
			t.Fatalf("AppendRaw of a parsed advert: %v", err)
		}
		if !bytes.Equal(raw, b[:len(raw)]) {
			t.Fatalf("round trip:\n in %x\nout %x", b[:len(raw)], raw)
		}
		if len(raw) != a.Len() {
			t.Fatalf("Len %d, marshalled %d", a.Len(), len(raw))
		}
		src, dst := src4, Group4
		if is6 {
			src, dst = src6, Group6
		}
		m, err := a.Marshal(src, dst)
		if err != nil {
			t.Fatal(err)
		}
		if !Verify(a.Version, src, dst, m) {
			t.Fatal("Marshal made a bad checksum")
		}
		v := Validator{Version: a.Version, VRID: a.VRID, IPv6: is6, AuthType: a.AuthType, AuthData: a.AuthData,
			Interval: a.Interval, VIPs: a.Addrs}
		v.Check(Received{Src: src, Dst: dst, TTL: 255, Payload: b}) // must not panic
	})
}
