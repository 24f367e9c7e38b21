package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gvs-lb/gvs/internal/notify"
	"github.com/gvs-lb/gvs/internal/trackfile"
)

// Options are the parts of an instance that do not come from its
// vrrp_instance block.
type Options struct {
	Logger *slog.Logger
	// Netns is keepalived's net_namespace: the named network namespace
	// (ip netns) the instance works in; empty for the current one.
	Netns string
	// Scripts and Files are the vrrp_script and vrrp_track_file blocks the
	// instance's track_script and track_file refer to.
	Scripts map[string]TrackScript
	Files   map[string]TrackFile
	// Processes are the vrrp_track_process blocks its track_process
	// refers to; SetProcessResult reports their results.
	Processes map[string]TrackProcess
	// Conn and Host replace the raw sockets and netlink, for tests.
	Conn Conn
	Host Host
	// Links reports the state of the instance's interface and its
	// track_interface links as they change. Share one LinkWatcher
	// between the instances of a process; nil: Run watches on its own.
	Links Links
	// FIFO gets a line for every state change, as keepalived writes its
	// notify FIFOs (INSTANCE "VI_1" MASTER 100); a sync group writes its
	// own lines (GROUP "G1" MASTER 0) to its first member's. nil: none.
	FIFO LineWriter
}

// LineWriter takes whole lines without blocking (a notify.Sink).
type LineWriter interface {
	WriteLine(line string)
}

// Status is what an instance shows of itself; JSON-friendly.
type Status struct {
	Name                 string            `json:"name"`
	Interface            string            `json:"interface"`
	VRID                 uint8             `json:"vrid"`
	Version              uint8             `json:"version"`
	State                State             `json:"state"`
	Priority             uint8             `json:"priority"`
	EffectivePriority    uint8             `json:"effective_priority"`
	MasterAddr           string            `json:"master_addr,omitempty"`
	VIPs                 []string          `json:"vips"`
	AdvertsSent          uint64            `json:"adverts_sent"`
	AdvertsReceived      uint64            `json:"adverts_received"`
	PriorityZeroSent     uint64            `json:"priority_zero_sent"`
	PriorityZeroReceived uint64            `json:"priority_zero_received"`
	BecomeMaster         uint64            `json:"become_master"`
	ReleaseMaster        uint64            `json:"release_master"`
	Drops                map[string]uint64 `json:"drops"`
}

// Instance runs one vrrp_instance.
type Instance struct {
	cfg InstanceConfig
	opt Options
	log *slog.Logger

	mu     sync.Mutex // guards the fields below
	state  State
	prio   uint8
	master netip.Addr
	// tracking results
	scripts    map[string]bool
	procs      map[string]bool
	files      map[string]int
	links      map[string]bool
	groupFault bool
	onState    func(*Instance, State)   // the sync group's
	watchers   []func(*Instance, State) // OnStateChange's

	sent, rcvd, prio0Sent, prio0Rcvd, becomeMaster, releaseMaster atomic.Uint64
	drops                                                         DropCounters

	kick    chan struct{} // tracking changed
	linkUp  chan struct{} // a link changed (Links.Notify)
	inject  chan EventKind
	aborted atomic.Bool
	cancel  atomic.Pointer[context.CancelFunc]
}

// NewInstance checks cfg and returns an instance ready to Run.
func NewInstance(cfg InstanceConfig, opt Options) (*Instance, error) {
	c := cfg
	if err := c.Validate(); err != nil {
		return nil, err
	}
	for _, r := range c.TrackScripts {
		if _, ok := opt.Scripts[r.Name]; !ok {
			return nil, fmt.Errorf("vrrp_instance %s: track_script %s: no vrrp_script of that name", c.Name, r.Name)
		}
	}
	for _, r := range c.TrackFiles {
		if _, ok := opt.Files[r.Name]; !ok {
			return nil, fmt.Errorf("vrrp_instance %s: track_file %s: no vrrp_track_file of that name", c.Name, r.Name)
		}
	}
	for _, r := range c.TrackProcesses {
		if _, ok := opt.Processes[r.Name]; !ok {
			return nil, fmt.Errorf("vrrp_instance %s: track_process %s: no vrrp_track_process of that name", c.Name, r.Name)
		}
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Instance{
		cfg: c, opt: opt,
		log:     opt.Logger.With("vrrp_instance", c.Name),
		state:   StateInit,
		prio:    c.Priority,
		scripts: map[string]bool{},
		procs:   map[string]bool{},
		files:   map[string]int{},
		links:   map[string]bool{},
		kick:    make(chan struct{}, 1),
		linkUp:  make(chan struct{}, 1),
		inject:  make(chan EventKind, 16),
	}, nil
}

// Name is the instance name.
func (i *Instance) Name() string { return i.cfg.Name }

// Config is the instance's configuration with defaults filled in.
func (i *Instance) Config() InstanceConfig { return i.cfg }

// Status returns a snapshot of the instance's state and counters.
func (i *Instance) Status() Status {
	i.mu.Lock()
	defer i.mu.Unlock()
	s := Status{
		Name: i.cfg.Name, Interface: i.cfg.Interface, VRID: i.cfg.VRID, Version: i.cfg.Version,
		State: i.state, Priority: i.cfg.Priority, EffectivePriority: i.prio,
		AdvertsSent: i.sent.Load(), AdvertsReceived: i.rcvd.Load(),
		PriorityZeroSent: i.prio0Sent.Load(), PriorityZeroReceived: i.prio0Rcvd.Load(),
		BecomeMaster: i.becomeMaster.Load(), ReleaseMaster: i.releaseMaster.Load(),
		Drops: i.drops.Map(), VIPs: []string{},
	}
	if i.master.IsValid() {
		s.MasterAddr = i.master.String()
	}
	for _, v := range i.cfg.VIPs {
		s.VIPs = append(s.VIPs, v.Prefix.String())
	}
	return s
}

// OnStateChange adds f to the functions called after every state change
// of the instance (notify scripts started, sync group told), with the new
// state, in order. f runs in the instance's own goroutine and must return
// quickly: hand the change to a channel. Call it before Run.
func (i *Instance) OnStateChange(f func(*Instance, State)) {
	i.mu.Lock()
	i.watchers = append(i.watchers, f)
	i.mu.Unlock()
}

// Drops are the instance's drop counters.
func (i *Instance) Drops() *DropCounters { return &i.drops }

// SetScriptResult feeds the result of the vrrp_script name (see
// RunScript). Until a script reports, it counts as succeeding.
func (i *Instance) SetScriptResult(name string, ok bool) { i.setResult(i.scripts, name, ok) }

// SetProcessResult reports whether the vrrp_track_process name has its
// quorum (RunProcess's verdict); until the first report it counts as
// passing.
func (i *Instance) SetProcessResult(name string, ok bool) { i.setResult(i.procs, name, ok) }

// setResult records a tracker's verdict in results (guarded by mu) and
// wakes the state machine when it changed.
func (i *Instance) setResult(results map[string]bool, name string, ok bool) {
	i.mu.Lock()
	old, seen := results[name]
	results[name] = ok
	i.mu.Unlock()
	if !seen || old != ok {
		i.poke()
	}
}

func (i *Instance) poke() {
	select {
	case i.kick <- struct{}{}:
	default:
	}
}

func (i *Instance) setGroupFault(f bool) {
	i.mu.Lock()
	i.groupFault = f
	i.mu.Unlock()
	i.poke()
}

func (i *Instance) inGroupFault() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.groupFault
}

func (i *Instance) injectEvent(k EventKind) {
	select {
	case i.inject <- k:
	default:
		i.log.Warn("sync group event dropped: instance is busy", "event", k)
	}
}

// Abort stops Run as a crash would: no priority 0 advert, the VIPs stay.
func (i *Instance) Abort() {
	i.aborted.Store(true)
	if c := i.cancel.Load(); c != nil {
		(*c)()
	}
}

// tracked computes the instance's own fault (sync group aside) and
// effective priority from the tracking results.
func (i *Instance) tracked() (fault bool, prio uint8) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if up, ok := i.links[i.cfg.Interface]; ok && !up && !i.cfg.DontTrackPrimary {
		fault = true
	}
	delta := 0
	weigh := func(w int, good bool) {
		switch {
		case w == 0 && !good:
			fault = true
		case w > 0 && good, w < 0 && !good:
			delta += w
		}
	}
	for _, t := range i.cfg.TrackInterfaces {
		up, ok := i.links[t.Name]
		weigh(t.Weight, up || !ok)
	}
	for _, r := range i.cfg.TrackScripts {
		w := i.opt.Scripts[r.Name].Weight
		if r.Weight != nil {
			w = *r.Weight
		}
		good, ok := i.scripts[r.Name]
		weigh(w, good || !ok)
	}
	for _, r := range i.cfg.TrackProcesses {
		w := i.opt.Processes[r.Name].Weight
		if r.Weight != nil {
			w = *r.Weight
		}
		good, ok := i.procs[r.Name]
		weigh(w, good || !ok)
	}
	for _, r := range i.cfg.TrackFiles {
		f := i.opt.Files[r.Name]
		w, rev := f.Weight, f.Reverse
		if r.Weight != nil {
			w, rev = *r.Weight, r.Reverse
		}
		d, failed := trackfile.Status(int64(i.files[r.Name]), w, rev)
		if failed || d <= -254 {
			fault = true
			continue
		}
		delta += int(min(d, 253))
	}
	p := int(i.cfg.Priority)
	if delta != 0 {
		p = min(max(p+delta, 1), 254)
	}
	return fault, uint8(p)
}

// readLinks takes the state of the instance's interface and its
// track_interface links from links; it reports whether any changed.
func (i *Instance) readLinks(links Links) bool {
	now := map[string]bool{i.cfg.Interface: links.Up(i.cfg.Interface)}
	for _, t := range i.cfg.TrackInterfaces {
		now[t.Name] = links.Up(t.Name)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	changed := !mapsEqual(now, i.links)
	i.links = now
	return changed
}

// readFiles reads the track files; it reports whether any value changed.
func (i *Instance) readFiles() bool {
	files := map[string]int{}
	bad := map[string]bool{}
	for _, r := range i.cfg.TrackFiles {
		v, ok := trackfile.Read(i.opt.Files[r.Name].File)
		files[r.Name], bad[r.Name] = int(v), !ok
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	for name := range files {
		if bad[name] {
			files[name] = i.files[name] // out of range: keep the last value, as keepalived
		}
	}
	changed := !mapsEqual(files, i.files)
	i.files = files
	return changed
}

func mapsEqual[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// endpoint finds the interface and our primary address in the namespace.
func (i *Instance) endpoint() (*net.Interface, netip.Addr, error) {
	var ifi *net.Interface
	var primary netip.Addr
	is6 := i.cfg.IPv6()
	err := inNetns(i.opt.Netns, func() error {
		var err error
		ifi, err = net.InterfaceByName(i.cfg.Interface)
		if err != nil {
			return fmt.Errorf("vrrp_instance %s: interface %s: %w", i.cfg.Name, i.cfg.Interface, err)
		}
		switch {
		case i.cfg.UnicastSrcIP.IsValid():
			primary = i.cfg.UnicastSrcIP
			return nil
		case i.cfg.MCastSrcIP.IsValid():
			primary = i.cfg.MCastSrcIP
			return nil
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok {
				continue
			}
			ip, _ := netip.AddrFromSlice(ipn.IP)
			ip = ip.Unmap()
			if i.isVIP(ip) {
				continue
			}
			if !is6 && ip.Is4() || is6 && ip.Is6() && ip.IsLinkLocalUnicast() {
				primary = ip
				return nil
			}
		}
		if is6 {
			return fmt.Errorf("vrrp_instance %s: interface %s has no IPv6 link-local address yet (is it up?)", i.cfg.Name, i.cfg.Interface)
		}
		return fmt.Errorf("vrrp_instance %s: interface %s has no IPv4 address (add one, or set mcast_src_ip / unicast_src_ip)", i.cfg.Name, i.cfg.Interface)
	})
	return ifi, primary, err
}

func (i *Instance) isVIP(a netip.Addr) bool {
	for _, v := range append(slices.Clip(i.cfg.VIPs), i.cfg.ExcludedVIPs...) {
		if v.Prefix.Addr() == a {
			return true
		}
	}
	return false
}

// Run runs the instance until ctx ends, then sends a priority 0 advert if
// MASTER, removes the VIPs and runs notify_stop (unless Abort was called).
func (i *Instance) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	i.cancel.Store(&cancel)
	if i.aborted.Load() {
		return nil
	}
	ifi, primary, err := i.endpoint()
	if err != nil {
		return err
	}
	is6 := i.cfg.IPv6()
	hostDev := i.cfg.Interface
	var vmacIfi *net.Interface
	if i.cfg.UseVMAC {
		v, err := createVMAC(i.opt.Netns, i.cfg.Interface, i.cfg.VMACName, VMAC(i.cfg.VRID, is6), primary)
		if err != nil {
			return fmt.Errorf("vrrp_instance %s: %w", i.cfg.Name, err)
		}
		defer func() {
			if i.aborted.Load() {
				return // as a crash: the interface and its VIPs stay
			}
			if err := v.remove(); err != nil {
				i.log.Warn("removing the vmac interface", "err", err)
			}
		}()
		hostDev = i.cfg.VMACName
		err = inNetns(i.opt.Netns, func() error {
			var err error
			vmacIfi, err = net.InterfaceByName(i.cfg.VMACName)
			return err
		})
		if err != nil {
			return fmt.Errorf("vrrp_instance %s: vmac %s: %w", i.cfg.Name, i.cfg.VMACName, err)
		}
		i.log.Info("vmac interface up", "name", i.cfg.VMACName, "mac", VMAC(i.cfg.VRID, is6))
	}
	conn := i.opt.Conn
	if conn == nil {
		err = inNetns(i.opt.Netns, func() error {
			proto := IPProto
			if i.cfg.AuthType == AuthAH {
				proto = IPProtoAH // AH adverts come as IP protocol 51
			}
			dial := func(ifi *net.Interface, src netip.Addr, multicast, sendOnly bool) (Conn, error) {
				return dialConn4(ifi, src, multicast, sendOnly, proto)
			}
			if is6 {
				dial = dialConn6
			}
			switch {
			case vmacIfi == nil || i.cfg.VMACXmitBase:
				conn, err = dial(ifi, primary, !i.cfg.Unicast(), false)
				return err
			case !i.cfg.Unicast():
				// use_vmac: a multicast advert whose source is the virtual
				// MAC is handed by the kernel to our own macvlan of that
				// MAC only (macvlan private mode), so read and send there
				conn, err = dial(vmacIfi, primary, true, false)
				return err
			}
			// use_vmac with unicast peers: adverts come to the base
			// interface's address and leave the macvlan
			in, err := dial(ifi, primary, false, false)
			if err != nil {
				return err
			}
			out, err := dial(vmacIfi, primary, false, true)
			if err != nil {
				in.Close()
				return err
			}
			conn = splitConn{Conn: in, out: out}
			return nil
		})
		if err != nil {
			return fmt.Errorf("vrrp_instance %s: %w", i.cfg.Name, err)
		}
	}
	defer conn.Close()
	host := i.opt.Host
	if host == nil {
		host, err = NewHost(i.opt.Netns, hostDev)
		if err != nil {
			return fmt.Errorf("vrrp_instance %s: %w", i.cfg.Name, err)
		}
		defer host.Close()
	}
	links := i.opt.Links
	if links == nil {
		w, err := WatchLinks(ctx, i.opt.Netns, i.log)
		if err != nil {
			return fmt.Errorf("vrrp_instance %s: %w", i.cfg.Name, err)
		}
		links = w
	}
	r := &runner{Instance: i, conn: conn, host: host, links: links, primary: primary, notify: newNotifier(i.log)}
	defer r.notify.close()
	r.validator = Validator{Version: i.cfg.Version, VRID: i.cfg.VRID, IPv6: is6, AuthType: i.cfg.AuthType,
		AuthData: PassAuthData(i.cfg.AuthPass), Interval: uint16(i.cfg.AdvertInt / time.Second),
		Unicast: i.cfg.Unicast(), Own: []netip.Addr{primary}}
	if i.cfg.AuthType == AuthAH {
		r.validator.AHSeq = &r.ahSeq
	}
	if i.cfg.CheckUnicastSrc && i.cfg.Unicast() {
		r.validator.Peers = i.cfg.UnicastPeers
	}
	for _, v := range i.cfg.VIPs {
		r.validator.VIPs = append(r.validator.VIPs, v.Prefix.Addr())
	}
	for _, v := range append(slices.Clip(i.cfg.VIPs), i.cfg.ExcludedVIPs...) {
		if i.cfg.UseVMAC && v.Dev == i.cfg.Interface {
			v.Dev = i.cfg.VMACName // keepalived moves the interface's VIPs to the vmac
		}
		r.vips = append(r.vips, v)
	}
	r.dsts = i.cfg.UnicastPeers
	if len(r.dsts) == 0 {
		r.dsts = []netip.Addr{Group4}
		if is6 {
			r.dsts = []netip.Addr{Group6}
		}
	}
	r.m = NewMachine(MachineConfig{Version: i.cfg.Version, Priority: i.cfg.Priority, AdvertInt: i.cfg.AdvertInt,
		Preempt: !i.cfg.NoPreempt, PreemptDelay: i.cfg.PreemptDelay, Primary: primary})
	i.log.Info("starting", "interface", i.cfg.Interface, "vrid", i.cfg.VRID, "version", i.cfg.Version,
		"priority", i.cfg.Priority, "source", primary)
	return r.loop(ctx)
}

// runner is the state of one Run.
type runner struct {
	*Instance
	conn      Conn
	host      Host
	links     Links
	primary   netip.Addr
	validator Validator
	dsts      []netip.Addr
	vips      []VIP // virtual_ipaddress and virtual_ipaddress_excluded, as set on the host
	m         *Machine
	notify    *notifier
	fault     bool
	garpAt    time.Time // second burst
	refreshAt time.Time
	ahSeq     AHCounter // auth_type AH: sequence numbers sent and accepted
	ipID      uint16    // auth_type AH: the IP id, which the ICV covers
}

func (r *runner) loop(ctx context.Context) error {
	pkts := make(chan Received, 64)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			p, err := r.conn.ReadAdvert()
			if err != nil {
				if ctx.Err() == nil {
					r.log.Error("reading adverts stopped", "err", err)
				}
				return
			}
			select {
			case pkts <- p:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() { r.conn.Close(); <-readDone }()

	stopLinks := r.links.Notify(r.linkUp)
	defer stopLinks()
	r.readLinks(r.links)
	// Track files are read when inotify says they changed (watched
	// before the first read, so no change is missed in between).
	var files <-chan struct{}
	if len(r.cfg.TrackFiles) > 0 {
		paths := make([]string, 0, len(r.cfg.TrackFiles))
		for _, t := range r.cfg.TrackFiles {
			paths = append(paths, r.opt.Files[t.Name].File)
		}
		files = trackfile.Watch(ctx, paths, r.log).C()
	}
	r.readFiles()
	fault, prio := r.tracked()
	fault = fault || r.inGroupFault()
	r.fault = fault
	now := time.Now()
	r.do(now, r.m.Step(now, Event{Kind: EvPriority, Priority: prio}))
	if fault {
		r.do(now, r.m.Step(now, Event{Kind: EvFault}))
	} else {
		r.do(now, r.m.Step(now, Event{Kind: EvStartup}))
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := r.m.Deadline()
		for _, t := range []time.Time{r.garpAt, r.refreshAt} {
			if !t.IsZero() && (next.IsZero() || t.Before(next)) {
				next = t
			}
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			if r.aborted.Load() {
				r.log.Info("aborted: leaving VIPs and sending no priority 0 advert")
				return nil
			}
			now := time.Now()
			r.do(now, r.m.Step(now, Event{Kind: EvShutdown}))
			return nil
		case p := <-pkts:
			now := time.Now()
			a, why := r.validator.Check(p)
			if why != DropNone {
				r.drops.Add(why)
				if why != DropOwn {
					r.log.Debug("advert dropped", "from", p.Src, "reason", why)
				}
				continue
			}
			r.rcvd.Add(1)
			if a.Priority == 0 {
				r.prio0Rcvd.Add(1)
			}
			r.do(now, r.m.Step(now, Event{Kind: EvAdvert, Advert: a, From: p.Src}))
		case <-timer.C:
			now := time.Now()
			if !r.garpAt.IsZero() && !now.Before(r.garpAt) {
				r.garpAt = time.Time{}
				r.garpBurst(r.cfg.GARPMasterRepeat)
			}
			if !r.refreshAt.IsZero() && !now.Before(r.refreshAt) {
				r.refreshAt = now.Add(r.cfg.GARPMasterRefresh)
				r.garpBurst(r.cfg.GARPMasterRefreshRepeat)
			}
			if d := r.m.Deadline(); !d.IsZero() && !now.Before(d) {
				r.do(now, r.m.Step(now, Event{Kind: EvTimer}))
			}
		case <-r.linkUp:
			if r.readLinks(r.links) {
				r.retrack()
			}
		case <-files:
			if r.readFiles() {
				r.retrack()
			}
		case <-r.kick:
			r.retrack()
		case k := <-r.inject:
			now := time.Now()
			r.do(now, r.m.Step(now, Event{Kind: k}))
		}
	}
}

// retrack applies the tracking results to the machine.
func (r *runner) retrack() {
	now := time.Now()
	fault, prio := r.tracked()
	fault = fault || r.inGroupFault()
	if prio != r.m.Priority() {
		r.log.Info("effective priority changed", "from", r.m.Priority(), "to", prio)
		r.do(now, r.m.Step(now, Event{Kind: EvPriority, Priority: prio}))
	}
	if fault != r.fault {
		r.fault = fault
		if fault {
			r.do(now, r.m.Step(now, Event{Kind: EvFault}))
		} else {
			r.do(now, r.m.Step(now, Event{Kind: EvRecover}))
		}
	}
}

func (r *runner) allVIPs() []VIP { return r.vips }

// routes adds (or removes) the virtual_routes.
func (r *runner) routes(add bool) {
	if len(r.cfg.Routes) == 0 {
		return
	}
	rh, ok := r.host.(RouteHost)
	if !ok {
		r.log.Error("virtual_routes: this host cannot install routes")
		return
	}
	if add {
		if err := rh.AddRoutes(r.cfg.Routes); err != nil {
			r.log.Error("adding virtual_routes", "err", err)
		}
	} else if err := rh.DelRoutes(r.cfg.Routes); err != nil {
		r.log.Error("removing virtual_routes", "err", err)
	}
}

func (r *runner) garpBurst(n int) {
	for k := range n {
		if k > 0 && r.cfg.GARPInterval > 0 {
			time.Sleep(r.cfg.GARPInterval)
		}
		if err := r.host.Gratuitous(r.allVIPs()); err != nil {
			r.log.Warn("gratuitous ARP/NA", "err", err)
			return
		}
	}
}

// do carries out the machine's actions.
func (r *runner) do(now time.Time, acts []Action) {
	for _, a := range acts {
		switch a.Kind {
		case ActSendAdvert:
			r.send(a.Priority)
		case ActAddVIPs:
			if err := r.host.AddVIPs(r.allVIPs()); err != nil {
				r.log.Error("adding VIPs", "err", err)
			}
			r.routes(true)
		case ActDelVIPs:
			r.routes(false)
			if err := r.host.DelVIPs(r.allVIPs()); err != nil {
				r.log.Error("removing VIPs", "err", err)
			}
		case ActGratuitous:
			r.garpBurst(r.cfg.GARPMasterRepeat)
			if r.cfg.GARPMasterDelay > 0 {
				r.garpAt = now.Add(r.cfg.GARPMasterDelay)
			}
			if r.cfg.GARPMasterRefresh > 0 {
				r.refreshAt = now.Add(r.cfg.GARPMasterRefresh)
			}
		case ActNotify:
			r.changed(a.State)
		}
	}
	r.mu.Lock()
	r.prio, r.master = r.m.Priority(), r.m.Master()
	r.mu.Unlock()
}

func (r *runner) changed(s State) {
	r.mu.Lock()
	old := r.state
	r.state = s
	hook, watchers := r.onState, r.watchers
	r.mu.Unlock()
	if s == StateMaster {
		r.becomeMaster.Add(1)
	}
	if old == StateMaster {
		r.releaseMaster.Add(1)
	}
	if s != StateMaster {
		r.garpAt, r.refreshAt = time.Time{}, time.Time{}
	}
	r.log.Info("entering "+s.String()+" state", "priority", r.m.Priority())
	r.notify.run(r.cfg.Notify.entering(s))
	r.notify.run(r.cfg.Notify.Any, "INSTANCE", r.cfg.Name, s.String(), fmt.Sprint(r.m.Priority()))
	if r.opt.FIFO != nil {
		r.opt.FIFO.WriteLine(notify.InstanceLine(r.cfg.Name, s.String(), r.m.Priority()))
	}
	if hook != nil {
		hook(r.Instance, s)
	}
	for _, f := range watchers {
		f(r.Instance, s)
	}
}

func (r *runner) send(prio uint8) {
	a := Advert{Version: r.cfg.Version, Type: TypeAdv, VRID: r.cfg.VRID, Priority: prio}
	if r.cfg.Version == 2 {
		a.Interval = uint16(r.cfg.AdvertInt / time.Second)
		a.AuthType = r.cfg.AuthType
		if a.AuthType == AuthPass {
			a.AuthData = PassAuthData(r.cfg.AuthPass)
		}
	} else {
		a.Interval = uint16(r.cfg.AdvertInt / (10 * time.Millisecond))
	}
	for _, v := range r.cfg.VIPs {
		a.Addrs = append(a.Addrs, v.Prefix.Addr())
	}
	var seq uint32
	if a.AuthType == AuthAH {
		// one sequence number and IP id per advert, whatever the number
		// of unicast peers, as keepalived
		seq = r.ahSeq.Next()
		if r.ipID++; r.ipID == 0 {
			r.ipID++ // the kernel would pick its own for 0
		}
	}
	var errs []error
	for _, dst := range r.dsts {
		b, err := a.Marshal(r.primary, dst)
		if err == nil && a.AuthType == AuthAH {
			err = r.sendAH(b, dst, seq)
		} else if err == nil {
			err = r.conn.WriteAdvert(b, dst)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("to %s: %w", dst, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		r.log.Warn("sending advert", "err", err)
		return
	}
	r.sent.Add(1)
	if prio == 0 {
		r.prio0Sent.Add(1)
	}
}

// groupFaultOnly reports whether the instance is in FAULT only because its
// sync group is.
func (i *Instance) groupFaultOnly() bool {
	own, _ := i.tracked()
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.groupFault && !own
}

// sendAH sends the advert b to dst inside an AH header.
func (r *runner) sendAH(b []byte, dst netip.Addr, seq uint32) error {
	pw, ok := r.conn.(PacketConn)
	if !ok {
		return errors.New("auth_type AH: this connection cannot send whole IPv4 packets")
	}
	pkt, err := SealAH(r.primary, dst, r.ipID, seq, PassAuthData(r.cfg.AuthPass), r.cfg.Unicast(), b)
	if err != nil {
		return err
	}
	return pw.WritePacket4(pkt)
}
