package vrrp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

var (
	kaSrc = netip.MustParseAddr("198.18.9.1")
	kaKey = PassAuthData("gvs-1234")
)

// kaPackets are the keepalived adverts of testdata/ah_keepalived.hex.
func kaPackets(t *testing.T) [][]byte {
	t.Helper()
	b := goldenHex(t, "ah_keepalived")
	const n = ipv4HdrLen + ahLen + 20
	if len(b) != 3*n {
		t.Fatalf("ah_keepalived.hex: %d bytes, want 3 packets of %d", len(b), n)
	}
	return [][]byte{b[:n], b[n : 2*n], b[2*n:]}
}

// TestAHKeepalivedPackets checks adverts keepalived sent: OpenAH accepts
// them with keepalived's password, and SealAH makes the same bytes (but
// the IP header checksum, which the kernel fills in).
func TestAHKeepalivedPackets(t *testing.T) {
	for i, pkt := range kaPackets(t) {
		seq := uint32(13 + i)
		t.Run(fmt.Sprintf("seq %d", seq), func(t *testing.T) {
			inner, info, err := OpenAH(pkt[:ipv4HdrLen], pkt[ipv4HdrLen:], kaKey, false)
			if err != nil {
				t.Fatalf("OpenAH: %v", err)
			}
			if info.Seq != seq || info.SPI != binary.BigEndian.Uint32(kaSrc.AsSlice()) {
				t.Errorf("OpenAH info %+v, want seq %d and SPI %s", info, seq, kaSrc)
			}
			want := Advert{Version: 2, Type: TypeAdv, VRID: 61, Priority: 100, Interval: 1, AuthType: AuthAH,
				Addrs: addrs("198.18.9.100")}
			b, err := want.Marshal(kaSrc, Group4)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, inner) {
				t.Fatalf("advert inside AH:\n got %x\nwant %x", inner, b)
			}
			id := binary.BigEndian.Uint16(pkt[4:6])
			got, err := SealAH(kaSrc, Group4, id, seq, kaKey, false, b)
			if err != nil {
				t.Fatal(err)
			}
			ref := bytes.Clone(pkt)
			ref[10], ref[11] = 0, 0
			if !bytes.Equal(got, ref) {
				t.Fatalf("SealAH:\n got %x\nwant %x", got, ref)
			}
			if _, _, err := OpenAH(pkt[:ipv4HdrLen], pkt[ipv4HdrLen:], PassAuthData("gvs-1235"), false); !errors.Is(err, ErrAHICV) {
				t.Errorf("OpenAH with another password: %v, want %v", err, ErrAHICV)
			}
		})
	}
}

func TestAHCounter(t *testing.T) {
	var c AHCounter
	if c.Next() != 1 || c.Next() != 2 {
		t.Fatal("Next does not count from 1")
	}
	tests := []struct {
		name string
		seq  uint32
		ok   bool
		last uint32
	}{
		{"replay of our own number", 2, false, 2},
		{"older", 1, false, 2},
		{"newer", 10, true, 10},
		{"same again", 10, false, 10},
		{"jump", 1000, true, 1000},
	}
	for _, tt := range tests {
		if ok := c.Accept(tt.seq); ok != tt.ok || c.Last() != tt.last {
			t.Errorf("%s: Accept(%d) = %v, last %d; want %v, last %d", tt.name, tt.seq, ok, c.Last(), tt.ok, tt.last)
		}
	}
	if c.Next() != 1001 {
		t.Error("Next does not continue from the last accepted number")
	}
	c = AHCounter{n: 0xffffffff}
	if c.Next() != 0xffffffff {
		t.Error("Next wrapped around")
	}
}

// TestValidatorAH: sealed adverts pass, replays and any change to a field
// the ICV covers are dropped and say why; the mutable fields may change.
func TestValidatorAH(t *testing.T) {
	adv := Advert{Version: 2, Type: TypeAdv, VRID: 61, Priority: 100, Interval: 1, AuthType: AuthAH,
		Addrs: addrs("198.18.9.100")}
	inner, err := adv.Marshal(kaSrc, Group4)
	if err != nil {
		t.Fatal(err)
	}
	newV := func(unicast bool) Validator {
		return Validator{Version: 2, VRID: 61, AuthType: AuthAH, AuthData: kaKey, Interval: 1,
			VIPs: addrs("198.18.9.100"), Unicast: unicast, AHSeq: &AHCounter{n: 4}}
	}
	seal := func(seq uint32, unicast bool) []byte {
		p, err := SealAH(kaSrc, Group4, 7, seq, kaKey, unicast, inner)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	// resign recomputes the ICV after a change the sender made.
	resign := func(p []byte, unicast bool) []byte {
		icv := ahICV(p[:ipv4HdrLen], p[ipv4HdrLen:], kaKey, unicast)
		copy(p[ipv4HdrLen+12:ipv4HdrLen+ahLen], icv[:])
		return p
	}
	tests := []struct {
		name    string
		unicast bool
		v       func() Validator
		pkt     func() []byte
		ttl     int // as the socket reports it; 0: the header's
		want    DropReason
	}{
		{name: "good", pkt: func() []byte { return seal(5, false) }},
		{name: "good unicast", unicast: true, pkt: func() []byte { return seal(5, true) }},
		{name: "replay", pkt: func() []byte { return seal(4, false) }, want: DropAHReplay},
		{name: "older", pkt: func() []byte { return seal(1, false) }, want: DropAHReplay},
		{name: "tos changed on the way", pkt: func() []byte { p := seal(5, false); p[1] = 0; return p }},
		{name: "fragment bits changed", pkt: func() []byte { p := seal(5, false); p[6] = 0x40; return p }},
		{name: "checksum filled in", pkt: func() []byte { p := seal(5, false); p[10], p[11] = 0x12, 0x34; return p }},
		{name: "unicast ttl changed", unicast: true, pkt: func() []byte { p := seal(5, true); p[8] = 64; return p }},
		{name: "multicast ttl changed", ttl: TTL, pkt: func() []byte { p := seal(5, false); p[8] = 254; return p }, want: DropAuth},
		{name: "ip id changed", pkt: func() []byte { p := seal(5, false); p[5]++; return p }, want: DropAuth},
		{name: "destination changed", pkt: func() []byte { p := seal(5, false); p[19]++; return p }, want: DropAuth},
		{name: "sequence changed", pkt: func() []byte { p := seal(5, false); p[ipv4HdrLen+11]++; return p }, want: DropAuth},
		{name: "priority raised", pkt: func() []byte { p := seal(5, false); p[ipv4HdrLen+ahLen+2] = 255; return p }, want: DropAuth},
		{name: "icv changed", pkt: func() []byte { p := seal(5, false); p[ipv4HdrLen+23] ^= 1; return p }, want: DropAuth},
		{name: "other password", v: func() Validator { v := newV(false); v.AuthData = PassAuthData("other"); return v },
			pkt: func() []byte { return seal(5, false) }, want: DropAuth},
		{name: "spi not the source", pkt: func() []byte { p := seal(5, false); p[ipv4HdrLen+7]++; return resign(p, false) }, want: DropAuth},
		{name: "not vrrp inside", pkt: func() []byte { p := seal(5, false); p[ipv4HdrLen] = 6; return resign(p, false) }, want: DropAuthType},
		{name: "auth type pass inside", pkt: func() []byte {
			p := seal(5, false)
			p[ipv4HdrLen+ahLen+4] = byte(AuthPass)
			return resign(p, false)
		}, want: DropAuthType},
		{name: "truncated", pkt: func() []byte { return seal(5, false)[:ipv4HdrLen+ahLen+4] }, want: DropShort},
		{name: "plain advert to an AH instance", pkt: func() []byte {
			p := append(seal(5, false)[:ipv4HdrLen], inner...)
			p[9] = IPProto
			return p
		}, want: DropAuthType},
		{name: "AH advert to a PASS instance", v: func() Validator {
			return Validator{Version: 2, VRID: 61, AuthType: AuthPass, AuthData: kaKey, Interval: 1, VIPs: addrs("198.18.9.100")}
		}, pkt: func() []byte { return seal(5, false) }, want: DropAuthType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newV(tt.unicast)
			if tt.v != nil {
				v = tt.v()
			}
			p := tt.pkt()
			r := Received{Src: kaSrc, Dst: Group4, TTL: int(p[8]), IPHeader: p[:ipv4HdrLen], Payload: p[ipv4HdrLen:]}
			if tt.ttl != 0 {
				r.TTL = tt.ttl
			}
			a, why := v.Check(r)
			if why != tt.want {
				t.Fatalf("Check = %v, want %v", why, tt.want)
			}
			if why == DropNone && (a.Priority != 100 || a.AuthType != AuthAH) {
				t.Fatalf("advert %+v", a)
			}
			if why == DropNone && v.AHSeq.Last() != 5 {
				t.Errorf("counter at %d after an accepted seq 5", v.AHSeq.Last())
			}
			// as in keepalived, a packet whose ICV is right moves the
			// counter even when a later check drops it
			if (why == DropAuth || why == DropShort) && v.AHSeq.Last() != 4 {
				t.Errorf("a forged packet moved the counter to %d", v.AHSeq.Last())
			}
		})
	}
}

// TestValidatorAHKeepalived runs keepalived's captured adverts through an
// instance's checks in order, then once more: the replays are dropped.
func TestValidatorAHKeepalived(t *testing.T) {
	v := Validator{Version: 2, VRID: 61, AuthType: AuthAH, AuthData: kaKey, Interval: 1,
		VIPs: addrs("198.18.9.100"), AHSeq: &AHCounter{}}
	pkts := kaPackets(t)
	for round, want := range []DropReason{DropNone, DropAHReplay} {
		for i, p := range pkts {
			r := Received{Src: kaSrc, Dst: Group4, TTL: TTL, IPHeader: p[:ipv4HdrLen], Payload: p[ipv4HdrLen:]}
			if _, why := v.Check(r); why != want {
				t.Errorf("round %d packet %d: Check = %v, want %v", round+1, i+1, why, want)
			}
		}
	}
	if v.AHSeq.Last() != 15 {
		t.Errorf("counter at %d, want 15", v.AHSeq.Last())
	}
}

// TestInstanceAH runs two auth_type AH instances on an in-memory LAN: they
// agree on one master, the backup takes over when the master stops; an
// instance with another password counts auth failures and does not back
// off.
func TestInstanceAH(t *testing.T) {
	ahConfig := func(name string, prio uint8, src, pass string) InstanceConfig {
		c := memConfig(name, 61, prio, src)
		c.Version, c.AdvertInt, c.AuthType, c.AuthPass = 2, time.Second, AuthAH, pass
		return c
	}
	t.Run("same password", func(t *testing.T) {
		h := &hub{}
		master, stopMaster := runMem(t, ahConfig("VI_M", 255, "198.18.9.1", "gvs-1234"),
			Options{Conn: h.conn("198.18.9.1"), Host: newMemHost()})
		backup, _ := runMem(t, ahConfig("VI_B", 90, "198.18.9.2", "gvs-1234"),
			Options{Conn: h.conn("198.18.9.2"), Host: newMemHost()})
		waitState(t, master, StateMaster) // the address owner: at once
		waitState(t, backup, StateBackup)
		waitUntil(t, 5*time.Second, "the backup to hear the master", func() bool {
			return backup.Status().AdvertsReceived > 0
		})
		stopMaster()
		waitState(t, backup, StateMaster)
		if d := backup.Drops().Map(); len(d) != 0 {
			t.Errorf("backup drops %v, want none", d)
		}
		if s := backup.Status(); s.PriorityZeroReceived != 1 {
			t.Errorf("backup got %d priority 0 adverts, want 1", s.PriorityZeroReceived)
		}
	})
	t.Run("other password", func(t *testing.T) {
		h := &hub{}
		a, _ := runMem(t, ahConfig("VI_A", 255, "198.18.9.1", "gvs-1234"),
			Options{Conn: h.conn("198.18.9.1"), Host: newMemHost()})
		b, _ := runMem(t, ahConfig("VI_B", 90, "198.18.9.2", "wrong"),
			Options{Conn: h.conn("198.18.9.2"), Host: newMemHost()})
		waitState(t, a, StateMaster)
		// b hears nothing it accepts: master after its Master_Down_Interval
		waitUntil(t, 10*time.Second, "VI_B in MASTER", func() bool { return b.Status().State == StateMaster })
		if a.Drops().Get(DropAuth) == 0 || b.Drops().Get(DropAuth) == 0 {
			t.Errorf("auth_failure drops: %v and %v, want some on both", a.Drops().Map(), b.Drops().Map())
		}
	})
}

// FuzzOpenAH: any packet is refused or opened without a panic, and what
// SealAH makes with any advert, id and sequence number opens to that
// advert.
func FuzzOpenAH(f *testing.F) {
	for _, p := range [][]byte{goldenHex(f, "ah_keepalived")[:64], make([]byte, 20), {}} {
		f.Add(p, uint16(1), uint32(1), false)
	}
	f.Fuzz(func(t *testing.T, pkt []byte, id uint16, seq uint32, unicast bool) {
		if len(pkt) >= ipv4HdrLen {
			OpenAH(pkt[:ipv4HdrLen], pkt[ipv4HdrLen:], kaKey, unicast)
		}
		sealed, err := SealAH(kaSrc, Group4, id, seq, kaKey, unicast, pkt)
		if err != nil {
			return
		}
		inner, info, err := OpenAH(sealed[:ipv4HdrLen], sealed[ipv4HdrLen:], kaKey, unicast)
		if err != nil || !bytes.Equal(inner, pkt) || info.Seq != seq {
			t.Fatalf("OpenAH(SealAH(%x)) = %x, %+v, %v", pkt, inner, info, err)
		}
	})
}
