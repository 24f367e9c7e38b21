package vrrp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"syscall"

	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Conn sends and receives VRRP adverts for one instance.
type Conn interface {
	// WriteAdvert sends the VRRP message b to dst.
	WriteAdvert(b []byte, dst netip.Addr) error
	// ReadAdvert blocks until a packet arrives or the Conn is closed.
	ReadAdvert() (Received, error)
	Close() error
}

// PacketConn is a Conn that also sends whole IPv4 packets, IP header
// included: auth_type AH needs it, since the AH ICV covers the header.
type PacketConn interface {
	Conn
	// WritePacket4 sends pkt, an IPv4 packet from its header on.
	WritePacket4(pkt []byte) error
}

// inNetns runs f with the calling goroutine's thread in the named network
// namespace (as made by `ip netns add`); with an empty name it just runs
// f. Sockets made by f stay in that namespace.
func inNetns(name string, f func() error) error {
	if name == "" {
		return f()
	}
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current network namespace: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(name)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("network namespace %q: %w (create it with: ip netns add %s)", name, err, name)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter network namespace %q: %w", name, err)
	}
	ferr := f()
	if err := netns.Set(orig); err != nil {
		// the thread is in the wrong namespace: keep it locked so that
		// it exits with this goroutine instead of serving others.
		return errors.Join(ferr, fmt.Errorf("leave network namespace %q: %w", name, err))
	}
	runtime.UnlockOSThread()
	return ferr
}

func bindToDevice(c syscall.Conn, dev string) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, dev)
	}); err != nil {
		return err
	}
	if serr != nil {
		return fmt.Errorf("bind to device %s: %w", dev, serr)
	}
	return nil
}

// conn4 is a raw IPv4 socket of protocol 112 writing its own IP header
// (TOS 0xc0, TTL 255, as keepalived), bound to the instance's interface.
type conn4 struct {
	c   *net.IPConn
	rc  *ipv4.RawConn
	src netip.Addr
	buf []byte
}

// DialConn4 opens the IPv4 VRRP socket on ifi. src is the address adverts
// come from. With no unicast peers it joins 224.0.0.18 on ifi, with
// multicast loopback off.
func DialConn4(ifi *net.Interface, src netip.Addr, multicast bool) (Conn, error) {
	return dialConn4(ifi, src, multicast, false, IPProto)
}

// dialConn4 opens the IPv4 socket reading IP protocol proto (112, or 51
// for AH); a sendOnly one joins no group and reads nothing (a filter
// drops every packet it would receive).
func dialConn4(ifi *net.Interface, src netip.Addr, multicast, sendOnly bool, proto int) (Conn, error) {
	pc, err := net.ListenPacket("ip4:"+strconv.Itoa(proto), "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("open raw IPv4 socket for VRRP (needs root or CAP_NET_RAW): %w", err)
	}
	c := pc.(*net.IPConn)
	rc, err := ipv4.NewRawConn(c)
	if err != nil {
		c.Close()
		return nil, err
	}
	fail := func(what string, err error) (Conn, error) {
		c.Close()
		return nil, fmt.Errorf("VRRP socket on %s: %s: %w", ifi.Name, what, err)
	}
	if err := bindToDevice(c, ifi.Name); err != nil {
		return fail("bind", err)
	}
	if sendOnly {
		if err := dropReads(c); err != nil {
			return fail("drop filter", err)
		}
	}
	if multicast || sendOnly {
		if err := rc.SetMulticastInterface(ifi); err != nil {
			return fail("multicast interface", err)
		}
		if err := rc.SetMulticastLoopback(false); err != nil {
			return fail("multicast loop", err)
		}
		if err := rc.SetMulticastTTL(TTL); err != nil {
			return fail("multicast TTL", err)
		}
	}
	if multicast && !sendOnly {
		if err := rc.JoinGroup(ifi, &net.IPAddr{IP: Group4.AsSlice()}); err != nil {
			return fail("join 224.0.0.18", err)
		}
	}
	return &conn4{c: c, rc: rc, src: src, buf: make([]byte, 65536)}, nil
}

func (c *conn4) WriteAdvert(b []byte, dst netip.Addr) error {
	h := &ipv4.Header{
		Version:  ipv4.Version,
		Len:      ipv4.HeaderLen,
		TOS:      0xc0, // internetwork control
		TotalLen: ipv4.HeaderLen + len(b),
		TTL:      TTL,
		Protocol: IPProto,
		Src:      c.src.AsSlice(),
		Dst:      dst.AsSlice(),
	}
	return c.rc.WriteTo(h, b, nil)
}

// WritePacket4 sends pkt as it is: the kernel fills in only the header
// checksum (and the id when it is zero).
func (c *conn4) WritePacket4(pkt []byte) error {
	h, err := ipv4.ParseHeader(pkt)
	if err != nil {
		return fmt.Errorf("vrrp: packet to send: %w", err)
	}
	return c.rc.WriteTo(h, pkt[h.Len:], nil)
}

func (c *conn4) ReadAdvert() (Received, error) {
	h, p, _, err := c.rc.ReadFrom(c.buf)
	if err != nil {
		return Received{}, err
	}
	if h.TotalLen != 0 && h.TotalLen != h.Len+len(p) {
		// ip_tot_len disagrees with what arrived: hand the checks an
		// empty message so that it is dropped as too short.
		p = p[:0]
	}
	src, _ := netip.AddrFromSlice(h.Src.To4())
	dst, _ := netip.AddrFromSlice(h.Dst.To4())
	// the raw socket hands the header over as it came (network byte
	// order on Linux): keep it for AH, whose ICV covers it
	return Received{Src: src, Dst: dst, TTL: h.TTL, Payload: append([]byte(nil), p...),
		IPHeader: append([]byte(nil), c.buf[:h.Len]...)}, nil
}

func (c *conn4) Close() error { return c.c.Close() }

// conn6 is a raw IPv6 socket of protocol 112; the kernel computes and
// verifies the checksum (IPV6_CHECKSUM at offset 6), as for keepalived.
type conn6 struct {
	c   *net.IPConn
	pc  *ipv6.PacketConn
	ifi *net.Interface
	src netip.Addr
	buf []byte
}

// DialConn6 opens the IPv6 VRRP socket on ifi; see DialConn4.
func DialConn6(ifi *net.Interface, src netip.Addr, multicast bool) (Conn, error) {
	return dialConn6(ifi, src, multicast, false)
}

func dialConn6(ifi *net.Interface, src netip.Addr, multicast, sendOnly bool) (Conn, error) {
	lp, err := net.ListenPacket("ip6:112", "::")
	if err != nil {
		return nil, fmt.Errorf("open raw IPv6 socket for VRRP (needs root or CAP_NET_RAW): %w", err)
	}
	c := lp.(*net.IPConn)
	pc := ipv6.NewPacketConn(c)
	fail := func(what string, err error) (Conn, error) {
		c.Close()
		return nil, fmt.Errorf("VRRP socket on %s: %s: %w", ifi.Name, what, err)
	}
	if err := bindToDevice(c, ifi.Name); err != nil {
		return fail("bind", err)
	}
	if err := pc.SetChecksum(true, 6); err != nil {
		return fail("IPV6_CHECKSUM", err)
	}
	if err := pc.SetHopLimit(TTL); err != nil {
		return fail("hop limit", err)
	}
	if err := pc.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst, true); err != nil {
		return fail("control messages", err)
	}
	if sendOnly {
		if err := dropReads(c); err != nil {
			return fail("drop filter", err)
		}
	}
	if multicast || sendOnly {
		if err := pc.SetMulticastInterface(ifi); err != nil {
			return fail("multicast interface", err)
		}
		if err := pc.SetMulticastLoopback(false); err != nil {
			return fail("multicast loop", err)
		}
		if err := pc.SetMulticastHopLimit(TTL); err != nil {
			return fail("multicast hop limit", err)
		}
	}
	if multicast && !sendOnly {
		if err := pc.JoinGroup(ifi, &net.IPAddr{IP: Group6.AsSlice()}); err != nil {
			return fail("join ff02::12", err)
		}
	}
	return &conn6{c: c, pc: pc, ifi: ifi, src: src, buf: make([]byte, 65536)}, nil
}

func (c *conn6) WriteAdvert(b []byte, dst netip.Addr) error {
	cm := &ipv6.ControlMessage{HopLimit: TTL, IfIndex: c.ifi.Index}
	if c.src.IsValid() {
		cm.Src = c.src.AsSlice()
	}
	// a numeric zone: names resolve in the calling thread's namespace,
	// which need not be the socket's
	_, err := c.pc.WriteTo(b, cm, &net.IPAddr{IP: dst.AsSlice(), Zone: strconv.Itoa(c.ifi.Index)})
	return err
}

func (c *conn6) ReadAdvert() (Received, error) {
	n, cm, from, err := c.pc.ReadFrom(c.buf)
	if err != nil {
		return Received{}, err
	}
	r := Received{TTL: -1, Payload: append([]byte(nil), c.buf[:n]...), ChecksumDone: true}
	if ipa, ok := from.(*net.IPAddr); ok {
		r.Src, _ = netip.AddrFromSlice(ipa.IP.To16())
	}
	if cm != nil {
		r.TTL = cm.HopLimit
		r.Dst, _ = netip.AddrFromSlice(cm.Dst.To16())
	}
	return r, nil
}

func (c *conn6) Close() error { return c.c.Close() }

// dropReads attaches a socket filter that accepts no packet, for sockets
// that only send.
func dropReads(c syscall.Conn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	prog := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptSockFprog(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
			&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]})
	}); err != nil {
		return err
	}
	return serr
}

// splitConn reads adverts from one socket and sends them from another:
// use_vmac receives on the base interface and sends from the macvlan.
type splitConn struct {
	Conn
	out Conn
}

func (c splitConn) WriteAdvert(b []byte, dst netip.Addr) error { return c.out.WriteAdvert(b, dst) }

func (c splitConn) WritePacket4(pkt []byte) error {
	pw, ok := c.out.(PacketConn)
	if !ok {
		return errors.New("vrrp: this connection cannot send whole IPv4 packets")
	}
	return pw.WritePacket4(pkt)
}

func (c splitConn) Close() error { return errors.Join(c.Conn.Close(), c.out.Close()) }
