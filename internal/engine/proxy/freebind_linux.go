package proxy

import "syscall"

// freeBind sets IP_FREEBIND so that a listener may bind a virtual address
// before the host holds it (it also applies to IPv6 sockets).
func freeBind(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_IP, syscall.IP_FREEBIND, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
