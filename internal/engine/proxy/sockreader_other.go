//go:build !unix

package proxy

import "net"

// sockReader reads a socket into a pooled buffer it holds while the
// connection lives (only Unix reads through the raw descriptor).
type sockReader struct {
	c   *net.TCPConn
	buf *[copyBufSize]byte
}

func newSockReader(c *net.TCPConn) (*sockReader, error) {
	return &sockReader{c: c}, nil
}

func (r *sockReader) read() ([]byte, error) {
	if r.buf == nil {
		r.buf = copyBufs.Get().(*[copyBufSize]byte)
	}
	n, err := r.c.Read(r.buf[:])
	if n > 0 {
		return r.buf[:n], nil
	}
	r.done()
	return nil, err
}

func (r *sockReader) done() {}
