package ipvssync

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// openSender opens the master's socket as the kernel's make_send_sock
// does: multicasts leave by the interface with the configured TTL, are not
// looped back, and (IPv4) come from the interface's address.
func openSender(cfg Config, ifi *net.Interface) (*net.UDPConn, *net.UDPAddr, error) {
	dst := &net.UDPAddr{IP: cfg.Group.AsSlice(), Port: int(cfg.Port)}
	if cfg.Group.Is4() {
		src := &net.UDPAddr{}
		if a, ok := ifaceAddr4(ifi); ok {
			src.IP = a.AsSlice()
		}
		c, err := net.ListenUDP("udp4", src)
		if err != nil {
			return nil, nil, fmt.Errorf("sync master socket on %s: %w", ifi.Name, err)
		}
		p := ipv4.NewPacketConn(c)
		if err := firstErr(p.SetMulticastInterface(ifi), p.SetMulticastTTL(int(cfg.TTL)), p.SetMulticastLoopback(false)); err != nil {
			c.Close()
			return nil, nil, fmt.Errorf("sync master socket on %s: %w", ifi.Name, err)
		}
		return c, dst, nil
	}
	dst.Zone = ifi.Name
	c, err := net.ListenUDP("udp6", &net.UDPAddr{})
	if err != nil {
		return nil, nil, fmt.Errorf("sync master socket on %s: %w", ifi.Name, err)
	}
	p := ipv6.NewPacketConn(c)
	if err := firstErr(p.SetMulticastInterface(ifi), p.SetMulticastHopLimit(int(cfg.TTL)), p.SetMulticastLoopback(false)); err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("sync master socket on %s: %w", ifi.Name, err)
	}
	return c, dst, nil
}

// openReceiver opens the backup's socket as the kernel's
// make_receive_sock does: bound to the group and port on the interface
// (SO_BINDTODEVICE, SO_REUSEADDR), member of the group there.
func openReceiver(ctx context.Context, cfg Config, ifi *net.Interface) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			if serr == nil {
				serr = unix.BindToDevice(int(fd), ifi.Name)
			}
		})
		return firstErr(err, serr)
	}}
	group := &net.UDPAddr{IP: cfg.Group.AsSlice()}
	if cfg.Group.Is4() {
		c, err := lc.ListenPacket(ctx, "udp4", netip.AddrPortFrom(cfg.Group, cfg.Port).String())
		if err != nil {
			return nil, fmt.Errorf("sync backup socket on %s: %w", ifi.Name, err)
		}
		if err := ipv4.NewPacketConn(c).JoinGroup(ifi, group); err != nil {
			c.Close()
			return nil, fmt.Errorf("sync backup on %s: joining %s: %w", ifi.Name, cfg.Group, err)
		}
		return c, nil
	}
	addr := netip.AddrPortFrom(cfg.Group.WithZone(ifi.Name), cfg.Port)
	c, err := lc.ListenPacket(ctx, "udp6", addr.String())
	if err != nil {
		return nil, fmt.Errorf("sync backup socket on %s: %w", ifi.Name, err)
	}
	if err := ipv6.NewPacketConn(c).JoinGroup(ifi, group); err != nil {
		c.Close()
		return nil, fmt.Errorf("sync backup on %s: joining %s: %w", ifi.Name, cfg.Group, err)
	}
	return c, nil
}

func ifaceAddr4(ifi *net.Interface) (netip.Addr, bool) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap().Is4() {
				return ip.Unmap(), true
			}
		}
	}
	return netip.Addr{}, false
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
