package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Host is what an instance changes on the machine: its one privileged
// interface, so that instance logic can run against a fake.
type Host interface {
	// AddVIPs adds the addresses; one already there is not an error.
	AddVIPs(vips []VIP) error
	// DelVIPs removes the addresses; one already gone is not an error.
	DelVIPs(vips []VIP) error
	// Gratuitous sends one gratuitous ARP (IPv4) or unsolicited neighbour
	// advertisement (IPv6) for each address.
	Gratuitous(vips []VIP) error
	Close() error
}

// netHost is the real Host: netlink for addresses, a packet
// socket for ARP, an ICMPv6 socket for neighbour advertisements.
type netHost struct {
	nl      *netlink.Handle
	defDev  string
	arpFD   int
	icmp6   *ipv6.PacketConn
	icmp6ln net.PacketConn
}

// NewHost opens the netlink handle and ARP/NA sockets in the named network
// namespace (empty: the current one). defDev is the interface of VIPs
// that name none.
func NewHost(nsName, defDev string) (Host, error) {
	h := &netHost{defDev: defDev, arpFD: -1}
	err := inNetns(nsName, func() error {
		var err error
		if nsName == "" {
			h.nl, err = netlink.NewHandle()
		} else {
			var ns netns.NsHandle
			ns, err = netns.Get() // we are in it now
			if err == nil {
				h.nl, err = netlink.NewHandleAt(ns)
				ns.Close()
			}
		}
		if err != nil {
			return fmt.Errorf("netlink: %w", err)
		}
		h.arpFD, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return fmt.Errorf("packet socket for gratuitous ARP (needs root or CAP_NET_RAW): %w", err)
		}
		h.icmp6ln, err = net.ListenPacket("ip6:ipv6-icmp", "::")
		if err != nil {
			return fmt.Errorf("ICMPv6 socket for neighbour advertisements: %w", err)
		}
		h.icmp6 = ipv6.NewPacketConn(h.icmp6ln)
		var f ipv6.ICMPFilter
		f.SetAll(true) // we only send
		if err := h.icmp6.SetICMPFilter(&f); err != nil {
			return err
		}
		return h.icmp6.SetMulticastHopLimit(TTL)
	})
	if err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (h *netHost) Close() error {
	if h.nl != nil {
		h.nl.Close()
	}
	if h.arpFD >= 0 {
		unix.Close(h.arpFD)
	}
	if h.icmp6ln != nil {
		h.icmp6ln.Close()
	}
	return nil
}

func (h *netHost) dev(v VIP) string {
	if v.Dev != "" {
		return v.Dev
	}
	return h.defDev
}

func (h *netHost) addr(v VIP) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{
		IP:   v.Prefix.Addr().AsSlice(),
		Mask: net.CIDRMask(v.Prefix.Bits(), v.Prefix.Addr().BitLen()),
	}, Label: v.Label}
	if v.Prefix.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD // as keepalived: usable at once
	}
	return a
}

func (h *netHost) AddVIPs(vips []VIP) error {
	var errs []error
	for _, v := range vips {
		l, err := h.nl.LinkByName(h.dev(v))
		if err != nil {
			errs = append(errs, fmt.Errorf("add VIP %s: interface %s: %w", v.Prefix, h.dev(v), err))
			continue
		}
		if err := h.nl.AddrAdd(l, h.addr(v)); err != nil && !errors.Is(err, syscall.EEXIST) {
			errs = append(errs, fmt.Errorf("add VIP %s dev %s: %w", v.Prefix, h.dev(v), err))
		}
	}
	return errors.Join(errs...)
}

func (h *netHost) DelVIPs(vips []VIP) error {
	var errs []error
	for _, v := range vips {
		l, err := h.nl.LinkByName(h.dev(v))
		if err != nil {
			errs = append(errs, fmt.Errorf("remove VIP %s: interface %s: %w", v.Prefix, h.dev(v), err))
			continue
		}
		if err := h.nl.AddrDel(l, h.addr(v)); err != nil && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("remove VIP %s dev %s: %w", v.Prefix, h.dev(v), err))
		}
	}
	return errors.Join(errs...)
}

func (h *netHost) Gratuitous(vips []VIP) error {
	var errs []error
	for _, v := range vips {
		l, err := h.nl.LinkByName(h.dev(v))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		a := l.Attrs()
		if len(a.HardwareAddr) != 6 {
			continue // no Ethernet address (loopback, tun): nothing to announce
		}
		if v.Prefix.Addr().Is4() {
			err = h.sendARP(a.Index, a.HardwareAddr, v.Prefix.Addr())
		} else {
			err = h.sendNA(a.Index, a.HardwareAddr, v.Prefix.Addr())
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("gratuitous announce of %s on %s: %w", v.Prefix.Addr(), a.Name, err))
		}
	}
	return errors.Join(errs...)
}

// GratuitousARP is the Ethernet frame of a gratuitous ARP request for ip
// from mac: sender and target address both ip, broadcast target hardware.
func GratuitousARP(mac net.HardwareAddr, ip netip.Addr) []byte {
	b := make([]byte, 0, 42)
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	b = append(b, mac...)
	b = binary.BigEndian.AppendUint16(b, unix.ETH_P_ARP)
	b = binary.BigEndian.AppendUint16(b, 1)      // Ethernet
	b = binary.BigEndian.AppendUint16(b, 0x0800) // IPv4
	b = append(b, 6, 4)
	b = binary.BigEndian.AppendUint16(b, 1) // request
	b = append(b, mac...)
	b = append(b, ip.AsSlice()...)
	b = append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	b = append(b, ip.AsSlice()...)
	return b
}

func (h *netHost) sendARP(ifindex int, mac net.HardwareAddr, ip netip.Addr) error {
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifindex, Halen: 6}
	copy(sa.Addr[:], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	return unix.Sendto(h.arpFD, GratuitousARP(mac, ip), 0, sa)
}

// UnsolicitedNA is the ICMPv6 neighbour advertisement (RFC 4861 7.2.6)
// announcing ip at mac: Override set, target link-layer address option.
// The kernel fills in the checksum.
func UnsolicitedNA(mac net.HardwareAddr, ip netip.Addr) []byte {
	b := []byte{136, 0, 0, 0, 0x20, 0, 0, 0} // type, code, checksum, flags: O
	b = append(b, ip.AsSlice()...)
	b = append(b, 2, 1) // target link-layer address, 8 bytes
	return append(b, mac...)
}

func (h *netHost) sendNA(ifindex int, mac net.HardwareAddr, ip netip.Addr) error {
	cm := &ipv6.ControlMessage{HopLimit: TTL, IfIndex: ifindex}
	_, err := h.icmp6.WriteTo(UnsolicitedNA(mac, ip), cm, &net.IPAddr{IP: net.ParseIP("ff02::1")})
	return err
}
