// Package xdp is the XDP data plane: the BPF program of bpf/xdp_lb.c,
// loaded with cilium/ebpf, forwards packets at the driver for direct
// routing (-g), tunnelling (-i, IPIP, GUE or GRE), NAT (-m) and FullNAT
// (--fullnat), and this package keeps its maps in step with the IPVS
// table: services, real servers, scheduler tables, connection expiry with
// IPVS's timeouts, counters and rates.
//
// NAT and FullNAT (bpf/xdp_nat.h):
//   - NAT rewrites the destination of a client's packet to the real
//     server's address and port (which may differ from the VIP's port) and
//     the source of the real server's replies back to the VIP and port.
//     The real servers must route their replies through the director (it
//     is their default gateway), and the director must be attached to the
//     interface the replies arrive on: gvsd --interface eth0 --interface
//     eth1. Real servers see the client's address.
//   - FullNAT also rewrites the source to a local address and port of the
//     service's pool (ipvs.Service.LocalAddrs: gvsadm --laddr, keepalived
//     laddr groups), so real servers may be anywhere routing reaches and
//     reply to the director by themselves. The local addresses must reach
//     the director: put them on its internal interface (the kernel then
//     answers ARP for them) and keep the director's own sockets off them.
//   - Local ports are allocated in BPF, not in Go: a new connection tries
//     up to 16 (local address, port 1024-65535) pairs from a cursor per CPU
//     that walks that space in order (so a pair comes round again only
//     after all the others), and takes the first whose reply key (real
//     server address and port, local address and port) it can insert with
//     BPF_NOEXIST. So one (local address, local port, real server) names at
//     most one connection, and a port is free again when its connection
//     expires. When all tries clash the SYN is dropped and counted
//     ("no-local-port"): give the service more local addresses.
//   - Every NAT connection has two entries in the conns map, the client's
//     and the reply's; the client's holds the state, which follows the
//     kernel's full TCP state table (both directions pass the director),
//     and Go expires both together. ipvsadm -Lnc lists each connection
//     once; OutPkts and OutBytes count the replies.
//   - A client that reuses its address and port towards another VIP of
//     the same NAT real server (the real server sees the same tuple, so
//     the reply entry is the same) gets the new connection when the old
//     one is over (TIME_WAIT or CLOSE) or is UDP: the new one takes the
//     replies, as in the kernel. While the old TCP connection is live the
//     new SYN is dropped ("nat-clash") and the client's retry succeeds once
//     it is over; the kernel would forward it, and the real server's answer
//     would reset the live connection. FullNAT's local ports never clash
//     so: a taken one is skipped, even in TIME_WAIT.
//   - TOA: FullNAT inserts the client's address as a TCP option, kind
//     254, into the SYN (and its retransmissions) and into the ACK that
//     completes the handshake when it carries no data (where the TOA
//     kernel module of Alibaba's LVS and DPVS reads it; internal/toa's
//     reader finds it in either). IPv4: length
//     8, 2-byte port and 4-byte address; IPv6: length 20, 2-byte port and
//     16-byte address (DPVS's IPv6 TOA). It goes first among the options;
//     the headers in front of it move (bpf_xdp_adjust_head). When the
//     options have no room left (more than 32 bytes, or 20 for IPv6) the
//     packet goes on without it and "toa-no-room" counts it. Data packets
//     never carry TOA, so their size never grows and the MSS needs no
//     clamping (DPVS, which puts TOA into the first data packet, lowers the
//     MSS by the option's size instead); the SYN and the pure ACK grow by
//     8 or 20 bytes, far below any MTU.
//   - UDP through FullNAT carries no client address (no UOA): real servers
//     see the local address. Use NAT, or TCP, when they need the client.
//   - ICMP errors that quote a NAT or FullNAT packet are translated both
//     ways: from the real servers' side to the client (from the VIP), from
//     the client's side to the real server (from the local address for
//     FullNAT), with the quoted addresses, ports and checksums rewritten.
//   - Checksums are updated incrementally (RFC 1624); an IPv4 UDP
//     checksum of 0 stays 0. A partial checksum (the pseudo-header seed a
//     local, veth or tap sender leaves for the device) is completed first
//     in native mode, and stays a seed, of the new header, in generic mode,
//     where FullNAT grows such a packet at its tail for TOA (the skb's
//     checksum offset must not move); see docs/DESIGN.md. DR and TUN
//     complete a partial checksum in native mode too, and leave it as it
//     came in generic mode. The TTL is not decremented (as for DR and TUN).
//   - Towards a real server the next hop is the one Go resolved (see
//     TUN below); replies to clients take the next hop from
//     bpf_fib_lookup, which answers only where forwarding is enabled:
//     NAT and FullNAT need net.ipv4.ip_forward=1
//     (net.ipv6.conf.all.forwarding=1 for IPv6), as LVS-NAT does, and
//     Apply warns when it is off. A reply whose next hop has no neighbour
//     entry yet is dropped and Go makes the kernel resolve it (the client
//     retransmits). Packets too big for the egress MTU are dropped and
//     counted ("too-big"); VLAN tags are kept as they came.
//   - The address family cannot change (no NAT64): the real server, the
//     local addresses and the VIP are of one family.
//
// How it differs from kernel IPVS, by design or for now:
//   - rr and wrr make the kernel's choices (ip_vs_wrr_schedule over the
//     service's list, rr being the same walk with every weight counted as
//     1), for weights up to 2147483647, with internal/sched's skip-ahead
//     where the kernel would make billions of empty passes. The cursor
//     (the server chosen last and wrr's current weight) is one word per
//     service, moved by compare-and-swap: connections at the same moment
//     on several CPUs are chosen one after the other as under the
//     kernel's lock (after 8 lost races a CPU takes its last choice
//     without moving the cursor). On a table change (-a, -d, -e, a
//     checker's verdict) Go writes the new list to the idle half and
//     swaps in the cursor internal/sched's Update makes from the one BPF
//     left: rr goes on after the server it chose last (a deleted one
//     hands the place to the server before it), wrr starts over at the
//     list head and keeps its current weight when it fits. A batch of
//     changes (a snapshot, a reload) is one Update, as on the proxy
//     engine, where the kernel runs its hook once per command. Up to
//     4,093 real servers per rr/wrr service.
//   - A new connection that no real server can take (every one at weight
//     0 or over its upper threshold, an sh/mh slot whose server has
//     weight 0 without fallback) is answered as ip_vs_leave answers it:
//     an ICMP port unreachable (ICMPv6 for IPv6) from the virtual address,
//     for TCP and UDP, quoting the packet up to 576 bytes (1280 for
//     IPv6), sent back out of the interface it came in on and counted
//     "refused"; connect() fails at once with "connection refused". The
//     kernel limits its ICMP errors per host and per client
//     (icmp_msgs_per_sec 1000 a second in bursts of 50, icmp_ratelimit one
//     a second per client after a burst of 6); the program limits its
//     refusals to 1000 a second in bursts of 50 on each CPU, not per
//     client. A VLAN-tagged packet, or one over the limit, is dropped
//     and counted "no-dest".
//   - sh and dh read their tables back from internal/sched, and mh takes
//     its ring from sched.MaglevRing, so they choose exactly as it does; lc, wlc, sed, nq, fo and ovf compare the
//     per-server counters the program keeps with atomic adds, which Go
//     sets again from the connection table on every expiry pass (at most
//     ExpiryInterval late, also for entries the LRU map evicted).
//   - lblc and lblcr (bpf/xdp_locality.h) keep the kernel's table by
//     destination address in an LRU hash of 65536 entries for all
//     services, an entry idle for 24 hours (lblc_expiration) counting as
//     gone; an lblcr set holds at most 8 servers (adding a ninth drops the
//     oldest; the kernel's grows while all its members are overloaded).
//     When a real server's slot is freed (its connections ended after it
//     left the service) the table forgets it, where the kernel keeps a
//     deleted server in a set until its expiry. A new connection costs
//     about what wlc's does (BenchmarkProgramSchedulers, 5 runs, mean:
//     wlc 555 ns, lblc 571 ns, lblcr 585 ns per SYN).
//   - twos (not in the 6.1 kernel) is refused (CheckDest, Apply) with an
//     error naming the proxy engine.
//   - Firewall-mark services: XDP sees a packet before iptables or
//     nftables mark it, so the program classifies a new connection's
//     packet by the user's MARK rules (SetFWMarkRules, package fwmark),
//     compiled into an LPM trie keyed by protocol, family, port and
//     destination prefix (fwmark.go, svc_find in bpf/xdp_lb.c); the
//     service of the mark comes before the address/port service, as in
//     ip_vs_service_find. No firewall-mark service, no trie.
//   - SCTP services are refused (CheckService, Apply, gvsd -t) naming the
//     ipvs engine, the only one that serves them. SCTP: parsing its common header in the program measured nothing
//     (BenchmarkProgram, 6 runs each: established DR 251 ns either way,
//     new DR 545 vs 590 ns and new TUN 652 vs 576 ns, within the noise),
//     so the parser is not the obstacle; serving it needs the kernel's
//     SCTP association states and timeouts, and for NAT and FullNAT a
//     CRC32c of every packet (no BPF helper computes one).
//   - GRE (bpf/xdp_gre.h) is the header the kernel builds; with
//     --tun-csum its checksum, and GUE's outer UDP checksum, are made as
//     Linux's local checksum offload makes them (tun_sum: the tunnel
//     header and the inner pseudo-header, no pass over the payload).
//     --tun-remcsum is refused for GRE, as the kernel does; on GUE the
//     kernel adds the remote checksum option only to a packet whose
//     checksum is still partial; the program never adds it (in native
//     mode it completes such a checksum, in generic mode the device
//     does), which is what the kernel sends for a complete packet.
//   - IPv4 fragments, IPv6 extension headers and more than two VLAN tags
//     go to the kernel untouched (XDP_PASS); so does a TCP packet that
//     belongs to no connection and is not a SYN.
//   - A packet that no longer fits the MTU once tunnelled is answered from
//     the VIP, in the inner packet's family whatever the outer one, with
//     the MTU minus the tunnel's headers, and counted as too-big: IPv4
//     gets an ICMP "fragmentation needed" quoting its header and 8 bytes,
//     IPv6 an ICMPv6 "packet too big" (at least 1280) quoting as much of
//     the packet as fits in 1280 bytes (an even count). IPv4 without DF
//     gets it too, where the kernel would fragment: XDP cannot, and the
//     stack, which has no IPVS, would not forward it (Katran does the
//     same); a sender without DF learns the MTU all the same (Linux keeps
//     it and fragments itself, but fragments are not forwarded, above).
//     Where the path's MTU minus the tunnel is below 1280 an IPv6 sender
//     is told 1280 and its packets above the path's MTU keep being
//     refused (the kernel's IPVS drops them). Only untagged frames are
//     answered; a VLAN-tagged too-big packet is dropped.
//   - The next hop of TUN, NAT and FullNAT packets towards a real server
//     is the route, neighbour and MTU Go resolved over netlink: for a new
//     real server when it is applied (all of a batch's in one pass, before
//     the engine's lock is taken, waiting at most a second in all for
//     neighbours the kernel must resolve first), then as the kernel's
//     neighbour and route tables change (netlink subscriptions: a new MAC
//     address of a neighbour is written to the real servers behind it at
//     once, a route change re-resolves every real server once the routes
//     have been quiet for 100 ms), and for every real server every
//     NeighRefresh (30 s) as a safety net, which also has the kernel
//     confirm neighbour entries gone stale: XDP's packets never confirm
//     them, so a real server that changes its MAC without a gratuitous
//     ARP is found by that confirmation, within about NeighRefresh.
//     Until Go has resolved it, bpf_fib_lookup (where forwarding is
//     enabled). A FIB lookup per packet cost more than the rest of a
//     tunnelled packet's work.
//   - The connection clock is the kernel's tick (bpf_ktime_get_coarse_ns),
//     a few milliseconds coarse; reading the clock source per packet cost
//     more than a fifth of an established packet's time on a VM. An entry
//     keeps it in 32 bits, in units of 2^22 ns (4.19 ms), so timeouts up
//     to 104 days compare right across the clock's wrap.
//   - The connection table is an LRU hash of Options.MaxConns entries
//     (gvsd --xdp-max-conns, default 262144) per address family: when it
//     is full, a new connection evicts the least recently used entry,
//     where IPVS grows its table without bound. IPv4 connections have
//     their own table because its 16-byte key hashes faster than the
//     40-byte IPv6 one. Evictions are not counted (the kernel's LRU does
//     not say): State (gvsadm engine) shows the entries against the
//     bound, as the expiry pass counted them, beside the connections the
//     services counted (TestFaultConnTableOverflow: 4,096 one-datagram
//     flows through a table of 512 left every established and new TCP
//     connection of another service working).
//   - A SYN that finds the entry of a connection that is over (the client
//     reused its source port) is scheduled anew, as in IPVS: when the entry
//     is in TIME_WAIT or CLOSE and its service is not persistent
//     (conn_reuse_mode 1, the kernel's default), or when its real server
//     left its service or has weight 0 (as expire_nodest_conn 1 does).
//     Other packets of a removed server's entries are forwarded until they
//     expire, where the kernel (expire_nodest_conn 0) drops them.
//   - Without Options.PinPath the program, its link and its maps belong to
//     the process: when gvsd exits or dies the program is detached and the
//     connection table is gone; a new gvsd starts empty and the next
//     packet of an established connection goes to the kernel, which resets
//     it (TestFaultRestartXDP, TestFaultDirectorKilledWithSync). With it,
//     the table and the links are pinned and a new engine takes them over
//     (pin.go): the program keeps forwarding while no gvsd runs, as kernel
//     IPVS does when its user space dies.
//   - The per-state TCP timeouts ipvsadm --set cannot change (SYN_RECV,
//     TIME_WAIT, CLOSE, CLOSE_WAIT, LAST_ACK...) are the kernel's unless
//     Options.StateTimeouts overrides them.
//   - Deleting a service or a real server stops new connections to it;
//     established ones are forwarded until they expire, as in IPVS.
//   - One-packet scheduling (-o) on a UDP service, as in IPVS: every
//     datagram is scheduled on its own, counts one connection, is not
//     inserted (so -Lnc never lists it and it holds no server's
//     InActConn); a persistence template, with -p, still picks the server
//     and is listed. An entry made before -o was set is used until it
//     expires. With DR and TUN only: the kernel expects no reply to a
//     one-packet connection (it never hashes it, nor points conntrack's
//     reply at it), and here a NAT or FullNAT reply would find no entry
//     to be un-NATed by, so CheckDest refuses -o with them on UDP
//     services (the proxy engine does -o with reply paths of its own).
//     -o on a TCP service changes nothing, as in the kernel.
package xdp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/fwmark"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Capacity. The maps are sized at load from Options.MaxServices and
// MaxDests; a connection entry keeps both indexes in 16 bits.
const (
	defaultMaxServices = 4096
	defaultDestsPerSvc = 4
	maxIndex           = 1<<16 - 1
	maxLocalAddrs      = 16
	// DefaultMaxConns is the connection table's size per address
	// family unless Options.MaxConns says otherwise.
	DefaultMaxConns = 262144
	// MaxConnsLimit is the largest connection table the kernel makes:
	// a hash map's buckets, a power of two at least its size, take 16
	// bytes each and must fit in 4 GiB (htab_map_alloc's E2BIG).
	MaxConnsLimit = 1 << 27
	// connEntryBytes is the kernel memory of a slot of both connection
	// tables (the map's memlock in /proc/PID/fdinfo on Linux 6.18): 128
	// bytes in the IPv4 one, 152 in the IPv6 one.
	connEntryBytes = 128 + 152
)

// CheckMaxConns refuses a connection table size (per address family,
// gvsd --xdp-max-conns) the kernel cannot make.
func CheckMaxConns(n uint64) error {
	switch {
	case n == 0:
		return fmt.Errorf("the connection table needs at least 1 entry (default %d)", DefaultMaxConns)
	case n > MaxConnsLimit:
		return fmt.Errorf("a connection table of %d entries is more than the kernel's hash maps hold (at most %d, which take %d GiB of kernel memory)", n, MaxConnsLimit, MaxConnsLimit*connEntryBytes>>30)
	}
	return nil
}

// Options configure the engine.
type Options struct {
	// Interfaces are the names of the interfaces the program is attached
	// to: where client packets for the virtual services arrive.
	Interfaces []string
	// Mode is "native", "generic", or "" for native with a fallback to
	// generic (with a warning).
	Mode string
	// TunnelSource4 is the outer source of IPv4 tunnels: the host bits of
	// the prefix are taken from a hash of the inner flow, so that real
	// servers spread tunnelled flows over their receive queues. A /32 is
	// one fixed address. Empty: the first IPv4 address of the first
	// interface.
	TunnelSource4 netip.Prefix
	// TunnelSource6 is the same for IPv6 tunnels (at most 32 host bits
	// vary).
	TunnelSource6 netip.Prefix
	// ExpiryInterval is how often connections are expired and counters
	// corrected (default 1s).
	ExpiryInterval time.Duration
	// NeighRefresh is how often every real server's next hop is
	// resolved again (default 30s), besides the neighbour and route
	// changes the engine follows over netlink as they happen: a safety
	// net, and it makes the kernel confirm neighbour entries gone stale
	// (XDP's packets do not), so a MAC address that changed without a
	// gratuitous ARP is found within about this time.
	NeighRefresh time.Duration
	// MaxConns is the size of the connection table of each address
	// family (entries; a NAT or FullNAT connection takes two; gvsd
	// --xdp-max-conns). When it is full, a new connection evicts the
	// least recently used entry. Memory is allocated up front for both
	// tables, 128 bytes an IPv4 entry and 152 an IPv6 one (70 MiB for the
	// default). 0: DefaultMaxConns; at most MaxConnsLimit.
	MaxConns uint32
	// StateTimeouts override the kernel's fixed per-state TCP timeouts
	// that ipvsadm --set does not reach, by ipvsadm -Lnc's state name
	// ("SYN_RECV", "TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", ...).
	// ESTABLISHED, FIN_WAIT and UDP come from the table's timeouts.
	StateTimeouts map[string]time.Duration
	// PinPath is a directory on a BPF filesystem (for example
	// /sys/fs/bpf/gvs/<instance>) where the engine pins its connection
	// table, real servers and XDP links, and from where a new engine
	// takes them over, so established connections survive a restart
	// (pin.go). Empty: nothing is pinned.
	PinPath string
	// KeepPinned makes Close leave the program attached and the pins in
	// place (keepalived's --dont-release-ipvs): it goes on forwarding,
	// with the last table and no health checks, until the next engine
	// takes over. Otherwise Close drains, detaches and removes the pins.
	KeepPinned bool
	// MaxServices is how many virtual services the engine can hold
	// (gvsd --xdp-max-services), MaxDests how many real servers, all
	// services together (--xdp-max-real-servers); both at most 65535.
	// The maps are allocated up front for them: about 1 KiB of kernel
	// memory per service and 100 bytes per real server, plus 40 bytes
	// per service and per real server for every possible CPU (the
	// counters). Scheduler tables are allocated as services need them
	// (see docs/DESIGN.md). 0: 4096 services, and 4 real servers per
	// service.
	MaxServices, MaxDests int
}

// Engine is the XDP engine. It implements engine.Engine.
type Engine struct {
	log   *slog.Logger
	opts  Options
	objs  lbObjects
	links []link.Link
	// tableSpec is the template of a scheduler table (one inner map of
	// objs.Tables), whose MaxEntries each table sets.
	tableSpec *ebpf.MapSpec
	// fwmSpec is the template of the firewall-mark classifier's trie
	// (the inner map of objs.Fwm).
	fwmSpec *ebpf.MapSpec

	mu       sync.Mutex
	order    []ipvs.ServiceKey
	svcs     map[ipvs.ServiceKey]*svcState
	retired  []*svcState // deleted services whose connections live on
	dests    map[uint32]*destState
	svcIdx   indexes                            // service indexes: Options.MaxServices
	destIdx  indexes                            // real server indexes: Options.MaxDests
	byHop    map[netip.Addr]map[*destState]bool // real servers by next hop
	neighSeq uint64                             // neighbour events applied
	idle     map[*svcState]uint64               // services with an idle table: since which tick
	tick     uint64                             // expiry ticks so far
	timeouts ipvs.Timeouts
	counts   map[uint32]destCounts // per dest index, from the last scan
	loadBuf  []lbDestLoad          // the loads map as expire last read it
	svcBase  map[uint32]ipvs.Stats // Zero's baselines
	destBase map[uint32]ipvs.Stats
	est      map[estKey]*estimator
	warned   map[string]bool // sysctls already warned about
	// The firewall-mark classifier (fwmark.go): the rules, whether the
	// program has them (fwmLive) and whether they changed since
	// (fwmStale), and the services warned of for want of a rule.
	fwmRules  *fwmark.Rules
	fwmLive   bool
	fwmStale  bool
	fwmWarned map[ipvs.ServiceKey]bool
	closing   bool

	scratch   tableScratch // for writeService's tables
	zeroStats []lbStats    // one zero per possible CPU, for resetStats
	txPorts   map[int]bool // interfaces written to the tx_ports map
	reused    bool         // the maps are a previous engine's, pinned

	ifaces []engine.XDPInterface // attached, with their mode
	// entries4 and entries6 are the connection tables' entries as the
	// last expiry pass left them.
	entries4, entries6 int

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ engine.Engine = (*Engine)(nil)

type svcState struct {
	cfg     ipvs.Service
	adopted bool // from a previous engine's pinned maps, not configured yet
	index   uint32
	gen     uint32
	dests   []*destState // in service, the kernel's order
	all     map[netip.AddrPort]*destState
	table   []uint32 // the live table (rr, wrr: the list the cursor walks)
	walk    string   // the scheduler (rr, wrr) whose cursor the cursors map holds
}

type destState struct {
	cfg        ipvs.Dest
	index      uint32
	svc        *svcState
	inService  bool
	lastWeight int32
	ifindex    int
	hop        netip.Addr // the neighbour whose MAC is dmac (byHop)
	smac, dmac net.HardwareAddr
	macSeq     uint64 // neighSeq when a neighbour event last set dmac
	mtu        int
}

type destCounts struct{ active, inactive, persist uint32 }

// New loads the BPF program, attaches it to opts.Interfaces and starts the
// connection expiry. The maps are empty until Apply; call Apply with the
// table before traffic matters (gvsd does it right after New). Close
// detaches the program.
func New(log *slog.Logger, opts Options) (*Engine, error) {
	if len(opts.Interfaces) == 0 {
		return nil, errors.New("xdp engine: no interface to attach to; name at least one (gvsd --xdp-interface)")
	}
	e, err := load(log, opts)
	if err != nil {
		return nil, err
	}
	if opts.PinPath != "" {
		if err := e.pinMaps(); err != nil {
			e.objs.Close()
			return nil, err
		}
		e.dropStaleLinks()
	}
	if err := e.setTunnelSources(); err != nil {
		e.objs.Close()
		return nil, err
	}
	if err := e.attach(); err != nil {
		e.closeLinks()
		e.objs.Close()
		return nil, err
	}
	e.start()
	return e, nil
}

// load creates the maps and the program without attaching it.
func load(log *slog.Logger, opts Options) (*Engine, error) {
	if log == nil {
		log = slog.Default()
	}
	if opts.ExpiryInterval <= 0 {
		opts.ExpiryInterval = time.Second
	}
	if opts.NeighRefresh <= 0 {
		opts.NeighRefresh = 30 * time.Second
	}
	if opts.MaxServices <= 0 {
		opts.MaxServices = defaultMaxServices
	}
	if opts.MaxDests <= 0 {
		opts.MaxDests = min(defaultDestsPerSvc*opts.MaxServices, maxIndex)
	}
	if opts.MaxServices > maxIndex || opts.MaxDests > maxIndex {
		return nil, fmt.Errorf("xdp engine: at most %d services and %d real servers (asked for %d and %d)", maxIndex, maxIndex, opts.MaxServices, opts.MaxDests)
	}
	if opts.MaxConns != 0 {
		if err := CheckMaxConns(uint64(opts.MaxConns)); err != nil {
			return nil, fmt.Errorf("xdp engine: %w", err)
		}
	}
	e := &Engine{
		log:      log.With("engine", "xdp"),
		opts:     opts,
		svcs:     map[ipvs.ServiceKey]*svcState{},
		dests:    map[uint32]*destState{},
		timeouts: ipvs.DefaultTimeouts,
		counts:   map[uint32]destCounts{},
		svcBase:  map[uint32]ipvs.Stats{},
		destBase: map[uint32]ipvs.Stats{},
		est:      map[estKey]*estimator{},
		warned:   map[string]bool{},
		idle:     map[*svcState]uint64{},
		byHop:    map[netip.Addr]map[*destState]bool{},
		svcIdx:   newIndexes(opts.MaxServices),
		destIdx:  newIndexes(opts.MaxDests),
	}
	spec, err := loadLb()
	if err != nil {
		return nil, fmt.Errorf("xdp engine: reading the embedded BPF program: %w", err)
	}
	// Services are replaced by delete and add, so their hash map has room
	// for two entries each; tables holds two generations per service.
	for name, n := range map[string]int{
		"services": 2 * opts.MaxServices, "tables": 2 * opts.MaxServices,
		"cursors": opts.MaxServices, "svc_stats": opts.MaxServices,
		"dests": opts.MaxDests, "loads": opts.MaxDests, "dest_stats": opts.MaxDests,
	} {
		spec.Maps[name].MaxEntries = uint32(n)
	}
	// Tables are made without BTF: loading it for every table would cost
	// more than the table.
	e.tableSpec = spec.Maps["tables"].InnerMap.Copy()
	e.tableSpec.Key, e.tableSpec.Value = nil, nil
	e.fwmSpec = spec.Maps["fwm"].InnerMap.Copy()
	if opts.MaxConns == 0 {
		opts.MaxConns = DefaultMaxConns
	}
	spec.Maps["conns"].MaxEntries = opts.MaxConns
	spec.Maps["conns4"].MaxEntries = opts.MaxConns
	var reused map[string]*ebpf.Map
	if opts.PinPath != "" {
		if err := checkPinDir(opts.PinPath); err != nil {
			return nil, err
		}
		var why string
		reused, why = pinnedReplacements(spec, opts.PinPath)
		if why != "" {
			e.log.Warn("not re-using the pinned maps; starting with an empty connection table (established connections are lost)", "dir", opts.PinPath, "reason", why)
			removePins(opts.PinPath)
			os.MkdirAll(opts.PinPath, 0o700)
		}
	}
	err = spec.LoadAndAssign(&e.objs, &ebpf.CollectionOptions{MapReplacements: reused})
	for _, m := range reused {
		m.Close() // the collection holds its own reference
	}
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("xdp engine: the kernel refused the BPF program: %w (run as root on Linux 6.1 or later)", err)
		}
		if errors.Is(err, unix.ENOMEM) {
			return nil, fmt.Errorf("xdp engine: loading the BPF program: %w (its connection tables of %d entries per family take %d MiB of kernel memory; start gvsd with a smaller --xdp-max-conns)", err, opts.MaxConns, uint64(opts.MaxConns)*connEntryBytes>>20)
		}
		return nil, fmt.Errorf("xdp engine: loading the BPF program: %w (run as root on Linux 6.1 or later)", err)
	}
	if reused != nil {
		e.reused = true
		e.adopt()
	}
	return e, nil
}

func (e *Engine) attach() error {
	for _, name := range e.opts.Interfaces {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return fmt.Errorf("xdp engine: interface %q: %w", name, err)
		}
		idx := l.Attrs().Index
		lk, adopted := e.adoptLink(name, idx)
		if adopted {
			e.log.Info("took over the pinned XDP link", "interface", name)
		} else if e.opts.PinPath != "" {
			e.objs.GenericIfs.Delete(uint32(idx)) // a previous engine's mode
		}
		if !adopted && e.opts.Mode != "generic" {
			lk, err = link.AttachXDP(link.XDPOptions{Program: e.objs.XdpLb, Interface: idx, Flags: link.XDPDriverMode})
			if err != nil && e.opts.Mode == "native" {
				return fmt.Errorf("xdp engine: attaching to %s in native mode: %w", name, err)
			}
			if err != nil {
				e.log.Warn("native XDP not available, falling back to generic mode (slower)", "interface", name, "err", err)
			}
		}
		if lk == nil {
			lk, err = link.AttachXDP(link.XDPOptions{Program: e.objs.XdpLb, Interface: idx, Flags: link.XDPGenericMode})
			if err != nil {
				return fmt.Errorf("xdp engine: attaching to %s: %w", name, err)
			}
			// Packets stay skbs here: NAT keeps partial checksums partial.
			if err := e.objs.GenericIfs.Update(uint32(idx), uint32(1), ebpf.UpdateAny); err != nil {
				lk.Close()
				return fmt.Errorf("xdp engine: marking %s as generic mode: %w", name, err)
			}
		}
		e.links = append(e.links, lk)
		mode := "native"
		var generic uint32
		if e.objs.GenericIfs.Lookup(uint32(idx), &generic) == nil && generic != 0 {
			mode = "generic"
		}
		e.ifaces = append(e.ifaces, engine.XDPInterface{Name: name, Mode: mode})
		if e.opts.PinPath != "" && !adopted {
			if err := lk.Pin(linkPin(e.opts.PinPath, name)); err != nil {
				return fmt.Errorf("xdp engine: pinning the XDP link of %s: %w", name, err)
			}
		}
		if err := e.objs.TxPorts.Update(uint32(idx), uint32(idx), ebpf.UpdateAny); err != nil {
			return fmt.Errorf("xdp engine: adding %s to the egress map: %w", name, err)
		}
		e.log.Info("attached", "interface", name, "ifindex", idx)
	}
	return nil
}

func (e *Engine) closeLinks() {
	for _, l := range e.links {
		l.Close()
	}
	e.links = nil
}

// start runs the expiry, the neighbour and route watch and the slow
// refresh of next hops until Close. They run in the network namespace the
// engine starts in, whichever thread their goroutines land on (netlink
// and the sockets that make the kernel resolve neighbours are per
// namespace).
func (e *Engine) start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	ns, err := netns.Get()
	if err != nil {
		e.log.Warn("cannot tell the network namespace; following neighbours in the process's", "err", err)
	}
	var entered sync.WaitGroup
	run := func(f func()) {
		e.wg.Add(1)
		entered.Add(1)
		go func() {
			defer e.wg.Done()
			if ns.IsOpen() {
				runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
				netns.Set(ns)
			}
			entered.Done()
			f()
		}()
	}
	run(func() {
		t := time.NewTicker(e.opts.ExpiryInterval)
		defer t.Stop()
		est := time.NewTicker(estInterval)
		defer est.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				e.resolveMissing()
				e.expire()
				e.dropIdleTables()
			case <-est.C:
				e.estimate()
			}
		}
	})
	run(func() { e.watchNeighbours(ctx) })
	run(func() {
		t := time.NewTicker(e.opts.NeighRefresh)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				e.refreshNeighbours()
			}
		}
	})
	entered.Wait()
	ns.Close()
}

// Name is "xdp".
func (e *Engine) Name() string { return "xdp" }

// CheckDest refuses what the BPF program cannot forward.
func (e *Engine) CheckDest(svc *ipvs.Service, d *ipvs.Dest) error { return CheckDest(svc, d) }

// CheckService refuses a service the xdp engine cannot serve at all, as
// Apply does, without an engine: gvsd -t checks a configuration with it.
func CheckService(svc *ipvs.Service) error { return checkService(svc) }

// CheckDest is what the xdp engine's CheckDest says, without an engine.
func CheckDest(svc *ipvs.Service, d *ipvs.Dest) error {
	if err := checkService(svc); err != nil {
		return err
	}
	if onePacket(svc) && (d.Method == ipvs.Masq || d.Method == ipvs.FullNAT) {
		return fmt.Errorf("one-packet scheduling (-o) of a UDP service with %s is not supported on the xdp engine: it keeps no connection entry to un-NAT the replies; use -g or -i, drop -o, or run gvsd --engine proxy", d.Method.Flag())
	}
	switch d.Method {
	case ipvs.Masq:
		if d.Addr.Unmap().Is4() != svc.Addr.Unmap().Is4() {
			return errors.New("NAT on the xdp engine cannot change the address family: the real server needs an address of the virtual service's family")
		}
	case ipvs.FullNAT:
		return checkFullNAT(svc, d)
	case ipvs.Tunnel:
		switch d.TunType {
		case ipvs.TunIPIP:
		case ipvs.TunGUE:
			if d.TunPort == 0 {
				return errors.New("a GUE tunnel needs its port (--tun-port)")
			}
		case ipvs.TunGRE:
			if d.TunFlags&^tunFlagCsum != 0 {
				return errors.New("a GRE tunnel takes --tun-nocsum or --tun-csum, not --tun-remcsum")
			}
		default:
			return fmt.Errorf("tunnel type %s is not implemented on the xdp engine; use --tun-type ipip, gue or gre", d.TunType)
		}
	case ipvs.Route:
		if d.Addr.Unmap().Is4() != svc.Addr.Unmap().Is4() {
			return errors.New("direct routing cannot change the address family: the real server needs an address of the virtual service's family")
		}
	}
	return nil
}

// onePacket reports whether one-packet scheduling applies to svc: -o on a
// UDP service (the kernel ignores it for other protocols).
func onePacket(svc *ipvs.Service) bool {
	return svc.Flags&ipvs.FlagOnePacket != 0 && svc.Proto == ipvs.UDP
}

// checkFullNAT wants a local address pool of the real server's family.
func checkFullNAT(svc *ipvs.Service, d *ipvs.Dest) error {
	v4 := d.Addr.Unmap().Is4()
	if v4 != svc.Addr.Unmap().Is4() {
		return errors.New("FullNAT on the xdp engine cannot change the address family: the real server needs an address of the virtual service's family")
	}
	n := 0
	for _, a := range svc.LocalAddrs {
		if a.Unmap().Is4() == v4 {
			n++
		}
	}
	if n == 0 {
		return errors.New("FullNAT needs local addresses of the real server's family: give the service some with --laddr (keepalived.conf: laddr_group_name)")
	}
	if n > maxLocalAddrs {
		return fmt.Errorf("the xdp engine takes at most %d FullNAT local addresses per service and family", maxLocalAddrs)
	}
	return nil
}

func checkService(svc *ipvs.Service) error {
	if !svc.IsFWMark() && svc.Proto != ipvs.TCP && svc.Proto != ipvs.UDP {
		return fmt.Errorf("%s services are not served by the xdp engine (it keeps no %s association states); use gvsd --engine ipvs", svc.Proto, svc.Proto)
	}
	if _, ok := schedKinds[svc.Scheduler]; !ok {
		return notImplemented(svc.Scheduler)
	}
	return nil
}

// Close stops scheduling new connections, waits until the established
// ones have expired or ctx ends, then detaches the program and frees the
// maps.
func (e *Engine) Close(ctx context.Context) error {
	if e.opts.PinPath != "" && e.opts.KeepPinned {
		if e.cancel != nil {
			e.cancel()
			e.wg.Wait()
		}
		e.log.Info("leaving the XDP program attached and its maps pinned for the next gvsd", "dir", e.opts.PinPath)
		e.closeLinks() // their pins hold them
		return e.objs.Close()
	}
	e.mu.Lock()
	e.closing = true
	for _, d := range e.dests {
		d.inService = false
		e.writeDest(d)
	}
	e.mu.Unlock()
	for {
		n := e.liveConns()
		if n == 0 {
			break
		}
		select {
		case <-ctx.Done():
			e.log.Info("closing with connections left", "conns", n)
			goto out
		case <-time.After(200 * time.Millisecond):
		}
	}
out:
	if e.cancel != nil {
		e.cancel()
		e.wg.Wait()
	}
	if e.opts.PinPath != "" {
		removePins(e.opts.PinPath)
	}
	e.closeLinks()
	return e.objs.Close()
}

func (e *Engine) liveConns() int {
	n := 0
	e.walkConns(func(_ *lbConnKey, v *lbConnVal) {
		if v.Flags&connReply == 0 {
			n++
		}
	})
	return n
}

// ConnEntries counts the entries of the connection map: one per DR or
// TUN connection, two per NAT or FullNAT connection (the reply has its
// own). For diagnostics and tests: after every timeout it is 0.
func (e *Engine) ConnEntries() int {
	n := 0
	e.walkConns(func(*lbConnKey, *lbConnVal) { n++ })
	return n
}

func (e *Engine) allocSvc() (uint32, error) {
	if i, ok := e.svcIdx.take(); ok {
		return i, nil
	}
	return 0, e.tooManyServices()
}

func (e *Engine) tooManyServices() error {
	return fmt.Errorf("the xdp engine holds at most %d virtual services; start gvsd with a larger --xdp-max-services", e.svcIdx.size())
}

func (e *Engine) tooManyDests() error {
	return fmt.Errorf("the xdp engine holds at most %d real servers; start gvsd with a larger --xdp-max-real-servers", e.destIdx.size())
}

func (e *Engine) allocDest() (uint32, error) {
	if i, ok := e.destIdx.take(); ok {
		return i, nil
	}
	return 0, e.tooManyDests()
}

// indexes hands out the slots of an array map, lowest first until freed
// ones come back, in constant time (amortized: a slot claimed out of
// turn, by adopt, is skipped when the stack reaches it).
type indexes struct {
	free []uint32 // a stack: the next to take is last
	used []bool
	left int
}

func newIndexes(n int) indexes {
	x := indexes{free: make([]uint32, n), used: make([]bool, n), left: n}
	for i := range x.free {
		x.free[i] = uint32(n - 1 - i)
	}
	return x
}

func (x *indexes) take() (uint32, bool) {
	for len(x.free) > 0 {
		i := x.free[len(x.free)-1]
		x.free = x.free[:len(x.free)-1]
		if !x.used[i] {
			x.used[i] = true
			x.left--
			return i, true
		}
	}
	return 0, false
}

// claim takes slot i, if it is free.
func (x *indexes) claim(i uint32) bool {
	if int(i) >= len(x.used) || x.used[i] {
		return false
	}
	x.used[i] = true
	x.left--
	return true
}

func (x *indexes) put(i uint32) {
	if x.used[i] {
		x.used[i] = false
		x.left++
		x.free = append(x.free, i)
	}
}

func (x *indexes) size() int { return len(x.used) }
