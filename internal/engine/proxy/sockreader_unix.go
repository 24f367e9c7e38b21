//go:build unix

package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
)

// sockReader reads a socket through its raw file descriptor, taking a
// pooled buffer only for a read that finds data.
type sockReader struct {
	raw  syscall.RawConn
	fn   func(fd uintptr) bool // r.readFD, bound once
	buf  *[copyBufSize]byte
	n    int
	rerr error
}

func newSockReader(c *net.TCPConn) (*sockReader, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &sockReader{raw: raw}
	r.fn = r.readFD
	return r, nil
}

// readFD is the RawConn.Read callback: false means "wait until readable".
func (r *sockReader) readFD(fd uintptr) bool {
	if r.buf == nil {
		r.buf = copyBufs.Get().(*[copyBufSize]byte)
	}
	for {
		n, err := syscall.Read(int(fd), r.buf[:])
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			copyBufs.Put(r.buf)
			r.buf = nil
			return false
		}
		r.n, r.rerr = max(n, 0), err
		return true
	}
}

// read waits for data and returns it in a pooled buffer that stays the
// reader's until done is called. It returns io.EOF at the end of the
// stream, os.ErrDeadlineExceeded at the read deadline.
func (r *sockReader) read() ([]byte, error) {
	if err := r.raw.Read(r.fn); err != nil {
		r.done()
		return nil, err
	}
	if r.rerr != nil {
		r.done()
		return nil, os.NewSyscallError("read", r.rerr)
	}
	if r.n == 0 {
		r.done()
		return nil, io.EOF
	}
	return r.buf[:r.n], nil
}

// done gives the buffer back.
func (r *sockReader) done() {
	if r.buf != nil {
		copyBufs.Put(r.buf)
		r.buf = nil
	}
}
