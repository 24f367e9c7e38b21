package ipvsadm

import (
	"fmt"
	"math"
	"math/bits"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Option bits, in ipvsadm's order (OPTC_*); the order indexes optNames and
// the columns of cmdOptions.
const (
	optNumeric = iota
	optConnection
	optService
	optScheduler
	optPersistent
	optNetmask
	optServer
	optForward
	optWeight
	optUThreshold
	optLThreshold
	optMcast
	optTimeout
	optDaemon
	optStats
	optRate
	optThresholds
	optPersistentConn
	optNoSort
	optSyncID
	optExact
	optOnePacket
	optPE
	optSchedFlags
	optMcastGroup
	optMcastPort
	optMcastTTL
	optSyncMaxlen
	optTunInfo
	optTunType
	optTunPort
	optTunNoCsum
	optTunCsum
	optTunRemCsum
	optLAddr         // GVS: --laddr
	optProxyProtocol // GVS: --proxy-protocol
	numOpts
)

var optNames = [numOpts]string{"numeric", "connection", "service-address", "scheduler",
	"persistent", "netmask", "real-server", "forwarding-method", "weight", "u-threshold",
	"l-threshold", "mcast-interface", "timeout", "daemon", "stats", "rate", "thresholds",
	"persistent-conn", "nosort", "syncid", "exact", "ops", "pe", "sched-flags", "mcast-group",
	"mcast-port", "mcast-ttl", "sync-maxlen", "tun-info", "tun-type", "tun-port", "tun-nocsum",
	"tun-csum", "tun-remcsum", "laddr", "proxy-protocol"}

// cmdOptions is ipvsadm's table of legal command/option combinations, one
// row per command (CmdAdd first), one column per option: '+' required,
// 'x' illegal, '1' at most one of the '1's, ' ' optional. The last two
// columns are GVS's --laddr and --proxy-protocol.
var cmdOptions = [...]string{
	CmdAdd - 1:         "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx  ",
	CmdEdit - 1:        "xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx  ",
	CmdDel - 1:         "xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	CmdFlush - 1:       "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	CmdList - 1:        " 11xxxxxxxxx11       xxxxxxx xxxxxxx",
	CmdAddDest - 1:     "xx+xxx+    xxxxxxxxxxxxxxxxxx     xx",
	CmdDelDest - 1:     "xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	CmdEditDest - 1:    "xx+xxx+    xxxxxxxxxxxxxxxxxx     xx",
	CmdTimeout - 1:     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	CmdStartDaemon - 1: "xxxxxxxxxxx xxxxxxx xxxx    xxxxxxxx",
	CmdStopDaemon - 1:  "xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxxxx",
	CmdRestore - 1:     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	CmdSave - 1:        " xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
	CmdZero - 1:        "xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
}

// tunOptions is ipvsadm's table of tunnel types (ipip, gue, gre) against
// --tun-port, --tun-nocsum, --tun-csum, --tun-remcsum.
var (
	tunOptions = [...]string{"xxxx", "+111", "x11x"}
	tunOptCols = [...]int{optTunPort, optTunNoCsum, optTunCsum, optTunRemCsum}
)

const maxTimeout = 86400 * 31 // ipvsadm's MAX_TIMEOUT, 31 days

// defaultMcastInterface is ipvsadm's --mcast-interface when none is given.
const defaultMcastInterface = "eth0"

// entry is the command line being parsed, as ipvsadm's ipvs_command_entry.
type entry struct {
	cmd     Cmd
	opts    uint64
	format  Format
	six     bool // the service is IPv6
	proto   ipvs.Protocol
	addr    netip.Addr
	port    uint16
	fwmark  uint32
	sched   string
	flags   uint32
	timeout uint32
	netmask uint32 // an IPv4 mask as a number, or an IPv6 prefix length
	pe      string
	pp      int
	laddrs  []netip.Addr

	destSix  bool
	destAddr netip.Addr
	destPort uint16
	method   ipvs.Method
	weight   int32
	uth, lth uint32
	tunType  ipvs.TunType
	tunPort  uint16
	tunFlags uint16

	timeouts    ipvs.Timeouts
	daemonState string
	daemon      wire.SyncDaemon // --start-daemon's options
	hostName    string          // a host name ipvsadm would have resolved and we do not
	prog        string
}

// usage is fail(2, ...).
func usage(format string, a ...any) *Error {
	return &Error{Msg: fmt.Sprintf(format, a...), Code: ExitUsage}
}

// ProgName is the name to print for the program: argv[0]'s base name.
func ProgName(argv []string) string {
	if len(argv) == 0 || argv[0] == "" {
		return "gvsadm"
	}
	return filepath.Base(argv[0])
}

func tryHelp(prog string) *Error {
	return &Error{Msg: fmt.Sprintf("Try `%s -h' or '%s --help' for more information.", prog, prog), Code: ExitKernel}
}

// Parse parses an ipvsadm command line; argv[0] is the program name. It
// checks everything ipvsadm checks before talking to the kernel and returns
// an *Error with ipvsadm's message and exit status when it refuses. With no
// arguments at all it lists the table, as ipvsadm does.
func Parse(argv []string) (*Request, error) {
	if len(argv) <= 1 {
		return &Request{Cmd: CmdList}, nil
	}
	prog := ProgName(argv)
	e := &entry{weight: 1, method: ipvs.Route, netmask: math.MaxUint32, prog: prog}
	p := newPopt(argv)

	def, arg, _, st := p.nextOpt()
	if st < 0 {
		return nil, tryHelp(prog)
	}
	switch def.tag {
	case 'A':
		e.cmd = CmdAdd
	case 'E':
		e.cmd = CmdEdit
	case 'D':
		e.cmd = CmdDel
	case 'a':
		e.cmd = CmdAddDest
	case 'e':
		e.cmd = CmdEditDest
	case 'd':
		e.cmd = CmdDelDest
	case 'C':
		e.cmd = CmdFlush
	case 'L', 'l':
		e.cmd = CmdList
	case 'Z':
		e.cmd = CmdZero
	case tagSet:
		e.cmd = CmdTimeout
	case 'R':
		e.cmd = CmdRestore
	case 'S':
		e.cmd = CmdSave
	case tagStartDaemon, tagStopDaemon:
		e.cmd = CmdStartDaemon
		if def.tag == tagStopDaemon {
			e.cmd = CmdStopDaemon
		}
		if arg != "master" && arg != "backup" {
			if e.cmd == CmdStartDaemon {
				return nil, usage("illegal start-daemon parameter specified")
			}
			return nil, usage("illegal start_daemon specified")
		}
		e.daemonState = arg
	case 'h':
		return &Request{Cmd: CmdHelp}, nil
	case 'v':
		return &Request{Cmd: CmdVersion}, nil
	default:
		return nil, tryHelp(prog)
	}

	var schedFlagsArg string
	for {
		def, arg, hasArg, st := p.nextOpt()
		if st == poptDone {
			break
		}
		if st == poptBadOpt {
			return nil, &Error{Msg: p.cur + ": unknown option", Code: ExitKernel}
		}
		if st == poptNoArg {
			return nil, &Error{Msg: p.cur + ": missing argument", Code: ExitKernel}
		}
		if err := e.option(def, arg, hasArg, p.cur, &schedFlagsArg); err != nil {
			return nil, err
		}
	}

	if e.cmd == CmdTimeout {
		a0, ok0 := p.nextArg()
		a1, ok1 := p.nextArg()
		a2, ok2 := p.nextArg()
		if !ok0 || !ok1 || !ok2 {
			return nil, usage("--set option requires 3 timeout values")
		}
		var vals [3]uint32
		for i, a := range []string{a0, a1, a2} {
			v, err := parseTimeout(a, 0, maxTimeout)
			if err != nil {
				return nil, err
			}
			vals[i] = v
		}
		e.timeouts = ipvs.Timeouts{TCP: vals[0], TCPFin: vals[1], UDP: vals[2]}
	}
	if a, ok := p.nextArg(); ok {
		return nil, usage("unexpected argument %s", a)
	}
	if schedFlagsArg != "" {
		f, err := parseSchedFlags(e.sched, schedFlagsArg)
		if err != nil {
			return nil, err
		}
		e.flags &^= ipvs.SchedFlag1 | ipvs.SchedFlag2 | ipvs.SchedFlag3
		e.flags |= f
	}
	return e.finish()
}

func (e *entry) setOption(o int) error {
	bit := uint64(1) << o
	if e.opts&bit != 0 {
		return usage("multiple '%s' options specified", optNames[o])
	}
	e.opts |= bit
	return nil
}

func (e *entry) has(o int) bool { return e.opts&(uint64(1)<<o) != 0 }

// option applies one option, in the order given, as ipvsadm does.
func (e *entry) option(def *optDef, arg string, hasArg bool, word string, schedFlags *string) error {
	set := func(o int) error { return e.setOption(o) }
	switch def.tag {
	case 't', 'u', tagSCTP:
		if err := set(optService); err != nil {
			return err
		}
		e.proto = map[int]ipvs.Protocol{'t': ipvs.TCP, 'u': ipvs.UDP, tagSCTP: ipvs.SCTP}[def.tag]
		a, ok := e.parseService(arg, e.proto)
		if !ok || !a.addrSet {
			return e.addrError("illegal virtual server address[:port] specified")
		}
		e.six, e.addr = a.six, a.addr
		if a.six {
			e.netmask = 128
		}
		if a.portSet {
			e.port = a.port
		}
	case 'f':
		if err := set(optService); err != nil {
			return err
		}
		e.six = false
		e.proto = ipvs.TCP
		v, err := strconv.ParseInt(strings.TrimLeft(arg, " \t\n\v\f\r"), 10, 64)
		if err != nil || v <= 0 || v > math.MaxUint32 {
			return usage("invalid fwmark value `%s' specified", arg)
		}
		e.fwmark = uint32(v)
	case 's':
		if err := set(optScheduler); err != nil {
			return err
		}
		e.sched = truncate(arg, 15)
	case 'p':
		if err := set(optPersistent); err != nil {
			return err
		}
		e.flags |= ipvs.FlagPersistent
		if !hasArg {
			e.timeout = ipvs.DefaultPersistence
			break
		}
		v, err := parseTimeout(arg, 1, maxTimeout)
		if err != nil {
			return err
		}
		e.timeout = v
	case 'M':
		if err := set(optNetmask); err != nil {
			return err
		}
		if !e.six {
			a, err := netip.ParseAddr(arg)
			switch {
			case err == nil && a.Is4():
				b := a.As4()
				e.netmask = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
			case arg == "localhost":
				e.netmask = 0x7f000001
			default:
				return usage("illegal virtual server persistent mask specified")
			}
		} else {
			n := atoi(arg)
			if n < 1 || n > 128 {
				return usage("illegal ipv6 netmask specified")
			}
			e.netmask = uint32(n)
		}
	case 'r':
		if err := set(optServer); err != nil {
			return err
		}
		a, ok := e.parseService(arg, e.proto)
		if !ok || !a.addrSet {
			return e.addrError("illegal real server address[:port] specified")
		}
		e.destSix, e.destAddr = a.six, a.addr
		e.destPort = e.port
		if a.portSet {
			e.destPort = a.port
		}
	case 'i', 'g', 'm', tagFullNAT:
		if err := set(optForward); err != nil {
			return err
		}
		e.method = map[int]ipvs.Method{'i': ipvs.Tunnel, 'g': ipvs.Route, 'm': ipvs.Masq, tagFullNAT: ipvs.FullNAT}[def.tag]
	case 'w':
		if err := set(optWeight); err != nil {
			return err
		}
		v, ok := stringToNumber(arg, 0, math.MaxInt32)
		if !ok {
			return usage("illegal weight specified")
		}
		e.weight = int32(v)
	case 'x', 'y':
		o, name := optUThreshold, "u_threshold"
		if def.tag == 'y' {
			o, name = optLThreshold, "l_threshold"
		}
		if err := set(o); err != nil {
			return err
		}
		v, ok := stringToNumber(arg, 0, math.MaxInt32)
		if !ok {
			return usage("illegal %s specified", name)
		}
		if def.tag == 'x' {
			e.uth = uint32(v)
		} else {
			e.lth = uint32(v)
		}
	case 'c':
		return set(optConnection)
	case 'n':
		e.format |= FmtNumeric
		return set(optNumeric)
	case tagMcastInterface:
		e.daemon.Interface = truncate(arg, 15)
		return set(optMcast)
	case tagSyncID:
		if err := set(optSyncID); err != nil {
			return err
		}
		v, ok := stringToNumber(arg, 0, 255)
		if !ok {
			return usage("illegal syncid specified")
		}
		e.daemon.SyncID = uint8(v)
	case tagTimeout:
		return set(optTimeout)
	case tagDaemon:
		return set(optDaemon)
	case tagStats:
		e.format |= FmtStats
		return set(optStats)
	case tagRate:
		e.format |= FmtRate
		return set(optRate)
	case tagThresholds:
		e.format |= FmtThresholds
		return set(optThresholds)
	case tagPersistentConn:
		e.format |= FmtPersistentConn
		return set(optPersistentConn)
	case tagNoSort:
		e.format |= FmtNoSort
		return set(optNoSort)
	case tagSort:
		// the default; a no-op kept for compatibility
	case 'X':
		e.format |= FmtExact
		return set(optExact)
	case '6':
		if e.fwmark == 0 {
			return usage("-6 used before -f\n")
		}
		e.six = true
		e.netmask = 128
	case 'o':
		if err := set(optOnePacket); err != nil {
			return err
		}
		e.flags |= ipvs.FlagOnePacket
	case tagPE:
		if err := set(optPE); err != nil {
			return err
		}
		e.pe = truncate(arg, 32)
	case 'b':
		if err := set(optSchedFlags); err != nil {
			return err
		}
		*schedFlags = arg
	case tagMcastGroup:
		if err := set(optMcastGroup); err != nil {
			return err
		}
		a, err := netip.ParseAddr(arg)
		if strings.Contains(arg, ":") {
			if err != nil || !a.Is6() || a.Zone() != "" || !a.IsMulticast() {
				return usage("invalid IPv6 mcast-group `%s'", arg)
			}
		} else if err != nil || !a.Is4() || !a.IsMulticast() {
			return usage("invalid IPv4 mcast-group `%s'", arg)
		}
		e.daemon.Group = a
	case tagMcastPort, tagMcastTTL, tagSyncMaxlen:
		o, name, max := optMcastPort, "mcast-port", 65535
		switch def.tag {
		case tagMcastTTL:
			o, name, max = optMcastTTL, "mcast-ttl", 255
		case tagSyncMaxlen:
			o, name, max = optSyncMaxlen, "sync-maxlen", 65535-20-8
		}
		if err := set(o); err != nil {
			return err
		}
		v, ok := stringToNumber(arg, 1, max)
		if !ok {
			return usage("illegal %s specified", name)
		}
		switch o {
		case optMcastPort:
			e.daemon.Port = uint16(v)
		case optMcastTTL:
			e.daemon.TTL = uint8(v)
		default:
			e.daemon.MaxLen = int(v)
		}
	case tagTunInfo:
		e.format |= FmtTunInfo
		return set(optTunInfo)
	case tagTunType:
		if err := set(optTunType); err != nil {
			return err
		}
		switch arg {
		case "ipip":
			e.tunType = ipvs.TunIPIP
		case "gue":
			e.tunType = ipvs.TunGUE
		case "gre":
			e.tunType = ipvs.TunGRE
		default:
			return usage("illegal tunnel type specified")
		}
	case tagTunPort:
		if err := set(optTunPort); err != nil {
			return err
		}
		v, ok := stringToNumber(arg, 1, 65535)
		if !ok {
			return usage("illegal tunnel port specified")
		}
		e.tunPort = uint16(v)
	case tagTunNoCsum:
		return set(optTunNoCsum)
	case tagTunCsum:
		e.tunFlags |= TunFlagCsum
		return set(optTunCsum)
	case tagTunRemCsum:
		e.tunFlags |= TunFlagRemCsum
		return set(optTunRemCsum)
	case tagLAddr:
		if err := set(optLAddr); err != nil {
			return err
		}
		for _, s := range strings.Split(arg, ",") {
			a, err := netip.ParseAddr(s)
			if err != nil || a.Zone() != "" {
				return usage("illegal local address `%s' specified (want --laddr ADDR[,ADDR...] with numeric addresses)", s)
			}
			e.laddrs = append(e.laddrs, a.Unmap())
		}
	case tagProxyProtocol:
		if err := set(optProxyProtocol); err != nil {
			return err
		}
		v, ok := stringToNumber(arg, 1, 2)
		if !ok {
			return usage("illegal PROXY protocol version `%s' specified (want 1 or 2)", arg)
		}
		e.pp = v
	default:
		return usage("invalid option `%s'", word)
	}
	return nil
}

// Tunnel checksum flags (Dest.TunFlags), as ipvsadm's
// IP_VS_TUNNEL_ENCAP_FLAG_*: none means --tun-nocsum.
const (
	TunFlagCsum    uint16 = 1
	TunFlagRemCsum uint16 = 2
)

// addrError is an address error, with a hint when the address was a host
// name: ipvsadm would have looked it up, gvsadm does not.
func (e *entry) addrError(msg string) *Error {
	if e.hostName != "" {
		msg += fmt.Sprintf("\n%s: host names are not resolved (%q): use a numeric address or localhost", e.prog, e.hostName)
	}
	return usage("%s", msg)
}

// finish runs ipvsadm's checks that need the whole line and builds the
// Request.
func (e *entry) finish() (*Request, error) {
	if err := e.checkOptions(); err != nil {
		return nil, err
	}
	if e.cmd == CmdAdd || e.cmd == CmdEdit {
		if e.fwmark == 0 && e.port == 0 && e.flags&ipvs.FlagPersistent == 0 {
			return nil, usage("Zero port specified for non-persistent service")
		}
		if e.flags&ipvs.FlagOnePacket != 0 && e.fwmark == 0 && e.proto != ipvs.UDP {
			return nil, usage("One-Packet Scheduling is only for UDP virtual services")
		}
		if e.sched == "" {
			e.sched = ipvs.DefaultScheduler
		}
	}
	if e.cmd == CmdAddDest || e.cmd == CmdEditDest {
		if e.fwmark == 0 && (e.method == ipvs.Tunnel || e.method == ipvs.Route) {
			e.destPort = e.port
		}
		if e.destSix != e.six && e.method != ipvs.Tunnel {
			return nil, usage("Different address family is allowed only for tunneling servers")
		}
		if (e.has(optTunType) || e.has(optTunPort) || e.has(optTunNoCsum) || e.has(optTunCsum) || e.has(optTunRemCsum)) && e.method != ipvs.Tunnel {
			return nil, usage("Tunnel options conflict with forward method")
		}
		if err := e.checkTunnel(); err != nil {
			return nil, err
		}
	}
	req := &Request{Cmd: e.cmd, Format: e.format, HasService: e.has(optService), DaemonState: e.daemonState}
	if e.cmd == CmdStartDaemon {
		req.Daemon = e.daemon
		req.Daemon.State = e.daemonState
		if req.Daemon.Interface == "" {
			req.Daemon.Interface = defaultMcastInterface
		}
	}
	if e.cmd == CmdList {
		c := e.has(optConnection) || e.has(optTimeout) || e.has(optDaemon)
		if c && (e.has(optStats) || e.has(optRate) || e.has(optThresholds)) ||
			(e.has(optTimeout) || e.has(optDaemon)) && e.has(optPersistentConn) {
			return nil, usage("options conflicts in the list command")
		}
		switch {
		case e.has(optConnection):
			req.List = ListConns
		case e.has(optService):
			req.List = ListService
		case e.has(optTimeout):
			req.List = ListTimeout
		case e.has(optDaemon):
			req.List = ListDaemon
		}
	}
	if e.cmd == CmdSave {
		req.Format |= FmtRule
	}
	svc, err := e.service()
	if err != nil {
		return nil, err
	}
	req.Service = svc
	dest := &ipvs.Dest{Addr: e.destAddr, Port: e.destPort, Method: e.method, Weight: e.weight,
		UThreshold: e.uth, LThreshold: e.lth, TunType: e.tunType, TunPort: e.tunPort, TunFlags: e.tunFlags}
	op := map[Cmd]ipvs.Op{CmdAdd: ipvs.OpAddService, CmdEdit: ipvs.OpEditService, CmdDel: ipvs.OpDelService,
		CmdFlush: ipvs.OpClear, CmdAddDest: ipvs.OpAddDest, CmdEditDest: ipvs.OpEditDest,
		CmdDelDest: ipvs.OpDelDest, CmdTimeout: ipvs.OpSetTimeout, CmdZero: ipvs.OpZero}
	if o, ok := op[e.cmd]; ok {
		c := &ipvs.Command{Op: o}
		switch e.cmd {
		case CmdAdd, CmdEdit, CmdDel, CmdAddDest, CmdEditDest, CmdDelDest:
			c.Service = &req.Service
		case CmdZero:
			if req.HasService {
				c.Service = &req.Service
			}
		case CmdTimeout:
			c.Timeouts = &e.timeouts
		}
		if e.cmd == CmdAddDest || e.cmd == CmdEditDest || e.cmd == CmdDelDest {
			c.Dest = dest
		}
		req.Change = c
	}
	return req, nil
}

// service builds the virtual service named on the line.
func (e *entry) service() (ipvs.Service, error) {
	var s ipvs.Service
	if !e.has(optService) {
		return s, nil
	}
	if e.fwmark != 0 {
		s.FWMark = e.fwmark
		s.Addr = netip.IPv4Unspecified()
		if e.six {
			s.Addr = netip.IPv6Unspecified()
		}
	} else {
		s.Proto, s.Addr, s.Port = e.proto, e.addr, e.port
	}
	s.Scheduler, s.Flags, s.PE = e.sched, e.flags, e.pe
	if e.flags&ipvs.FlagPersistent != 0 {
		s.Timeout = e.timeout
	}
	if e.six {
		s.Netmask = int(e.netmask)
	} else {
		ones := bits.LeadingZeros32(^e.netmask)
		if e.netmask<<ones != 0 {
			if e.cmd == CmdAdd || e.cmd == CmdEdit {
				return s, usage("illegal virtual server persistent mask specified\n%s: only contiguous masks such as 255.255.255.0 are supported", e.prog)
			}
			ones = 32
		}
		s.Netmask = ones
	}
	s.ProxyProtocol = e.pp
	s.LocalAddrs = e.laddrs
	return s, nil
}

func (e *entry) checkOptions() error {
	cols := make([]int, numOpts)
	for j := range cols {
		cols[j] = j
	}
	return e.checkRow(cmdOptions[e.cmd-1], cols, fmt.Sprintf("the '%s' command", e.cmd))
}

func (e *entry) checkTunnel() error {
	return e.checkRow(tunOptions[e.tunType], tunOptCols[:], fmt.Sprintf("the '%s' tunnel type", e.tunType))
}

// checkRow applies one row of ipvsadm's option tables to the options given:
// '+' must be given, 'x' must not, and of the '1' options at most one.
// cols maps the row's columns to options; in names the command or tunnel
// type for the messages.
func (e *entry) checkRow(row string, cols []int, in string) error {
	last := -1
	for j, k := range cols {
		if !e.has(k) {
			if row[j] == '+' {
				return usage("You need to supply the '%s' option for %s", optNames[k], in)
			}
			continue
		}
		switch row[j] {
		case 'x':
			return usage("Illegal '%s' option with %s", optNames[k], in)
		case '1':
			if last >= 0 {
				return usage("The option '%s' conflicts with the '%s' option in %s", optNames[k], optNames[last], in)
			}
			last = k
		}
	}
	return nil
}

// parsedAddr is parse_service's result.
type parsedAddr struct {
	addr             netip.Addr
	six              bool
	port             uint16
	addrSet, portSet bool
}

// parseService parses host[:port], [v6addr]:port or a bare IPv6 address as
// ipvsadm's parse_service does. Hosts are numeric addresses or localhost.
func (e *entry) parseService(buf string, proto ipvs.Protocol) (parsedAddr, bool) {
	var r parsedAddr
	if isDigits(buf) {
		return r, false
	}
	host, portStr, hasPort := buf, "", false
	if strings.HasPrefix(buf, "[") {
		inner, after, ok := strings.Cut(buf[1:], "]")
		if !ok || !strings.HasPrefix(after, ":") {
			return r, false
		}
		host, portStr, hasPort = inner, after[1:], true
	}
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() && a.Zone() == "" {
		r.addr, r.six = a, true
	} else {
		// not IPv6: the port is after the last ':' of what is left
		if i := strings.LastIndexByte(host, ':'); i >= 0 {
			host, portStr, hasPort = host[:i], host[i+1:], true
		} else {
			hasPort = false
		}
		a, err := netip.ParseAddr(host)
		switch {
		case err == nil && a.Is4():
			r.addr = a
		case host == "localhost":
			r.addr = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		default:
			if strings.ContainsAny(strings.ToLower(host), "abcdefghijklmnopqrstuvwxyz") && !strings.Contains(host, ":") {
				e.hostName = host
			}
			return r, false
		}
	}
	r.addrSet = true
	if hasPort {
		r.portSet = true
		if v, ok := stringToNumber(portStr, 0, 65535); ok {
			r.port = uint16(v)
		} else if v, ok := portByName(portStr, proto); ok {
			r.port = v
		} else {
			return parsedAddr{}, false
		}
	}
	return r, true
}

// stringToNumber is ipvsadm's string_to_number: a whole decimal number
// (strtol: leading spaces and a sign allowed) within [min, max].
func stringToNumber(s string, min, max int) (int, bool) {
	t := strings.TrimLeft(s, " \t\n\v\f\r")
	v, err := strconv.ParseInt(t, 10, 64)
	if err != nil || t == "" || v < int64(min) || v > int64(max) {
		return 0, false
	}
	return int(v), true
}

func parseTimeout(s string, min, max int) (uint32, error) {
	v, ok := stringToNumber(s, min, max)
	if !ok {
		return 0, usage("invalid timeout value `%s' specified", s)
	}
	return uint32(v), nil
}

// atoi is C's atoi: leading digits, 0 when there are none.
func atoi(s string) int {
	s = strings.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	n := 0
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9' && n < 1<<30; i++ {
		n = n*10 + int(s[i]-'0')
	}
	if neg {
		return -n
	}
	return n
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// parseSchedFlags is ipvsadm's parse_sched_flags: comma-separated names,
// checked against the scheduler (wlc when none was given).
func parseSchedFlags(sched, arg string) (uint32, error) {
	if sched == "" {
		sched = ipvs.DefaultScheduler
	}
	var flags uint32
	for _, f := range strings.Split(arg, ",") {
		if f == "" {
			continue
		}
		need := ""
		switch f {
		case "flag-1":
			flags |= ipvs.SchedFlag1
		case "flag-2":
			flags |= ipvs.SchedFlag2
		case "flag-3":
			flags |= ipvs.SchedFlag3
		case "sh-fallback", "mh-fallback":
			flags |= ipvs.SchedFlag1
			need = f[:2]
		case "sh-port", "mh-port":
			flags |= ipvs.SchedFlag2
			need = f[:2]
		default:
			return 0, usage("invalid scheduler flag `%s'", f)
		}
		if need != "" && sched != need {
			return 0, usage("incompatible scheduler flag `%s'", f)
		}
	}
	return flags, nil
}
