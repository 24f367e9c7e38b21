package trackfile

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// FallbackPoll is how often a Watcher that cannot use inotify (its
// directory is missing or went away, or inotify is out of watches) tells
// its owner to read the files again, and tries to watch them again.
const FallbackPoll = 250 * time.Millisecond

// watchMask is what keepalived watches a track file's directory for: a
// file written and closed (not every write: a file read between its
// truncation and its write would read as 0), moved in or out (a file
// replaced by a rename), created (a link) or deleted; and the directory
// itself going away.
const watchMask = unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_MOVED_FROM | unix.IN_CREATE | unix.IN_DELETE |
	unix.IN_DELETE_SELF | unix.IN_MOVE_SELF

// Watcher tells its owner when track files may have changed, as the
// kernel reports it (inotify on their directories), so that the owner
// reads them then and not on a timer. Every Watcher of the process
// shares one inotify instance (the kernel allows 128 per user by
// default).
type Watcher struct {
	ctx     context.Context // its lifetime
	c       chan struct{}
	polling atomic.Bool
	log     *slog.Logger
	paths   map[string]bool // absolute
}

// Watch watches the files at paths until ctx ends. A directory it cannot
// watch is logged, and the Watcher then tells its owner to read the
// files every FallbackPoll instead. log may be nil.
func Watch(ctx context.Context, paths []string, log *slog.Logger) *Watcher {
	if log == nil {
		log = slog.Default()
	}
	w := &Watcher{ctx: ctx, c: make(chan struct{}, 1), log: log, paths: map[string]bool{}}
	if len(paths) == 0 {
		return w
	}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			abs = filepath.Clean(p)
		}
		w.paths[abs] = true
	}
	go func() {
		<-ctx.Done()
		shared.remove(w)
	}()
	if err := shared.add(w); err != nil {
		w.fallBack(err)
	}
	return w
}

// C receives when the files may have changed. A receive stands for every
// change since the last one.
func (w *Watcher) C() <-chan struct{} { return w.c }

// Polling reports whether the Watcher fell back to FallbackPoll.
func (w *Watcher) Polling() bool { return w.polling.Load() }

func (w *Watcher) nudge() {
	select {
	case w.c <- struct{}{}:
	default: // one pending already
	}
}

// dirs are the directories of w's files.
func (w *Watcher) dirs() map[string]bool {
	out := map[string]bool{}
	for p := range w.paths {
		out[filepath.Dir(p)] = true
	}
	return out
}

// fallBack tells the owner to read the files every FallbackPoll, because
// of err, until the directories can be watched again (a directory made
// or made again) or the Watcher's lifetime ends.
func (w *Watcher) fallBack(err error) {
	if w.polling.Swap(true) {
		return
	}
	w.log.Warn(fmt.Sprintf("track files: %v; reading them every %s instead", err, FallbackPoll))
	w.nudge()
	go func() {
		t := time.NewTicker(FallbackPoll)
		defer t.Stop()
		for {
			select {
			case <-w.ctx.Done():
				return
			case <-t.C:
				if shared.add(w) == nil {
					w.polling.Store(false)
					w.log.Info("track files: watching their directories again")
					w.nudge() // what changed while the watch was being made
					return
				}
				w.nudge()
			}
		}
	}()
}

// shared is the process's inotify instance, opened by the first Watch.
var shared hub

// hub fans one inotify instance's events out to the Watchers.
type hub struct {
	mu   sync.Mutex                   // guards the fields below
	f    *os.File                     // nil until the first Watch
	fd   int                          // f's (f.Fd would make it blocking)
	err  error                        // why the instance failed; every Watch polls then
	wds  map[int32][]string           // a watch's directories (one inode may have several paths)
	subs map[string]map[*Watcher]bool // by directory
}

// add watches w's directories.
func (h *hub) add(w *Watcher) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return h.err
	}
	if h.f == nil {
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			return fmt.Errorf("inotify: %w", err)
		}
		// non-blocking, so the runtime's poller waits for it
		h.f, h.fd = os.NewFile(uintptr(fd), "inotify"), fd
		h.wds, h.subs = map[int32][]string{}, map[string]map[*Watcher]bool{}
		go h.read(h.f)
	}
	var added []string
	for dir := range w.dirs() {
		if h.subs[dir] == nil {
			wd, err := unix.InotifyAddWatch(h.fd, dir, watchMask)
			if err != nil {
				for _, d := range added {
					h.unsubscribe(w, d)
				}
				if errors.Is(err, unix.ENOSPC) {
					return fmt.Errorf("watching %s: %w (raise fs.inotify.max_user_watches)", dir, err)
				}
				return fmt.Errorf("watching %s: %w", dir, err)
			}
			h.wds[int32(wd)] = append(h.wds[int32(wd)], dir)
			h.subs[dir] = map[*Watcher]bool{}
		}
		h.subs[dir][w] = true
		added = append(added, dir)
	}
	return nil
}

// remove stops watching for w.
func (h *hub) remove(w *Watcher) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for dir := range w.dirs() {
		h.unsubscribe(w, dir)
	}
}

// unsubscribe drops w from dir, and dir's watch when it was the last.
func (h *hub) unsubscribe(w *Watcher, dir string) {
	subs := h.subs[dir]
	if subs == nil || !subs[w] {
		return
	}
	delete(subs, w)
	if len(subs) > 0 {
		return
	}
	delete(h.subs, dir)
	for wd, ds := range h.wds {
		if i := slices.Index(ds, dir); i >= 0 {
			h.wds[wd] = slices.Delete(ds, i, i+1)
			if len(h.wds[wd]) == 0 {
				delete(h.wds, wd)
				unix.InotifyRmWatch(h.fd, uint32(wd))
			}
		}
	}
}

// read takes the inotify events for the process's lifetime, nudging the
// Watchers of each file named.
func (h *hub) read(f *os.File) {
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := f.Read(buf)
		if err != nil {
			h.fail(fmt.Errorf("reading inotify events: %w", err))
			return
		}
		wake := map[*Watcher]bool{}
		gone := map[*Watcher]string{} // the directory that went away
		h.mu.Lock()
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			wd := int32(binary.NativeEndian.Uint32(buf[off:]))
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			size := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:min(off+unix.SizeofInotifyEvent+size, n)]), "\x00")
			off += unix.SizeofInotifyEvent + size
			if mask&unix.IN_Q_OVERFLOW != 0 { // events were lost: every file is read again
				for _, subs := range h.subs {
					for w := range subs {
						wake[w] = true
					}
				}
				continue
			}
			for _, dir := range h.wds[wd] {
				if mask&(unix.IN_DELETE_SELF|unix.IN_MOVE_SELF|unix.IN_IGNORED) != 0 {
					for w := range h.subs[dir] {
						gone[w] = dir
					}
					continue
				}
				for w := range h.subs[dir] {
					if w.paths[filepath.Join(dir, name)] {
						wake[w] = true
					}
				}
			}
		}
		for w := range gone {
			for d := range w.dirs() {
				h.unsubscribe(w, d)
			}
		}
		h.mu.Unlock()
		for w := range wake {
			w.nudge()
		}
		for w, dir := range gone {
			w.fallBack(fmt.Errorf("directory %s was moved or removed", dir))
		}
	}
}

// fail makes every Watcher, and every later one, poll.
func (h *hub) fail(err error) {
	h.mu.Lock()
	h.err = err
	var all []*Watcher
	for _, subs := range h.subs {
		for w := range subs {
			all = append(all, w)
		}
	}
	h.subs, h.wds = nil, nil
	h.mu.Unlock()
	for _, w := range all {
		w.fallBack(err)
	}
}
