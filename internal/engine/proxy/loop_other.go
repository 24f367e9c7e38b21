//go:build !linux

package proxy

import (
	"errors"
	"net"
)

// evLoop is Linux's event loop; elsewhere TCP data moves with a goroutine
// per direction.
type evLoop struct{}

func (e *Engine) startLoops() error {
	return errors.New("event loops need Linux")
}

func (e *Engine) stopLoops() {}

func (e *Engine) cutLoops() {}

func (s *service) listenLoops(ln *net.TCPListener) error {
	return errors.New("event loops need Linux")
}
