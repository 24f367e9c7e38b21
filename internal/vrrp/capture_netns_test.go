package vrrp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/netns/netnstest"
	"golang.org/x/sys/unix"
)

// capture records the Ethernet frames an interface in a namespace
// receives (not those it sends), through an AF_PACKET socket, until the
// test ends.
type capture struct {
	mu     sync.Mutex
	frames [][]byte
}

func startCapture(t *testing.T, ns *netnstest.NS, dev string) *capture {
	t.Helper()
	fd := -1
	err := inNetns(ns.Name, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return err
		}
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 100000})
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		t.Fatalf("capture on %s in %s: %v", dev, ns.Name, err)
	}
	c := &capture{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for ctx.Err() == nil {
			n, from, err := unix.Recvfrom(fd, buf, 0)
			if err != nil {
				if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
					continue
				}
				return
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			c.mu.Lock()
			c.frames = append(c.frames, bytes.Clone(buf[:n]))
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done; unix.Close(fd) })
	return c
}

// take returns the frames captured so far and forgets them.
func (c *capture) take() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.frames
	c.frames = nil
	return f
}

// frame is a decoded Ethernet frame of the kinds these tests look at.
type frame struct {
	dst, src  net.HardwareAddr
	etherType uint16
	// IPv4 or IPv6
	ipSrc, ipDst netip.Addr
	ttl          int
	proto        int // IP protocol / IPv6 next header
	l4           []byte
	// ARP
	arp []byte
}

func parseFrame(b []byte) (frame, bool) {
	if len(b) < 14 {
		return frame{}, false
	}
	f := frame{dst: net.HardwareAddr(b[0:6]), src: net.HardwareAddr(b[6:12]), etherType: binary.BigEndian.Uint16(b[12:14])}
	p := b[14:]
	switch f.etherType {
	case unix.ETH_P_ARP:
		f.arp = p
	case unix.ETH_P_IP:
		if len(p) < 20 {
			return f, false
		}
		hl := int(p[0]&0x0f) * 4
		tot := int(binary.BigEndian.Uint16(p[2:4]))
		if hl < 20 || tot > len(p) || tot < hl {
			return f, false
		}
		f.ipSrc, _ = netip.AddrFromSlice(p[12:16])
		f.ipDst, _ = netip.AddrFromSlice(p[16:20])
		f.ttl, f.proto, f.l4 = int(p[8]), int(p[9]), p[hl:tot]
	case unix.ETH_P_IPV6:
		if len(p) < 40 {
			return f, false
		}
		plen := int(binary.BigEndian.Uint16(p[4:6]))
		if 40+plen > len(p) {
			return f, false
		}
		f.ipSrc, _ = netip.AddrFromSlice(p[8:24])
		f.ipDst, _ = netip.AddrFromSlice(p[24:40])
		f.ttl, f.proto, f.l4 = int(p[7]), int(p[6]), p[40:40+plen]
	}
	return f, true
}

// vrrpFrames are the received VRRP adverts (IP protocol 112).
func vrrpFrames(frames [][]byte) []frame {
	var out []frame
	for _, b := range frames {
		if f, ok := parseFrame(b); ok && f.proto == IPProto && f.l4 != nil {
			out = append(out, f)
		}
	}
	return out
}

// macOf returns the MAC address of dev in the namespace.
func macOf(t *testing.T, ns *netnstest.NS, dev string) net.HardwareAddr {
	t.Helper()
	var mac net.HardwareAddr
	err := inNetns(ns.Name, func() error {
		ifi, err := net.InterfaceByName(dev)
		if err == nil {
			mac = ifi.HardwareAddr
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// icmp6Checksum verifies the ICMPv6 checksum of b with its pseudo-header.
func icmp6ChecksumOK(src, dst netip.Addr, b []byte) bool {
	var sum uint32
	add := func(p []byte) {
		for i := 0; i+1 < len(p); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(p[i:]))
		}
		if len(p)%2 == 1 {
			sum += uint32(p[len(p)-1]) << 8
		}
	}
	s, d := src.As16(), dst.As16()
	add(s[:])
	add(d[:])
	var ph [8]byte
	binary.BigEndian.PutUint32(ph[:4], uint32(len(b)))
	ph[7] = 58
	add(ph[:])
	add(b)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum) == 0xffff
}

var broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// checkGratuitousARP returns why f is not a gratuitous ARP for vip from
// mac, or "" when it is one.
func checkGratuitousARP(f frame, mac net.HardwareAddr, vip netip.Addr) string {
	a := f.arp
	var why []string
	bad := func(s string) { why = append(why, s) }
	if len(a) < 28 {
		return "ARP payload shorter than 28 bytes"
	}
	if !bytes.Equal(f.dst, broadcastMAC) {
		bad("Ethernet destination " + f.dst.String() + ", want broadcast")
	}
	if !bytes.Equal(f.src, mac) {
		bad("Ethernet source " + f.src.String() + ", want " + mac.String())
	}
	if binary.BigEndian.Uint16(a[0:2]) != 1 || binary.BigEndian.Uint16(a[2:4]) != unix.ETH_P_IP || a[4] != 6 || a[5] != 4 {
		bad("not Ethernet/IPv4 ARP")
	}
	if op := binary.BigEndian.Uint16(a[6:8]); op != 1 {
		bad("opcode " + string(rune('0'+op)) + ", want 1 (request)")
	}
	if !bytes.Equal(a[8:14], mac) {
		bad("sender MAC " + net.HardwareAddr(a[8:14]).String() + ", want " + mac.String())
	}
	if spa, _ := netip.AddrFromSlice(a[14:18]); spa != vip {
		bad("sender IP " + spa.String() + ", want the VIP " + vip.String())
	}
	if tpa, _ := netip.AddrFromSlice(a[24:28]); tpa != vip {
		bad("target IP " + tpa.String() + ", want the VIP " + vip.String())
	}
	return strings.Join(why, "; ")
}

// checkUnsolicitedNA returns why f is not an unsolicited neighbour
// advertisement for vip at mac, or "".
func checkUnsolicitedNA(f frame, mac net.HardwareAddr, vip netip.Addr) string {
	var why []string
	bad := func(s string) { why = append(why, s) }
	b := f.l4
	if f.proto != 58 || len(b) < 32 || b[0] != 136 {
		return "not a neighbour advertisement of 32 bytes or more"
	}
	if !bytes.Equal(f.src, mac) {
		bad("Ethernet source " + f.src.String() + ", want " + mac.String())
	}
	if f.ipDst != netip.MustParseAddr("ff02::1") {
		bad("IPv6 destination " + f.ipDst.String() + ", want ff02::1")
	}
	if !f.ipSrc.IsLinkLocalUnicast() {
		bad("IPv6 source " + f.ipSrc.String() + " is not link-local")
	}
	if f.ttl != 255 {
		bad("hop limit is not 255")
	}
	if b[1] != 0 {
		bad("code is not 0")
	}
	if !icmp6ChecksumOK(f.ipSrc, f.ipDst, b) {
		bad("bad ICMPv6 checksum")
	}
	if b[4]&0x20 == 0 {
		bad("override flag not set")
	}
	if b[4]&0x40 != 0 {
		bad("solicited flag set in an unsolicited advertisement")
	}
	if tgt, _ := netip.AddrFromSlice(b[8:24]); tgt != vip {
		bad("target " + tgt.String() + ", want the VIP " + vip.String())
	}
	found := false
	for o := b[24:]; len(o) >= 8 && o[1] > 0 && int(o[1])*8 <= len(o); o = o[int(o[1])*8:] {
		if o[0] == 2 && o[1] == 1 {
			found = true
			if !bytes.Equal(o[2:8], mac) {
				bad("target link-layer address " + net.HardwareAddr(o[2:8]).String() + ", want " + mac.String())
			}
		}
	}
	if !found {
		bad("no target link-layer address option")
	}
	return strings.Join(why, "; ")
}

func TestNetnsGratuitous(t *testing.T) {
	netnstest.Require(t, "sysctl")
	tests := []struct {
		name string
		vip  string
		vmac bool
	}{
		{name: "IPv4 ARP", vip: "198.18.1.100/24"},
		{name: "IPv6 NA", vip: "2001:db8:1::100/64"},
		{name: "IPv4 ARP from vmac", vip: "198.18.1.100/24", vmac: true},
		{name: "IPv6 NA from vmac", vip: "2001:db8:1::100/64", vmac: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPair(t)
			vip := netip.MustParsePrefix(tt.vip)
			capt := startCapture(t, p.b, "eth0")
			cfg := finished(InstanceConfig{Name: "VI_G", Interface: "eth0", VRID: 51, Priority: 150, Version: 3,
				AdvertInt: 100 * time.Millisecond, VIPs: []VIP{{Prefix: vip}}, GARPMasterRepeat: 2,
				GARPMasterDelay: -1, UseVMAC: tt.vmac})
			g := startGVS(t, p.a, cfg)
			waitUntil(t, 3*time.Second, "instance becomes MASTER", func() bool { return g.Status().State == StateMaster })
			mac := macOf(t, p.a, "eth0")
			if tt.vmac {
				mac = VMAC(51, vip.Addr().Is6())
				if got := macOf(t, p.a, "vrrp.51"); !bytes.Equal(got, mac) {
					t.Fatalf("vrrp.51 has MAC %s, want %s", got, mac)
				}
			}
			var garps, adverts int
			var problems []string
			waitUntil(t, 2*time.Second, "two gratuitous announcements and an advert on the peer", func() bool {
				for _, b := range capt.take() {
					f, ok := parseFrame(b)
					if !ok {
						continue
					}
					switch {
					case f.arp != nil && vip.Addr().Is4():
						if why := checkGratuitousARP(f, mac, vip.Addr()); why != "" {
							problems = append(problems, "ARP: "+why)
						} else {
							garps++
						}
					case f.proto == 58 && len(f.l4) > 0 && f.l4[0] == 136:
						if why := checkUnsolicitedNA(f, mac, vip.Addr()); why != "" {
							problems = append(problems, "NA: "+why)
						} else {
							garps++
						}
					case f.proto == IPProto:
						adverts++
						if !bytes.Equal(f.src, mac) {
							problems = append(problems, "advert from Ethernet source "+f.src.String()+", want "+mac.String())
						}
						group := Group4
						if vip.Addr().Is6() {
							group = Group6
						}
						if f.ipDst != group || f.ttl != TTL {
							problems = append(problems, "advert to "+f.ipDst.String()+", want "+group.String()+" with TTL 255")
						}
					}
				}
				return garps >= 2 && adverts > 0 || len(problems) > 0
			})
			if len(problems) > 0 {
				t.Fatalf("wrong frames on the wire:\n%s", strings.Join(problems, "\n"))
			}
			g.stop(t)
			if tt.vmac {
				if _, err := p.a.Output("ip", "link", "show", "vrrp.51"); err == nil {
					t.Fatal("vrrp.51 is still there after the instance stopped")
				}
			}
		})
	}
}
