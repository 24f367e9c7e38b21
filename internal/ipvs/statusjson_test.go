package ipvs

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// randomStatuses are services with every field of ServiceStatus and
// DestStatus set, left zero or at an extreme, strings that JSON must
// escape, and addresses of every kind.
func randomStatuses(r *rand.Rand, n int) []ServiceStatus {
	addrs := []netip.Addr{{}, netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("0.0.0.0"),
		netip.MustParseAddr("255.255.255.255"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:198.18.0.2"),
		netip.MustParseAddr("fe80::1%eth0"), netip.MustParseAddr(`fe80::1%a"<b>\c`), netip.MustParseAddr("::")}
	strs := []string{"", "rr", "mh", "sip", `a"b\c`, "<&>", "\x01\n\t", "é", "\xff\xfe", "\u2028", "x y"}
	u64 := func() uint64 {
		switch r.IntN(4) {
		case 0:
			return 0
		case 1:
			return math.MaxUint64
		}
		return r.Uint64() >> r.IntN(64)
	}
	u32 := func() uint32 { return uint32(u64()) }
	stats := func() Stats { return Stats{u64(), u64(), u64(), u64(), u64()} }
	rates := func() Rates { return Rates{u64(), u64(), u64(), u64(), u64()} }
	out := make([]ServiceStatus, n)
	for i := range out {
		s := &out[i]
		s.ServiceKey = ServiceKey{Proto: Protocol(r.IntN(256)), Addr: addrs[r.IntN(len(addrs))], Port: uint16(u32()), FWMark: u32()}
		if r.IntN(3) == 0 {
			s.Proto, s.Port = 0, 0
		}
		s.Scheduler, s.PE = strs[r.IntN(len(strs))], strs[r.IntN(len(strs))]
		s.Flags, s.Timeout = u32(), u32()
		s.Netmask, s.ProxyProtocol = int(int64(u64())), []int{0, 1, 2, -1, math.MinInt}[r.IntN(5)]
		switch r.IntN(3) {
		case 1:
			s.LocalAddrs = []netip.Addr{}
		case 2:
			s.LocalAddrs = addrs[:1+r.IntN(len(addrs)-1)]
		}
		s.Stats, s.Rates = stats(), rates()
		if r.IntN(4) > 0 {
			s.Dests = make([]DestStatus, r.IntN(5))
		}
		for j := range s.Dests {
			d := &s.Dests[j]
			d.Dest = Dest{Addr: addrs[r.IntN(len(addrs))], Port: uint16(u32()), Method: Method(r.IntN(256)),
				Weight: []int32{0, 1, -1, math.MaxInt32, math.MinInt32}[r.IntN(5)], UThreshold: u32(), LThreshold: u32(),
				TunType: TunType(r.IntN(256)), TunPort: uint16(u32()), TunFlags: uint16(u32())}
			d.ActiveConns, d.InactConns, d.PersistConns = u32(), u32(), u32()
			d.Stats, d.Rates = stats(), rates()
		}
	}
	return out
}

// TestStatusJSON: AppendJSON writes what encoding/json writes, and
// ReadServiceStatuses reads what json.Unmarshal reads, from gvsd's form,
// indented, with fields it does not know, and delivered a byte at a time.
func TestStatusJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	all := randomStatuses(r, 2000)
	for i := range all {
		want, err := json.Marshal(&all[i])
		if err != nil {
			t.Fatal(err)
		}
		if got := all[i].AppendJSON(nil); !bytes.Equal(got, want) {
			t.Fatalf("service %d:\n got %s\nwant %s", i, got, want)
		}
	}

	body, _ := json.Marshal(all)
	var want []ServiceStatus
	if err := json.Unmarshal(body, &want); err != nil {
		t.Fatal(err)
	}
	indented, _ := json.MarshalIndent(all, " ", "\t")
	unknown := strings.ReplaceAll(string(body), `"stats":`, `"later":{"a":[1,-2.5e+3,0.5,true,false,null,"x\"y",{}],"b":{}},"stats":`)
	unknown = strings.ReplaceAll(unknown, `"rates":`, `"port":null,"rates":`)
	for name, in := range map[string]string{"compact": string(body), "indented": string(indented) + "\n", "unknown fields": unknown} {
		got, err := ReadServiceStatuses(strings.NewReader(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: read differently from encoding/json", name)
		}
	}
	got, err := ReadServiceStatuses(iotest.OneByteReader(bytes.NewReader(body[:4000])))
	if err == nil || !strings.Contains(err.Error(), "unexpected end") {
		t.Errorf("a byte at a time, cut short: %v", err)
	}
	got, err = ReadServiceStatuses(iotest.OneByteReader(strings.NewReader(`[` + string(all[0].AppendJSON(nil)) + "]\n")))
	if err != nil || !reflect.DeepEqual(got, want[:1]) {
		t.Errorf("a byte at a time: %v", err)
	}

	for in, want := range map[string][]ServiceStatus{"null": nil, " [ ] ": {}, `[{}]`: {{}},
		`[{"dests":[],"laddrs":[]}]`: {{Service: Service{LocalAddrs: []netip.Addr{}}, Dests: []DestStatus{}}}} {
		if got, err := ReadServiceStatuses(strings.NewReader(in)); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: %#v, %v", in, got, err)
		}
	}
}

// TestStatusJSONPinned holds the services' JSON (GET /v1/services) to
// its form; a change here changes the API.
func TestStatusJSONPinned(t *testing.T) {
	s := ServiceStatus{Service: Service{ServiceKey: ServiceKey{Proto: TCP, Addr: netip.MustParseAddr("198.18.0.10"), Port: 80},
		Scheduler: "wrr", Flags: FlagPersistent, Timeout: 300, Netmask: 24, LocalAddrs: []netip.Addr{netip.MustParseAddr("2001:db8::1")}},
		Stats: Stats{1, 2, 3, 4, 5}, Rates: Rates{6, 7, 8, 9, 10},
		Dests: []DestStatus{{Dest: Dest{Addr: netip.MustParseAddr("198.18.1.2"), Port: 8080, Method: Masq, Weight: 3, UThreshold: 100},
			ActiveConns: 11, InactConns: 12, PersistConns: 13, Stats: Stats{Conns: 14}, Rates: Rates{CPS: 15}}}}
	const want = `{"proto":6,"addr":"198.18.0.10","port":80,"scheduler":"wrr","flags":1,"timeout":300,"netmask":24,` +
		`"laddrs":["2001:db8::1"],"stats":{"conns":1,"inpkts":2,"outpkts":3,"inbytes":4,"outbytes":5},` +
		`"rates":{"cps":6,"inpps":7,"outpps":8,"inbps":9,"outbps":10},"dests":[{"addr":"198.18.1.2","port":8080,"method":2,` +
		`"weight":3,"u_threshold":100,"active_conns":11,"inact_conns":12,"persist_conns":13,` +
		`"stats":{"conns":14,"inpkts":0,"outpkts":0,"inbytes":0,"outbytes":0},"rates":{"cps":15,"inpps":0,"outpps":0,"inbps":0,"outbps":0}}]}`
	if got := string(s.AppendJSON(nil)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestStatusJSONMalformed: what json.Unmarshal refuses, ReadServiceStatuses
// refuses too, among them every document cut short; an error of the
// reader is the error.
func TestStatusJSONMalformed(t *testing.T) {
	body := "[" + string(randomStatuses(rand.New(rand.NewPCG(3, 4)), 3)[2].AppendJSON(nil)) + "]"
	var bad []string
	for i := range len(body) {
		bad = append(bad, body[:i])
	}
	bad = append(bad, ``, `{}`, `[{}] x`, `[{}][]`, `[{},]`, `[{"port":65536}]`, `[{"port":-1}]`, `[{"port":1.5}]`, `[{"port":1e2}]`,
		`[{"port":01}]`, `[{"port":"1"}]`, `[{"port":-}]`, `[{"weight":1}`, `[{"addr":"1.2.3"}]`, `[{"addr":"01.2.3.4"}]`,
		`[{"addr":"1.2.3.256"}]`, `[{"addr":"1.2.3.4."}]`, `[{"addr":1}]`, `[{"netmask":99999999999999999999}]`,
		`[{"dests":[{"weight":2147483648}]}]`, `[{"dests":{}}]`, `[{"stats":[]}]`, `[{"x":tru}]`, `[{"x":01}]`, `[{"x":-}]`,
		`[{"x":1.}]`, `[{"x":"a`+"\x01"+`"}]`, `[{"x":"\q"}]`, `[{"x" 1}]`, `[{"x":1 "y":2}]`, `[{x:1}]`, `nul`, `[nul]`)
	for _, in := range bad {
		var v []ServiceStatus
		if json.Unmarshal([]byte(in), &v) == nil {
			t.Errorf("encoding/json reads %q", in)
		}
		if got, err := ReadServiceStatuses(strings.NewReader(in)); err == nil {
			t.Errorf("%q read as %+v", in, got)
		}
	}
	broken := errors.New("connection reset")
	if _, err := ReadServiceStatuses(iotest.DataErrReader(iotest.ErrReader(broken))); !errors.Is(err, broken) {
		t.Errorf("a failing reader: %v", err)
	}
}

// BenchmarkStatusJSON compares the hand-written codec with encoding/json
// on the whole table's status at 10,000 services of 4 real servers: the
// encoding in gvsd, the decoding in gvsadm.
func BenchmarkStatusJSON(b *testing.B) {
	all := make([]ServiceStatus, 10000)
	for i := range all {
		all[i] = ServiceStatus{Service: Service{ServiceKey: ServiceKey{Proto: TCP, Addr: netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), Port: 80},
			Scheduler: "rr", Netmask: 32}, Stats: Stats{Conns: uint64(i) * 7, InPkts: uint64(i) * 1000}}
		for j := range 4 {
			all[i].Dests = append(all[i].Dests, DestStatus{Dest: Dest{Addr: netip.AddrFrom4([4]byte{198, 18, 1, byte(10 + (4*i+j)%64)}), Port: 80, Weight: 1},
				ActiveConns: uint32(j), Stats: Stats{Conns: uint64(i), InBytes: uint64(i) << 20}})
		}
	}
	body, _ := json.Marshal(all)
	b.Run("encode/json", func(b *testing.B) {
		for b.Loop() {
			json.Marshal(all)
		}
	})
	b.Run("encode/AppendJSON", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = buf[:0]
			for i := range all {
				buf = all[i].AppendJSON(buf)
			}
		}
	})
	b.Run("decode/json", func(b *testing.B) {
		for b.Loop() {
			var v []ServiceStatus
			if err := json.Unmarshal(body, &v); err != nil || len(v) != len(all) {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode/ReadServiceStatuses", func(b *testing.B) {
		for b.Loop() {
			if v, err := ReadServiceStatuses(bytes.NewReader(body)); err != nil || len(v) != len(all) {
				b.Fatal(err)
			}
		}
	})
	b.Logf("%d bytes", len(body))
}
