package proxy

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// recvErrors sets IP_RECVERR (IPV6_RECVERR) on an unconnected UDP socket:
// the ICMP errors its datagrams meet are queued with the address they were
// sent to, for readErrors.
func recvErrors(pc *net.UDPConn, is4 bool) error {
	rc, err := pc.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if is4 {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_RECVERR, 1)
		} else {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_RECVERR, 1)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// readErrors drains the socket's error queue, calling report with the
// address each failed datagram was sent to and the ICMP error it met.
func readErrors(fd int, report func(to netip.AddrPort, err error)) {
	var b [64]byte
	var oob [256]byte
	for {
		_, oobn, _, sa, err := unix.Recvmsg(fd, b[:], oob[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err != nil {
			return
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			isErr := (m.Header.Level == unix.SOL_IP && m.Header.Type == unix.IP_RECVERR) ||
				(m.Header.Level == unix.SOL_IPV6 && m.Header.Type == unix.IPV6_RECVERR)
			if !isErr || len(m.Data) < 8 {
				continue
			}
			errno := syscall.Errno(binary.NativeEndian.Uint32(m.Data)) // sock_extended_err.ee_errno
			origin := m.Data[4]
			if origin != unix.SO_EE_ORIGIN_ICMP && origin != unix.SO_EE_ORIGIN_ICMP6 {
				continue
			}
			var to netip.AddrPort
			switch sa := sa.(type) {
			case *unix.SockaddrInet4:
				to = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
			case *unix.SockaddrInet6:
				to = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
			}
			report(to, errno)
		}
	}
}
