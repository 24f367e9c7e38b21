package proxy

import (
	"net/netip"
	"syscall"
	"unsafe"
)

// The event loops' system calls, made without telling the scheduler
// (RawSyscall): none of them blocks, and a loop that seems stuck in a
// system call for a sysmon tick would have its P handed off, a thread
// woken and sysmon kept polling every 20 µs.

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// rawIO is read(2) or write(2).
func rawIO(trap uintptr, fd int, p []byte) (int, error) {
	r, _, errno := syscall.RawSyscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

// rawSend is send(2) with flags.
func rawSend(fd int, p []byte, flags int) (int, error) {
	r, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), uintptr(flags), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}

func rawClose(fd int) {
	syscall.RawSyscall(syscall.SYS_CLOSE, uintptr(fd), 0, 0)
}

func rawShutdown(fd, how int) error {
	_, _, errno := syscall.RawSyscall(syscall.SYS_SHUTDOWN, uintptr(fd), uintptr(how), 0)
	return errnoErr(errno)
}

func rawSetsockopt(fd, level, opt int, val unsafe.Pointer, size uintptr) error {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_SETSOCKOPT, uintptr(fd), uintptr(level), uintptr(opt), uintptr(val), size, 0)
	return errnoErr(errno)
}

func rawNoDelay(fd int) {
	one := int32(1)
	rawSetsockopt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, unsafe.Pointer(&one), 4)
}

// resetFD closes a socket with a RST (SO_LINGER 0).
func resetFD(fd int) {
	l := syscall.Linger{Onoff: 1, Linger: 0}
	rawSetsockopt(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, unsafe.Pointer(&l), unsafe.Sizeof(l))
	rawClose(fd)
}

func rawSoError(fd int) error {
	var v int32
	size := uint32(4)
	_, _, errno := syscall.RawSyscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), syscall.SOL_SOCKET, syscall.SO_ERROR, uintptr(unsafe.Pointer(&v)), uintptr(unsafe.Pointer(&size)), 0)
	if errno != 0 {
		return errno
	}
	return errnoErr(syscall.Errno(v))
}

func rawEpollCtl(epfd, op, fd int, ev *syscall.EpollEvent) error {
	_, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	return errnoErr(errno)
}

// rawAccept takes a connection from a non-blocking listener: a
// non-blocking socket and the client's address.
func rawAccept(fd int) (int, netip.AddrPort, error) {
	var rsa syscall.RawSockaddrAny
	size := uint32(unsafe.Sizeof(rsa))
	r, _, errno := syscall.RawSyscall6(syscall.SYS_ACCEPT4, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&size)),
		syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0, 0)
	if errno != 0 {
		return -1, netip.AddrPort{}, errno
	}
	return int(r), addrPortOfRaw(&rsa), nil
}

func addrPortOfRaw(rsa *syscall.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case syscall.AF_INET:
		sa := (*syscall.RawSockaddrInet4)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), ntohs(sa.Port))
	case syscall.AF_INET6:
		sa := (*syscall.RawSockaddrInet6)(unsafe.Pointer(rsa))
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), ntohs(sa.Port))
	}
	return netip.AddrPort{}
}

// ntohs turns a port as the kernel stores it (network order) into a number.
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// rawConnect opens a non-blocking TCP socket and starts connecting it to
// a (zone index zone for a link-local IPv6 address). The result is
// usually EINPROGRESS.
func rawConnect(a netip.AddrPort, zone uint32) (int, error) {
	family := syscall.AF_INET
	if !a.Addr().Is4() {
		family = syscall.AF_INET6
	}
	r, _, errno := syscall.RawSyscall(syscall.SYS_SOCKET, uintptr(family), syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if errno != 0 {
		return -1, errno
	}
	fd := int(r)
	rawNoDelay(fd)
	var ptr unsafe.Pointer
	var size uintptr
	var sa4 syscall.RawSockaddrInet4
	var sa6 syscall.RawSockaddrInet6
	port := ntohs(a.Port()) // the same swap turns it into network order
	if family == syscall.AF_INET {
		sa4 = syscall.RawSockaddrInet4{Family: syscall.AF_INET, Port: port, Addr: a.Addr().As4()}
		ptr, size = unsafe.Pointer(&sa4), unsafe.Sizeof(sa4)
	} else {
		sa6 = syscall.RawSockaddrInet6{Family: syscall.AF_INET6, Port: port, Addr: a.Addr().As16(), Scope_id: zone}
		ptr, size = unsafe.Pointer(&sa6), unsafe.Sizeof(sa6)
	}
	for {
		_, _, errno = syscall.RawSyscall(syscall.SYS_CONNECT, uintptr(fd), uintptr(ptr), size)
		if errno != syscall.EINTR {
			break
		}
	}
	return fd, errnoErr(errno)
}
