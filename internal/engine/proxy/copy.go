package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// How a direction of a TCP connection moves its data: small transfers
// (requests, answers) go through a user-space buffer, one read and one
// write each, which costs fewer system calls than splice's two pipe hops;
// once a single read fills a whole buffer the direction carries bulk data
// and switches to splice for the rest of its life.
//
// A buffer is taken from a pool only when the socket has data and given
// back before waiting for more, so an idle connection holds none.
const copyBufSize = 16 << 10

var copyBufs = sync.Pool{New: func() any { return new([copyBufSize]byte) }}

// pipe moves data from src to dst until src ends: buffered while the
// transfers are small, with splice once they are bulk. It wakes up every
// tick to account the bytes moved and to expire an idle connection; in
// between, counts are summed locally. in is the client to server
// direction.
func (c *tcpConn) pipe(dst, src *net.TCPConn, in bool) {
	e := c.svc.e
	var r *sockReader
	if !e.spliceOnly {
		var err error
		if r, err = newSockReader(src); err != nil {
			c.abort()
			return
		}
	}
	var bytes int64
	var pkts uint64
	flush := func() {
		if bytes > 0 {
			c.dest.account(bytes, pkts, in)
			bytes, pkts = 0, 0
		}
	}
	for {
		if err := src.SetReadDeadline(time.Now().Add(e.opts.Tick)); err != nil {
			flush()
			c.abort()
			return
		}
		var err error
		if r != nil {
			// Buffered until a read fills the whole buffer.
			for {
				var b []byte
				if b, err = r.read(); err != nil {
					break
				}
				n := len(b)
				_, err = dst.Write(b)
				r.done()
				bytes += int64(n)
				pkts += segments(int64(n))
				c.last.Store(e.now())
				if err != nil {
					break
				}
				if n == copyBufSize {
					r = nil
					break
				}
			}
			if err == io.EOF {
				err = nil
			} else if err == nil { // switched to splice
				flush()
				continue
			}
		} else {
			var n int64
			n, err = dst.ReadFrom(src)
			if n > 0 {
				bytes += n
				pkts += segments(n)
				c.last.Store(e.now())
			}
		}
		flush()
		switch {
		case err == nil: // EOF
			c.halfClose(in)
			return
		case errors.Is(err, os.ErrDeadlineExceeded):
			if e.now()-c.last.Load() >= e.stateTimeout(c.getState()) {
				c.expire()
				return
			}
		default: // reset, or the other direction ended the connection
			c.abort()
			return
		}
	}
}
