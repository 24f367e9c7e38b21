package toa

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
)

// Options configure a Reader.
type Options struct {
	// Interfaces are where the director's packets arrive.
	Interfaces []string
	// Mode is "native", "generic", or "" for native with a fallback to
	// generic.
	Mode string
}

// Reader records the TOA option of arriving TCP packets. The table holds
// the last 65536 connections (least recently seen ones go first).
type Reader struct {
	objs  toaObjects
	links []link.Link
}

// NewReader loads the TOA reader and attaches it to opts.Interfaces (none:
// loaded only, for tests). An interface takes one XDP program: it cannot
// be one the realserver tunnel decapsulation is attached to.
func NewReader(opts Options) (*Reader, error) {
	r := &Reader{}
	if err := loadToaObjects(&r.objs, nil); err != nil {
		return nil, fmt.Errorf("toa: loading the BPF program: %w (run as root on Linux 5.10 or later)", err)
	}
	for _, name := range opts.Interfaces {
		l, err := netlink.LinkByName(name)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("toa: interface %q: %w", name, err)
		}
		lk, err := attach(r.objs.ToaRead, l.Attrs().Index, opts.Mode)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("toa: attaching to %s: %w", name, err)
		}
		r.links = append(r.links, lk)
	}
	return r, nil
}

func attach(p *ebpf.Program, idx int, mode string) (link.Link, error) {
	if mode != "generic" {
		lk, err := link.AttachXDP(link.XDPOptions{Program: p, Interface: idx, Flags: link.XDPDriverMode})
		if err == nil || mode == "native" {
			return lk, err
		}
	}
	return link.AttachXDP(link.XDPOptions{Program: p, Interface: idx, Flags: link.XDPGenericMode})
}

// Close detaches the program and frees its table.
func (r *Reader) Close() error {
	for _, l := range r.links {
		l.Close()
	}
	r.links = nil
	return r.objs.Close()
}

// Seen is how many packets with a TOA option the reader recorded.
func (r *Reader) Seen() uint64 {
	var n uint64
	r.objs.ToaSeen.Lookup(uint32(0), &n)
	return n
}

// Lookup returns the client of the connection between remote (the
// director's local address and port, what the socket calls the peer) and
// local (the real server's address and port).
func (r *Reader) Lookup(remote, local netip.AddrPort) (netip.AddrPort, bool) {
	ra, la := remote.Addr().Unmap(), local.Addr().Unmap()
	if ra.Is4() != la.Is4() {
		return netip.AddrPort{}, false
	}
	k := toaToaKey{Sport: htons(remote.Port()), Dport: htons(local.Port())}
	k.Saddr, k.Family = words(ra)
	k.Daddr, _ = words(la)
	var v toaToaVal
	if err := r.objs.ToaConns.Lookup(&k, &v); err != nil {
		return netip.AddrPort{}, false
	}
	var a netip.Addr
	if v.Family == afInet {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], v.Addr[0])
		a = netip.AddrFrom4(b)
	} else {
		var b [16]byte
		for i := range v.Addr {
			binary.LittleEndian.PutUint32(b[4*i:], v.Addr[i])
		}
		a = netip.AddrFrom16(b)
	}
	return netip.AddrPortFrom(a, htons(v.Port)), true
}

// ClientAddr returns the client of an accepted TCP connection, from the
// TOA option its handshake carried; false when it carried none (a client
// that did not come through a FullNAT director).
func (r *Reader) ClientAddr(c net.Conn) (netip.AddrPort, bool) {
	remote, ok1 := addrPort(c.RemoteAddr())
	local, ok2 := addrPort(c.LocalAddr())
	if !ok1 || !ok2 {
		return netip.AddrPort{}, false
	}
	return r.Lookup(remote, local)
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	t, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	return t.AddrPort(), true
}

// Listener wraps ln so that the connections it accepts report the
// client from TOA as their RemoteAddr (the director's address when there
// is none).
func (r *Reader) Listener(ln net.Listener) net.Listener { return &listener{Listener: ln, r: r} }

type listener struct {
	net.Listener
	r *Reader
}

func (l *listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if client, ok := l.r.ClientAddr(c); ok {
		return &conn{Conn: c, remote: net.TCPAddrFromAddrPort(client)}, nil
	}
	return c, nil
}

// conn is an accepted connection whose RemoteAddr is the client.
type conn struct {
	net.Conn
	remote net.Addr
}

func (c *conn) RemoteAddr() net.Addr { return c.remote }

// Director returns the address the connection really came from (the
// director's local address) when c was accepted by a Reader's Listener.
func Director(c net.Conn) (net.Addr, error) {
	if w, ok := c.(*conn); ok {
		return w.Conn.RemoteAddr(), nil
	}
	return nil, errors.New("toa: not a connection from a Reader's Listener")
}

const (
	afInet  = 2
	afInet6 = 10
)

func words(a netip.Addr) (w [4]uint32, family uint32) {
	if a.Is4() {
		b := a.As4()
		w[0] = binary.LittleEndian.Uint32(b[:])
		return w, afInet
	}
	b := a.As16()
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return w, afInet6
}

func htons(p uint16) uint16 { return p<<8 | p>>8 }
