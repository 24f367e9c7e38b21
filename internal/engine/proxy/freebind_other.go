//go:build !linux

package proxy

import (
	"errors"
	"syscall"
)

func freeBind(network, address string, c syscall.RawConn) error {
	return errors.New("free binding (IP_FREEBIND) needs Linux")
}
