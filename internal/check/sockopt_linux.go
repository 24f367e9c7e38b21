package check

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// socketOptions is a net.Dialer Control that binds the socket to the
// interface dev (SO_BINDTODEVICE) and sets its mark (SO_MARK); nil when
// neither is asked for.
func socketOptions(dev string, mark uint32) func(network, address string, c syscall.RawConn) error {
	if dev == "" && mark == 0 {
		return nil
	}
	return func(_, _ string, c syscall.RawConn) error {
		var err error
		cerr := c.Control(func(fd uintptr) {
			if dev != "" {
				if err = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, dev); err != nil {
					return
				}
			}
			if mark != 0 {
				err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
			}
		})
		if cerr != nil {
			return cerr
		}
		return err
	}
}
