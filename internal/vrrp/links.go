package vrrp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Links tells instances whether interfaces are up and wakes them when
// that changes, so that track_interface and an instance's own interface
// need no polling.
type Links interface {
	// Up reports whether the interface exists and is up with its carrier.
	Up(name string) bool
	// Notify makes a link change send on c without blocking (a full c
	// already holds a wake-up) until stop is called.
	Notify(c chan<- struct{}) (stop func())
}

// LinkWatcher is the netlink Links of one network namespace: a single
// subscription to link updates, shared by every instance given it.
type LinkWatcher struct {
	log    *slog.Logger
	nsName string

	mu    sync.Mutex // guards the fields below
	up    map[string]bool
	names map[int]string // by interface index, to follow renames
	subs  map[*chan<- struct{}]struct{}
}

// linkResubscribeDelay is how long the watcher waits before subscribing
// again after netlink refused a subscription.
const linkResubscribeDelay = time.Second

// WatchLinks follows the links of the named network namespace (empty:
// the current one) until ctx ends. It returns once it knows the state of
// every link.
//
// The kernel drops link messages when the socket's buffer overflows; the
// subscription then fails, and the watcher subscribes again and lists the
// links afresh (a resync on that event, not on a timer).
func WatchLinks(ctx context.Context, nsName string, log *slog.Logger) (*LinkWatcher, error) {
	if log == nil {
		log = slog.Default()
	}
	w := &LinkWatcher{log: log, nsName: nsName, up: map[string]bool{}, names: map[int]string{},
		subs: map[*chan<- struct{}]struct{}{}}
	updates, stop, err := w.subscribe()
	if err != nil {
		return nil, err
	}
	go w.run(ctx, updates, stop)
	return w, nil
}

// subscribe opens a subscription, then lists the links to learn their
// state; updates queued meanwhile are applied after the list, so that
// the last word on a link is always the newest.
func (w *LinkWatcher) subscribe() (<-chan netlink.LinkUpdate, func(), error) {
	var ns netns.NsHandle = -1
	if w.nsName != "" {
		var err error
		ns, err = netns.GetFromName(w.nsName)
		if err != nil {
			return nil, nil, fmt.Errorf("network namespace %q: %w (create it with: ip netns add %s)", w.nsName, err, w.nsName)
		}
		defer ns.Close()
	}
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	stop := func() {
		close(done)
		for range updates { // the library's goroutine sends until it closes updates
		}
	}
	opt := netlink.LinkSubscribeOptions{ErrorCallback: func(err error) {
		select {
		case <-done: // closing the subscription ends its receive with an error
		default:
			w.log.Warn("link updates from netlink", "err", err)
		}
	}}
	if ns.IsOpen() {
		opt.Namespace = &ns
	}
	if err := netlink.LinkSubscribeWithOptions(updates, done, opt); err != nil {
		close(done)
		return nil, nil, fmt.Errorf("subscribe to link updates: %w", err)
	}
	var h *netlink.Handle
	var err error
	if ns.IsOpen() {
		h, err = netlink.NewHandleAt(ns)
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("netlink: %w", err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("list links: %w", err)
	}
	w.mu.Lock()
	w.up, w.names = map[string]bool{}, map[int]string{}
	for _, l := range links {
		w.set(l)
	}
	w.mu.Unlock()
	w.wake()
	return updates, stop, nil
}

func (w *LinkWatcher) run(ctx context.Context, updates <-chan netlink.LinkUpdate, stop func()) {
	for {
		select {
		case <-ctx.Done():
			stop()
			return
		case u, ok := <-updates:
			if ok {
				w.apply(u)
				continue
			}
			stop()
			w.log.Warn("link updates stopped (netlink messages lost?): subscribing again")
			for {
				var err error
				updates, stop, err = w.subscribe()
				if err == nil {
					break
				}
				w.log.Error("link updates", "err", err, "retry_in", linkResubscribeDelay)
				select {
				case <-ctx.Done():
					return
				case <-time.After(linkResubscribeDelay):
				}
			}
		}
	}
}

// apply records one update and wakes the subscribers if a link's state
// changed.
func (w *LinkWatcher) apply(u netlink.LinkUpdate) {
	if u.Family == unix.AF_BRIDGE {
		return // a bridge port's messages: the link itself is reported apart
	}
	w.mu.Lock()
	before := len(w.up)
	var changed bool
	switch u.Header.Type {
	case unix.RTM_NEWLINK:
		changed = w.set(u.Link)
	case unix.RTM_DELLINK:
		a := u.Link.Attrs()
		delete(w.up, w.names[a.Index])
		delete(w.up, a.Name)
		delete(w.names, a.Index)
		changed = len(w.up) != before
	}
	w.mu.Unlock()
	if changed {
		w.wake()
	}
}

// set records l's state (mu held) and reports whether a name's state
// changed.
func (w *LinkWatcher) set(l netlink.Link) bool {
	a := l.Attrs()
	changed := false
	if old, ok := w.names[a.Index]; ok && old != a.Name {
		delete(w.up, old) // renamed
		changed = true
	}
	w.names[a.Index] = a.Name
	up := a.Flags&net.FlagUp != 0 && a.OperState != netlink.OperDown && a.OperState != netlink.OperLowerLayerDown
	if was, ok := w.up[a.Name]; !ok || was != up {
		changed = true
	}
	w.up[a.Name] = up
	return changed
}

func (w *LinkWatcher) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for c := range w.subs {
		select {
		case *c <- struct{}{}:
		default:
		}
	}
}

// Up reports whether the interface exists and is up with its carrier.
func (w *LinkWatcher) Up(name string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.up[name]
}

// Notify makes every link change send on c without blocking until stop
// is called.
func (w *LinkWatcher) Notify(c chan<- struct{}) (stop func()) {
	key := &c
	w.mu.Lock()
	w.subs[key] = struct{}{}
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(w.subs, key)
		w.mu.Unlock()
	}
}
