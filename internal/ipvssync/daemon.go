package ipvssync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/internal/engine"
)

// Daemon states, as ipvsadm --start-daemon names them.
const (
	Master = "master"
	Backup = "backup"
)

// Config is one sync daemon's settings (ipvsadm --start-daemon STATE
// --mcast-interface --syncid --sync-maxlen --mcast-group --mcast-port
// --mcast-ttl). Zero values take the kernel's defaults when it starts.
type Config struct {
	State     string     `json:"state"`
	Interface string     `json:"mcast_ifn"`
	SyncID    uint8      `json:"syncid"`
	MaxLen    int        `json:"sync_maxlen,omitempty"`
	Group     netip.Addr `json:"mcast_group,omitzero"`
	Port      uint16     `json:"mcast_port,omitempty"`
	TTL       uint8      `json:"mcast_ttl,omitempty"`
}

// DefaultInterface is ipvsadm's --mcast-interface when none is given.
const DefaultInterface = "eth0"

// withDefaults fills the zero values as the kernel's start_sync_thread
// does, for an interface of the given MTU: a master's messages fit a
// 1500-byte MTU, a backup reads up to its interface's MTU (at least 1500);
// a given maxlen is kept within [1 (master) or 1024 (backup), 65535 minus
// the IP and UDP headers].
func (c Config) withDefaults(mtu int) Config {
	if c.Interface == "" {
		c.Interface = DefaultInterface
	}
	if !c.Group.IsValid() {
		c.Group = DefaultGroup
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	hlen := 20 + 8
	if c.Group.Is6() {
		hlen = 40 + 8
	}
	link, floor := 1500, 1
	if c.State == Backup {
		link, floor = min(max(mtu, 1500), 65535), 1024
	}
	if c.MaxLen != 0 {
		c.MaxLen = min(max(c.MaxLen, floor), 65535-hlen)
	} else {
		c.MaxLen = link - hlen
	}
	return c
}

// Status is a running daemon: its settings with the defaults filled in,
// and its counters.
type Status struct {
	Config
	Sent      uint64 `json:"sent_conns"`            // master: entries sent
	Messages  uint64 `json:"messages"`              // datagrams sent or received
	Installed uint64 `json:"installed_conns"`       // backup: entries installed
	Skipped   uint64 `json:"skipped_conns"`         // entries skipped: no such service or real server here, or unsupported
	Dropped   uint64 `json:"dropped_messages"`      // backup: malformed or foreign-syncid datagrams
	Errors    uint64 `json:"send_errors,omitempty"` // master: failed sends
}

// Errors with ipvsadm's wording (libipvs's ipvs_strerror).
var (
	ErrRunning    = errors.New("Daemon has already run")
	ErrNotRunning = errors.New("No daemon is running")
	ErrNoDevice   = errors.New("No such device")
)

// NeedsLink reports whether Start failed for want of its interface: none
// of that name, or one down or without the address the daemon needs
// (the kernel's master binds to the interface's IPv4 address). A link or
// address change can cure it; nothing else can.
func NeedsLink(err error) bool {
	return errors.Is(err, ErrNoDevice) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) ||
		errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.ENETDOWN) || errors.Is(err, syscall.ENETUNREACH)
}

// Timing of the master. The kernel sends a buffer when it is full or two
// seconds old; GVS reads the connection table once per SendInterval.
var (
	SendInterval  = time.Second
	RefreshPeriod = 30 * time.Second // re-send a busy unchanged connection this often
)

// Manager runs at most one master and one backup daemon for an engine,
// as the kernel does.
type Manager struct {
	log    *slog.Logger
	eng    engine.Engine
	mu     sync.Mutex
	daemon map[string]*daemon
	kernel map[string]bool // the kernel's daemons this manager started
}

type daemon struct {
	status                                        Status
	cancel                                        context.CancelFunc
	done                                          chan struct{}
	sent, msgs, installed, skipped, dropped, errs atomic.Uint64
}

// NewManager returns a manager for eng's connections.
func NewManager(log *slog.Logger, eng engine.Engine) *Manager {
	if log == nil {
		log = slog.Default()
	}
	return &Manager{log: log.With("component", "sync"), eng: eng, daemon: map[string]*daemon{}, kernel: map[string]bool{}}
}

// Start starts a master or backup daemon.
func (m *Manager) Start(cfg Config) error {
	if cfg.State != Master && cfg.State != Backup {
		return fmt.Errorf("sync daemon state %q: want master or backup", cfg.State)
	}
	if k, ok := m.eng.(Kernel); ok {
		if cfg.Interface == "" {
			cfg.Interface = DefaultInterface
		}
		if err := k.StartSyncDaemon(cfg); err != nil {
			return err
		}
		m.mu.Lock()
		m.kernel[cfg.State] = true
		m.mu.Unlock()
		m.log.Info("kernel sync daemon started", "state", cfg.State, "mcast_ifn", cfg.Interface, "syncid", cfg.SyncID)
		return nil
	}
	syncer, ok := m.eng.(engine.Syncer)
	if !ok {
		return fmt.Errorf("the %s engine cannot synchronize connections (it terminates them; a connection cannot move to another director): run gvsd --engine xdp or ipvs for a sync daemon", m.eng.Name())
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.daemon[cfg.State] != nil {
		return ErrRunning
	}
	if cfg.Interface == "" {
		cfg.Interface = DefaultInterface
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return ErrNoDevice
	}
	cfg = cfg.withDefaults(ifi.MTU)
	ctx, cancel := context.WithCancel(context.Background())
	d := &daemon{status: Status{Config: cfg}, cancel: cancel, done: make(chan struct{})}
	log := m.log.With("state", cfg.State, "mcast_ifn", cfg.Interface, "syncid", cfg.SyncID)
	if cfg.State == Master {
		c, dst, err := openSender(cfg, ifi)
		if err != nil {
			cancel()
			return err
		}
		go func() {
			defer close(d.done)
			defer c.Close()
			d.runMaster(ctx, log, syncer, c, dst)
		}()
	} else {
		c, err := openReceiver(ctx, cfg, ifi)
		if err != nil {
			cancel()
			return err
		}
		go func() {
			defer close(d.done)
			d.runBackup(ctx, log, syncer, c)
		}()
		context.AfterFunc(ctx, func() { c.Close() })
	}
	log.Info("sync daemon started", "group", cfg.Group, "port", cfg.Port, "ttl", cfg.TTL, "maxlen", cfg.MaxLen)
	m.daemon[cfg.State] = d
	return nil
}

// Stop stops the master or backup daemon.
func (m *Manager) Stop(state string) error {
	if k, ok := m.eng.(Kernel); ok {
		m.mu.Lock()
		delete(m.kernel, state)
		m.mu.Unlock()
		return k.StopSyncDaemon(state)
	}
	m.mu.Lock()
	d := m.daemon[state]
	delete(m.daemon, state)
	m.mu.Unlock()
	if d == nil {
		return ErrNotRunning
	}
	d.cancel()
	<-d.done
	m.log.Info("sync daemon stopped", "state", state)
	return nil
}

// Close stops every daemon (of the kernel's, the ones it started).
func (m *Manager) Close() {
	if _, ok := m.eng.(Kernel); ok {
		m.mu.Lock()
		started := maps.Clone(m.kernel)
		m.mu.Unlock()
		for state := range started {
			m.Stop(state)
		}
		return
	}
	m.Stop(Master)
	m.Stop(Backup)
}

// Daemons lists the running daemons, master first.
func (m *Manager) Daemons() []Status {
	if k, ok := m.eng.(Kernel); ok {
		cfgs, err := k.SyncDaemons()
		if err != nil {
			m.log.Warn("listing the kernel's sync daemons", "error", err)
		}
		out := make([]Status, len(cfgs))
		for i, c := range cfgs {
			out[i] = Status{Config: c}
		}
		return out
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Status
	for _, state := range []string{Master, Backup} {
		if d := m.daemon[state]; d != nil {
			s := d.status
			s.Sent, s.Messages, s.Installed = d.sent.Load(), d.msgs.Load(), d.installed.Load()
			s.Skipped, s.Dropped, s.Errors = d.skipped.Load(), d.dropped.Load(), d.errs.Load()
			out = append(out, s)
		}
	}
	return out
}

func (d *daemon) runMaster(ctx context.Context, log *slog.Logger, s engine.Syncer, c *net.UDPConn, dst *net.UDPAddr) {
	cfg := d.status.Config
	t := time.NewTicker(SendInterval)
	defer t.Stop()
	tr := newTracker(RefreshPeriod)
	for {
		var conns []Conn
		for _, ec := range tr.changes(time.Now(), s.SyncConns()) {
			if w, ok := FromEngine(ec); ok {
				conns = append(conns, w)
			} else {
				d.skipped.Add(1)
			}
		}
		for _, msg := range Pack(cfg.SyncID, cfg.MaxLen, conns) {
			if _, err := c.WriteToUDP(msg, dst); err != nil {
				if d.errs.Add(1) == 1 {
					log.Warn("sending sync message", "err", err)
				}
				continue
			}
			d.msgs.Add(1)
			d.sent.Add(uint64(msg[4]))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *daemon) runBackup(ctx context.Context, log *slog.Logger, s engine.Syncer, c net.PacketConn) {
	cfg := d.status.Config
	buf := make([]byte, cfg.MaxLen)
	for {
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("receiving sync messages stopped", "err", err)
			}
			return
		}
		d.receive(log, s, cfg.SyncID, buf[:n])
	}
}

// receive handles one datagram as the kernel's ip_vs_process_message.
func (d *daemon) receive(log *slog.Logger, s engine.Syncer, syncid uint8, b []byte) {
	m, skipped, err := Unmarshal(b)
	if err == nil && syncid != 0 && m.SyncID != syncid {
		err = fmt.Errorf("syncid %d, want %d", m.SyncID, syncid)
	}
	if err != nil {
		if d.dropped.Add(1) == 1 {
			log.Warn("dropping sync message (warned once)", "err", err)
		}
		return
	}
	d.msgs.Add(1)
	conns := make([]engine.SyncConn, 0, len(m.Conns))
	for _, w := range m.Conns {
		if c, ok := ToEngine(w); ok {
			conns = append(conns, c)
		} else {
			skipped++
		}
	}
	in, sk := s.InstallSynced(conns)
	d.installed.Add(uint64(in))
	d.skipped.Add(uint64(skipped + sk))
}
