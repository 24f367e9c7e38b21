package xdp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/gvs-lb/gvs/internal/fwmark"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// TestFWMarkKeySize holds fwmKey to the program's struct fwm_key, whose
// size the classifier's trie has.
func TestFWMarkKeySize(t *testing.T) {
	spec, err := loadLb()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := binary.Size(fwmKey{}), int(spec.Maps["fwm"].InnerMap.KeySize); got != want {
		t.Fatalf("fwmKey is %d bytes, struct fwm_key %d", got, want)
	}
}

func loadRules(t testing.TB, v4, v6 string) *fwmark.Rules {
	t.Helper()
	dir := t.TempDir()
	p4, p6 := filepath.Join(dir, "rules.v4"), filepath.Join(dir, "rules.v6")
	os.WriteFile(p4, []byte(v4), 0o644)
	os.WriteFile(p6, []byte(v6), 0o644)
	rs, err := fwmark.Load(p4, p6)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func fwmService(mark uint32, v6 bool, persistent bool, dests ...ipvs.Dest) ipvs.ServiceConfig {
	a := netip.IPv4Unspecified()
	if v6 {
		a = netip.IPv6Unspecified()
	}
	s := ipvs.Service{ServiceKey: ipvs.ServiceKey{Addr: a, FWMark: mark}, Scheduler: "rr", Netmask: 32}
	if v6 {
		s.Netmask = 128
	}
	if persistent {
		s.Flags, s.Timeout = ipvs.FlagPersistent, 300
	}
	return ipvs.ServiceConfig{Service: s, Dests: dests}
}

// TestFWMarkClassifier: with the rules, a new connection to a marked
// port goes to the firewall-mark service, before the address/port service
// of the same port, as the kernel's ip_vs_service_find picks; its
// persistence holds across the marked ports; an unmarked port goes to its
// own service or to the stack; without rules or without firewall-mark
// services the program looks nothing up.
func TestFWMarkClassifier(t *testing.T) {
	labNS(t, 11, 12, 13)
	dr := func(a netip.Addr) ipvs.Dest { return ipvs.Dest{Addr: a, Method: ipvs.Route, Weight: 1} }
	e := newTestEngine(t, snapOf(
		fwmService(1, false, true, dr(rsIP(11)), dr(rsIP(12))),
		fwmService(1, true, false, dr(v6(12))),
		oneService(vip, ipvs.TCP, "rr", ipvs.Dest{Addr: rsIP(13), Port: 80, Method: ipvs.Route, Weight: 1}),
		oneService(netip.AddrPortFrom(vip.Addr(), 22), ipvs.TCP, "rr", ipvs.Dest{Addr: rsIP(13), Port: 22, Method: ipvs.Route, Weight: 1}),
	))
	// sent returns the real server a SYN from src to dst went to (its
	// MAC's last byte), or 0 with the verdict when it was not forwarded.
	sent := func(src, dst netip.AddrPort, proto ipvs.Protocol) (byte, uint32) {
		t.Helper()
		flags := byte(tcpSYN)
		if proto == ipvs.UDP {
			flags = 0
		}
		ret, out := runOut(t, e, build(pktSpec{src: src, dst: dst, proto: proto, flags: flags}))
		if ret != xdpRedirect && ret != xdpTX {
			return 0, ret
		}
		if !bytes.Equal(out[:5], rsMAC(0)[:5]) {
			t.Fatalf("%s > %s: forwarded to MAC %x, no real server's", src, dst, out[:6])
		}
		return out[5], ret
	}
	cli := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(client.Addr(), port) }
	at := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(vip.Addr(), port) }

	// No rules yet: the address/port service serves port 80.
	if err := e.objs.Fwm.Lookup(uint32(0), new(uint32)); err == nil {
		t.Fatal("a classifier is installed without rules")
	}
	if rs, _ := sent(cli(1000), at(80), ipvs.TCP); rs != 13 {
		t.Fatalf("without rules: port 80 went to real server %d, want the address/port service's 13", rs)
	}

	rules := loadRules(t, `*mangle
-A PREROUTING -d 198.18.1.10/32 -p tcp -m multiport --dports 80,443 -j MARK --set-xmark 0x1/0xffffffff
-A PREROUTING -d 198.18.1.10/32 -p udp -m udp --dport 53 -j MARK --set-xmark 0x1/0xffffffff
-A PREROUTING -d 198.18.1.10/32 -p tcp -m tcp --dport 8080 -j MARK --set-xmark 0x2/0xffffffff
COMMIT
`, "-A PREROUTING -d 2001:db8:2::10 -p tcp -m tcp --dport 443 -j MARK --set-mark 1\n")
	if err := e.SetFWMarkRules(rules); err != nil {
		t.Fatal(err)
	}
	first, _ := sent(cli(1001), at(80), ipvs.TCP)
	if first != 11 && first != 12 {
		t.Fatalf("marked port 80 went to real server %d, want the firewall-mark service's 11 or 12", first)
	}
	// Persistence groups by mark: every marked port and protocol of the
	// client goes to the same real server although rr alternates.
	for i, to := range []netip.AddrPort{at(443), at(80), at(443), at(53)} {
		proto := ipvs.TCP
		if to.Port() == 53 {
			proto = ipvs.UDP
		}
		if rs, _ := sent(cli(uint16(1002+i)), to, proto); rs != first {
			t.Errorf("%s %s from the same client went to real server %d, want %d (persistence of FWM 1)", proto, to, rs, first)
		}
	}
	other := netip.AddrPortFrom(netip.MustParseAddr("198.18.2.8"), 1000)
	if rs, _ := sent(other, at(443), ipvs.TCP); rs == first {
		t.Errorf("a second client went to real server %d too: rr should give it the other one", rs)
	}
	// Unmarked, and marked with a mark no service has: the address/port
	// services and the stack, as without rules.
	if rs, _ := sent(cli(1010), at(22), ipvs.TCP); rs != 13 {
		t.Errorf("unmarked port 22 went to real server %d, want its own service's 13", rs)
	}
	if rs, ret := sent(cli(1011), at(8080), ipvs.TCP); rs != 0 || ret != xdpPass {
		t.Errorf("port 8080 (mark 2, no service) went to %d with verdict %d, want the stack (XDP_PASS)", rs, ret)
	}
	if rs, ret := sent(cli(1012), at(443), ipvs.UDP); rs != 0 || ret != xdpPass {
		t.Errorf("UDP 443 (unmarked) went to %d with verdict %d, want the stack", rs, ret)
	}
	// IPv6 has its own rules and service.
	if rs, _ := sent(netip.AddrPortFrom(cli6.Addr(), 1000), netip.AddrPortFrom(vip6.Addr(), 443), ipvs.TCP); rs != 12 {
		t.Errorf("IPv6 443 went to real server %d, want FWM 1 IPv6's 12", rs)
	}
	if rs, ret := sent(netip.AddrPortFrom(cli6.Addr(), 1001), netip.AddrPortFrom(vip6.Addr(), 80), ipvs.TCP); rs != 0 || ret != xdpPass {
		t.Errorf("IPv6 80 (unmarked) went to %d with verdict %d, want the stack", rs, ret)
	}

	// Established connections keep their server when the rules go.
	if err := e.SetFWMarkRules(nil); err != nil {
		t.Fatal(err)
	}
	if err := e.objs.Fwm.Lookup(uint32(0), new(uint32)); err == nil {
		t.Fatal("the classifier stayed without rules")
	}
	if rs, _ := sent(cli(1020), at(80), ipvs.TCP); rs != 13 {
		t.Errorf("rules removed: port 80 went to real server %d, want 13", rs)
	}
	ret, out := runOut(t, e, build(pktSpec{src: cli(1001), dst: at(80), proto: ipvs.TCP, flags: tcpACK}))
	if ret != xdpRedirect && ret != xdpTX || out[5] != first {
		t.Errorf("an established marked connection's ACK: verdict %d to %x, want real server %d", ret, out[:6], first)
	}
}

// TestSyncFWMark: a firewall-mark service's connections and persistence
// templates travel in the kernel's sync format with their mark, and the
// backup puts them under its own firewall-mark service: an established
// connection's packets and the client's next connection on another
// marked port go to the master's real server.
func TestSyncFWMark(t *testing.T) {
	labNS(t, 11, 12)
	dr := func(n byte) ipvs.Dest { return ipvs.Dest{Addr: rsIP(n), Method: ipvs.Route, Weight: 1} }
	snap := snapOf(fwmService(1, false, true, dr(11), dr(12)))
	rules := loadRules(t, "-A PREROUTING -d 198.18.1.10 -p tcp -m multiport --dports 80,443 -j MARK --set-mark 1\n", "")
	master, backup := newTestEngine(t, snap), newTestEngine(t, snap)
	for _, e := range []*Engine{master, backup} {
		if err := e.SetFWMarkRules(rules); err != nil {
			t.Fatal(err)
		}
	}
	at := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(vip.Addr(), port) }
	// The backup's own choice for another client comes first, so that
	// its rr would give this client's next connection the other server.
	runOut(t, backup, build(pktSpec{src: netip.MustParseAddrPort("198.18.2.9:1000"), dst: at(80), proto: ipvs.TCP, flags: tcpSYN}))
	v, out := runOut(t, master, build(pktSpec{src: client, dst: at(80), proto: ipvs.TCP, flags: tcpSYN}))
	if v != xdpRedirect {
		t.Fatalf("master SYN verdict %d", v)
	}
	rs := out[5]
	runOut(t, master, build(pktSpec{src: client, dst: at(80), proto: ipvs.TCP, flags: tcpACK}))

	listed := master.SyncConns()
	var conns, templates int
	for _, c := range listed {
		if c.FWMark != 1 {
			t.Errorf("listed without mark 1: %+v", c)
		}
		if c.Template {
			templates++
		} else {
			conns++
		}
	}
	if conns != 1 || templates != 1 {
		t.Fatalf("master lists %d connections and %d templates, want 1 and 1: %+v", conns, templates, listed)
	}
	if in, skipped := backup.InstallSynced(overTheWire(t, listed)); in != 2 || skipped != 0 {
		t.Fatalf("InstallSynced = %d installed, %d skipped; want 2 and 0", in, skipped)
	}
	if v, out := runOut(t, backup, build(pktSpec{src: client, dst: at(80), proto: ipvs.TCP, flags: tcpACK, payload: 4})); v != xdpRedirect || out[5] != rs {
		t.Errorf("the backup forwards the synced connection's ACK with verdict %d to %x, want real server %d", v, out[:6], rs)
	}
	next := netip.AddrPortFrom(client.Addr(), client.Port()+1)
	if v, out := runOut(t, backup, build(pktSpec{src: next, dst: at(443), proto: ipvs.TCP, flags: tcpSYN})); v != xdpRedirect || out[5] != rs {
		t.Errorf("the client's next connection (443) on the backup: verdict %d to %x, want real server %d by the synced template", v, out[:6], rs)
	}
}
