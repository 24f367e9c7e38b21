//go:build !linux

package check

import (
	"errors"
	"syscall"
)

// socketOptions refuses bind_if and fwmark: they are Linux socket options.
func socketOptions(dev string, mark uint32) func(network, address string, c syscall.RawConn) error {
	if dev == "" && mark == 0 {
		return nil
	}
	return func(string, string, syscall.RawConn) error {
		return errors.New("bind_if and fwmark need Linux")
	}
}
