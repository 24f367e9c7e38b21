package notify

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// The lines of keepalived's notify FIFOs (notify_fifo, vrrp_notify_fifo,
// lvs_notify_fifo), one per state change, each ending in a newline.

// InstanceLine is a vrrp_instance's change to state (MASTER, BACKUP,
// FAULT, STOP) at its effective priority: INSTANCE "VI_1" MASTER 100.
func InstanceLine(name, state string, priority uint8) string {
	return "INSTANCE \"" + name + "\" " + state + " " + strconv.Itoa(int(priority)) + "\n"
}

// GroupLine is a vrrp_sync_group's change to state; keepalived writes
// priority 0 for groups: GROUP "G1" MASTER 0.
func GroupLine(name, state string) string {
	return "GROUP \"" + name + "\" " + state + " 0\n"
}

// VirtualServerLine is a virtual server gaining (up) or losing its
// quorum: VS [198.18.0.10]:tcp:80 UP. vs is VirtualServerName's.
func VirtualServerLine(vs string, up bool) string {
	return "VS " + vs + " " + upDown(up) + "\n"
}

// RealServerLine is a real server going up or down:
// RS [198.18.1.11]:tcp:80 [198.18.0.10]:tcp:80 DOWN. rs is
// ServerName's, vs VirtualServerName's.
func RealServerLine(rs, vs string, up bool) string {
	return "RS " + rs + " " + vs + " " + upDown(up) + "\n"
}

func upDown(up bool) string {
	if up {
		return "UP"
	}
	return "DOWN"
}

// ServerName is how keepalived names an address and port of a service
// with protocol proto (an IP protocol number; 0 for a fwmark service):
// [198.18.1.11]:tcp:80, [2001:db8::1]:udp:53, [198.18.1.11]:none:0.
func ServerName(ap netip.AddrPort, proto uint8) string {
	var p string
	switch proto {
	case unix.IPPROTO_TCP:
		p = "tcp"
	case unix.IPPROTO_UDP:
		p = "udp"
	case unix.IPPROTO_SCTP:
		p = "sctp"
	case 0:
		p = "none"
	default:
		p = "?"
	}
	return "[" + ap.Addr().Unmap().String() + "]:" + p + ":" + strconv.Itoa(int(ap.Port()))
}

// VirtualServerName is how keepalived names a virtual server: a
// virtual_server_group by its name and port 0 ([VSG]:0), a fwmark one as
// FWM 7, the others as ServerName does.
func VirtualServerName(group string, fwmark uint32, ap netip.AddrPort, proto uint8) string {
	switch {
	case group != "":
		return "[" + group + "]:0"
	case fwmark != 0:
		return "FWM " + strconv.FormatUint(uint64(fwmark), 10)
	}
	return ServerName(ap, proto)
}

// FIFO is one notify FIFO gvsd writes. As keepalived, it creates the
// FIFO when missing (mode 0600, owned by the FIFO's user) and removes it
// again on Close, and opens it read-write and non-blocking, so a write
// never waits for a reader: with no reader, or a reader that does not
// keep up, the kernel's pipe buffer fills and the lines that do not fit
// are dropped (Dropped counts them; the first is logged).
type FIFO struct {
	Path    string
	fd      int
	created bool
	log     *slog.Logger

	mu      sync.Mutex // one line at a time, whole
	dropped atomic.Uint64
	closed  bool
}

// CreateFIFO makes the FIFO at path when nothing is there (owned by uid
// and gid), as keepalived's mkfifo. created reports whether it did; a
// path that exists is left as it is.
func CreateFIFO(path string, uid, gid uint32) (created bool, err error) {
	if err := unix.Mkfifo(path, 0o600); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return false, nil
		}
		return false, fmt.Errorf("notify FIFO %s: cannot create it: %w", path, err)
	}
	if uid != uint32(os.Geteuid()) || gid != uint32(os.Getegid()) {
		if err := os.Lchown(path, int(uid), int(gid)); err != nil {
			os.Remove(path)
			return false, fmt.Errorf("notify FIFO %s: cannot give it to uid %d gid %d: %w", path, uid, gid, err)
		}
	}
	return true, nil
}

// OpenFIFO opens the FIFO at path for writing (read-write and
// non-blocking, refusing a symbolic link, as keepalived). created is
// CreateFIFO's: Close removes a FIFO it created.
func OpenFIFO(path string, created bool, log *slog.Logger) (*FIFO, error) {
	if log == nil {
		log = slog.Default()
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOFOLLOW, 0)
	if err != nil {
		if created {
			os.Remove(path)
		}
		return nil, fmt.Errorf("notify FIFO %s: cannot open it: %w", path, err)
	}
	return &FIFO{Path: path, fd: fd, created: created, log: log.With("notify_fifo", path)}, nil
}

// WriteLine writes one line, whole or not at all (a line shorter than
// PIPE_BUF is written atomically); it never blocks.
func (f *FIFO) WriteLine(line string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	_, err := unix.Write(f.fd, []byte(line))
	if err == nil {
		return
	}
	if f.dropped.Add(1) == 1 {
		f.log.Warn("notify FIFO line dropped (no reader keeps up with it); further drops are only counted",
			"line", strings.TrimSuffix(line, "\n"), "error", err)
	}
}

// Dropped is how many lines did not fit.
func (f *FIFO) Dropped() uint64 { return f.dropped.Load() }

// Close removes the FIFO if CreateFIFO made it (first, so that a reader
// that reopens it on end of file does not find it again), then closes it.
func (f *FIFO) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	if f.created {
		os.Remove(f.Path)
	}
	if n := f.dropped.Load(); n > 0 {
		f.log.Warn("notify FIFO closed", "dropped_lines", n)
	}
	return unix.Close(f.fd)
}

// Sink writes each line to the FIFOs it holds now. Writers keep one Sink
// for the daemon's life; Set swaps its FIFOs at a reload. A nil Sink
// writes nothing.
type Sink struct {
	fifos atomic.Pointer[[]*FIFO]
}

// Set makes the sink write to fs.
func (s *Sink) Set(fs []*FIFO) { s.fifos.Store(&fs) }

// WriteLine writes line to every FIFO of the sink.
func (s *Sink) WriteLine(line string) {
	if s == nil {
		return
	}
	if p := s.fifos.Load(); p != nil {
		for _, f := range *p {
			f.WriteLine(line)
		}
	}
}
