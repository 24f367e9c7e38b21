package ipvssync

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// kernelV4 is one IPv4 TCP entry as the kernel's ip_vs_sync_conn lays it
// out: ESTABLISHED, DR, syncid 7, timeout 900 s.
const kernelV4 = "00 07 002c 01 01 0000" + // header: reserved, syncid, size 44, 1 conn, version 1, spare
	"00 06 0024 00000003 0001 d431 0050 0050 00000000 00000384" + // type, proto, ver_size 36, flags, state, ports, fwmark, timeout
	"c6120002 c6120164 c612020a" // 198.18.0.2 198.18.1.100 198.18.2.10

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestKernelLayout(t *testing.T) {
	want := unhex(t, kernelV4)
	c := Conn{Proto: 6, Flags: FlagRoute, State: 1, Client: ap("198.18.0.2:54321"), Virtual: ap("198.18.1.100:80"),
		Dest: ap("198.18.2.10:80"), Timeout: 900}
	got := Pack(7, 1472, []Conn{c})
	if len(got) != 1 || !bytes.Equal(got[0], want) {
		t.Fatalf("Pack:\n got %x\nwant %x", got, want)
	}
	m, skipped, err := Unmarshal(want)
	if err != nil || skipped != 0 {
		t.Fatalf("Unmarshal: %v, skipped %d", err, skipped)
	}
	c.Flags |= FlagSync
	if m.SyncID != 7 || !reflect.DeepEqual(m.Conns, []Conn{c}) {
		t.Fatalf("Unmarshal = %+v, want syncid 7 and %+v", m, c)
	}
}

func TestRoundTrip(t *testing.T) {
	v6 := Conn{Proto: 17, Flags: FlagTunnel | FlagInactive, Client: ap("[2001:db8::2]:5353"), Virtual: ap("[2001:db8:1::100]:53"),
		Dest: ap("[2001:db8:2::10]:53"), Timeout: 300}
	v4 := Conn{Proto: 6, Flags: FlagMasq | FlagInactive, State: 4, Client: ap("198.18.0.2:1000"), Virtual: ap("198.18.1.100:80"),
		Dest: ap("198.18.2.10:8080"), FWMark: 5, Timeout: 120}
	many := make([]Conn, 300)
	for i := range many {
		many[i] = v4
		many[i].Client = netip.AddrPortFrom(v4.Client.Addr(), uint16(2000+i))
	}
	tests := []struct {
		name   string
		maxlen int
		conns  []Conn
		msgs   int
	}{
		{name: "one IPv4", maxlen: 1472, conns: []Conn{v4}, msgs: 1},
		{name: "one IPv6", maxlen: 1452, conns: []Conn{v6}, msgs: 1},
		{name: "mixed families", maxlen: 1472, conns: []Conn{v4, v6, v4}, msgs: 1},
		{name: "split by maxlen", maxlen: 8 + 2*36, conns: []Conn{v4, v4, v4}, msgs: 2},
		{name: "an entry larger than maxlen still goes", maxlen: 10, conns: []Conn{v6}, msgs: 1},
		{name: "at most 255 entries", maxlen: 65000, conns: many, msgs: 2},
		{name: "nothing", maxlen: 1472, conns: nil, msgs: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs := Pack(3, tt.maxlen, tt.conns)
			if len(msgs) != tt.msgs {
				t.Fatalf("%d messages, want %d", len(msgs), tt.msgs)
			}
			var got []Conn
			for _, b := range msgs {
				if len(b) > max(tt.maxlen, 8+72) {
					t.Errorf("message of %d bytes, maxlen %d", len(b), tt.maxlen)
				}
				m, skipped, err := Unmarshal(b)
				if err != nil || skipped != 0 || m.SyncID != 3 {
					t.Fatalf("Unmarshal: syncid %d, skipped %d, %v", m.SyncID, skipped, err)
				}
				got = append(got, m.Conns...)
			}
			want := make([]Conn, len(tt.conns))
			for i, c := range tt.conns {
				c.Flags |= FlagSync
				want[i] = c
			}
			if len(want) == 0 {
				want = nil
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestUnmarshalBad(t *testing.T) {
	good := unhex(t, kernelV4)
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name    string
		b       []byte
		err     error // nil: any error
		skipped int
		conns   int
	}{
		{name: "short", b: good[:3], err: ErrShort},
		{name: "size mismatch", b: good[:40], err: ErrSize},
		{name: "version 0", b: mod(func(b []byte) []byte { b[5] = 0; return b }), err: ErrVersion},
		{name: "reserved set", b: mod(func(b []byte) []byte { b[0] = 1; return b }), err: ErrVersion},
		{name: "more entries than bytes", b: mod(func(b []byte) []byte { b[4] = 2; return b })},
		{name: "entry size past the end", b: mod(func(b []byte) []byte { b[11] = 40; return b })},
		{name: "entry version 1", b: mod(func(b []byte) []byte { b[10] = 0x10; return b })},
		{name: "unknown type", b: mod(func(b []byte) []byte { b[8] = 2; return b })},
		{name: "IPv6 type in an IPv4-sized entry", b: mod(func(b []byte) []byte { b[8] = 1; return b })},
		{name: "unknown mandatory option skips the entry", skipped: 1, b: withOption(good, 9, 2)},
		{name: "unknown optional option is ignored", conns: 1, b: withOption(good, 9|optParam, 2)},
		{name: "sequence option", conns: 1, b: withOption(good, optSeqData, seqOptLen)},
		{name: "sequence option of a wrong length", b: withOption(good, optSeqData, 4)},
		{name: "zero-length option", b: withOption(good, 9|optParam, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, skipped, err := Unmarshal(tt.b)
			wantErr := tt.err != nil || (tt.skipped == 0 && tt.conns == 0)
			if wantErr {
				if err == nil || tt.err != nil && !errors.Is(err, tt.err) {
					t.Fatalf("Unmarshal error %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil || skipped != tt.skipped || len(m.Conns) != tt.conns {
				t.Fatalf("Unmarshal: %d conns, %d skipped, %v; want %d, %d", len(m.Conns), skipped, err, tt.conns, tt.skipped)
			}
		})
	}
}

// withOption appends an option of plen zero bytes to the one entry of
// msg, fixing the sizes.
func withOption(msg []byte, typ byte, plen int) []byte {
	b := bytes.Clone(msg)
	b = append(b, typ, byte(plen))
	b = append(b, make([]byte, plen)...)
	esize := len(b) - 8
	b[10], b[11] = byte(esize>>8), byte(esize)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	b[2], b[3] = byte(len(b)>>8), byte(len(b))
	return b
}
