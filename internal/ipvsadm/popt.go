package ipvsadm

import "strings"

// argKind says whether an option takes an argument.
type argKind int

const (
	argNone argKind = iota
	argRequired
	argOptional // popt's POPT_ARGFLAG_OPTIONAL: -p [timeout]
)

// Tags of the options that have no short letter (ipvsadm's TAG_*); the
// others are tagged with their letter.
const (
	tagSet = 128 + iota
	tagStartDaemon
	tagStopDaemon
	tagMcastInterface
	tagTimeout
	tagDaemon
	tagStats
	tagRate
	tagThresholds
	tagPersistentConn
	tagSort
	tagNoSort
	tagPE
	tagSCTP
	tagMcastGroup
	tagMcastPort
	tagMcastTTL
	tagSyncMaxlen
	tagTunInfo
	tagTunType
	tagTunPort
	tagTunNoCsum
	tagTunCsum
	tagTunRemCsum
	tagSyncID
	// GVS extensions.
	tagFullNAT
	tagLAddr
	tagProxyProtocol
)

type optDef struct {
	long  string
	short byte
	arg   argKind
	tag   int
}

// options is ipvsadm 1.31's option table plus GVS's extensions.
var options = []optDef{
	{"add-service", 'A', argNone, 'A'},
	{"edit-service", 'E', argNone, 'E'},
	{"delete-service", 'D', argNone, 'D'},
	{"clear", 'C', argNone, 'C'},
	{"list", 'L', argNone, 'L'},
	{"list", 'l', argNone, 'l'},
	{"zero", 'Z', argNone, 'Z'},
	{"add-server", 'a', argNone, 'a'},
	{"edit-server", 'e', argNone, 'e'},
	{"delete-server", 'd', argNone, 'd'},
	{"set", 0, argNone, tagSet},
	{"help", 'h', argNone, 'h'},
	{"version", 'v', argNone, 'v'},
	{"restore", 'R', argNone, 'R'},
	{"save", 'S', argNone, 'S'},
	{"start-daemon", 0, argRequired, tagStartDaemon},
	{"stop-daemon", 0, argRequired, tagStopDaemon},
	{"tcp-service", 't', argRequired, 't'},
	{"udp-service", 'u', argRequired, 'u'},
	{"sctp-service", 0, argRequired, tagSCTP},
	{"fwmark-service", 'f', argRequired, 'f'},
	{"scheduler", 's', argRequired, 's'},
	{"persistent", 'p', argOptional, 'p'},
	{"netmask", 'M', argRequired, 'M'},
	{"real-server", 'r', argRequired, 'r'},
	{"masquerading", 'm', argNone, 'm'},
	{"ipip", 'i', argNone, 'i'},
	{"gatewaying", 'g', argNone, 'g'},
	{"weight", 'w', argRequired, 'w'},
	{"u-threshold", 'x', argRequired, 'x'},
	{"l-threshold", 'y', argRequired, 'y'},
	{"numeric", 'n', argNone, 'n'},
	{"connection", 'c', argNone, 'c'},
	{"mcast-interface", 0, argRequired, tagMcastInterface},
	{"syncid", 0, argRequired, tagSyncID},
	{"timeout", 0, argNone, tagTimeout},
	{"daemon", 0, argNone, tagDaemon},
	{"stats", 0, argNone, tagStats},
	{"rate", 0, argNone, tagRate},
	{"thresholds", 0, argNone, tagThresholds},
	{"persistent-conn", 0, argNone, tagPersistentConn},
	{"nosort", 0, argNone, tagNoSort},
	{"sort", 0, argNone, tagSort},
	{"exact", 'X', argNone, 'X'},
	{"ipv6", '6', argNone, '6'},
	{"ops", 'o', argNone, 'o'},
	{"pe", 0, argRequired, tagPE},
	{"sched-flags", 'b', argRequired, 'b'},
	{"mcast-group", 0, argRequired, tagMcastGroup},
	{"mcast-port", 0, argRequired, tagMcastPort},
	{"mcast-ttl", 0, argRequired, tagMcastTTL},
	{"sync-maxlen", 0, argRequired, tagSyncMaxlen},
	{"tun-info", 0, argNone, tagTunInfo},
	{"tun-type", 0, argRequired, tagTunType},
	{"tun-port", 0, argRequired, tagTunPort},
	{"tun-nocsum", 0, argNone, tagTunNoCsum},
	{"tun-csum", 0, argNone, tagTunCsum},
	{"tun-remcsum", 0, argNone, tagTunRemCsum},
	{"fullnat", 0, argNone, tagFullNAT},
	{"laddr", 0, argRequired, tagLAddr},
	{"proxy-protocol", 0, argRequired, tagProxyProtocol},
}

func findLong(name string) *optDef {
	for i := range options {
		if options[i].long == name {
			return &options[i]
		}
	}
	return nil
}

func findShort(c byte) *optDef {
	for i := range options {
		if options[i].short == c {
			return &options[i]
		}
	}
	return nil
}

// Results of popt.next besides an option.
const (
	poptDone   = -1
	poptBadOpt = -11 // popt's POPT_ERROR_BADOPT: "unknown option"
	poptNoArg  = -10 // POPT_ERROR_NOARG: "missing argument"
)

// popt walks an argv the way libpopt does for ipvsadm: short options may be
// clustered (-Lnc) and take their argument from the rest of the cluster or
// the next word, long options take "=value" or the next word, an optional
// argument is taken only when the next word does not start with '-', words
// that are not options are kept for later, and "--" ends the options.
type popt struct {
	argv      []string
	next      int
	cluster   string
	cur       string // the argv word being read, as poptBadOption reports it
	leftovers []string
	noOpts    bool
}

func newPopt(argv []string) *popt { return &popt{argv: argv, next: 1} }

// nextOpt returns the next option and its argument, or a negative status.
func (p *popt) nextOpt() (def *optDef, arg string, hasArg bool, status int) {
	for {
		if p.cluster != "" {
			c := p.cluster[0]
			p.cluster = p.cluster[1:]
			def := findShort(c)
			if def == nil {
				return nil, "", false, poptBadOpt
			}
			if def.arg == argNone {
				return def, "", false, 0
			}
			if p.cluster != "" {
				arg, p.cluster = p.cluster, ""
				return def, arg, true, 0
			}
			return p.wordArg(def)
		}
		if p.next >= len(p.argv) {
			return nil, "", false, poptDone
		}
		a := p.argv[p.next]
		p.next++
		p.cur = a
		switch {
		case p.noOpts || a == "-" || !strings.HasPrefix(a, "-"):
			p.leftovers = append(p.leftovers, a)
		case a == "--":
			p.noOpts = true
		case strings.HasPrefix(a, "--"):
			name, val, eq := strings.Cut(a[2:], "=")
			def := findLong(name)
			if def == nil {
				return nil, "", false, poptBadOpt
			}
			if def.arg == argNone {
				return def, "", false, 0
			}
			if eq {
				return def, val, true, 0
			}
			return p.wordArg(def)
		default:
			p.cluster = a[1:]
		}
	}
}

// wordArg takes an option's argument from the next argv word.
func (p *popt) wordArg(def *optDef) (*optDef, string, bool, int) {
	if p.next >= len(p.argv) {
		if def.arg == argOptional {
			return def, "", false, 0
		}
		return nil, "", false, poptNoArg
	}
	w := p.argv[p.next]
	if def.arg == argOptional && strings.HasPrefix(w, "-") {
		return def, "", false, 0
	}
	p.next++
	return def, w, true, 0
}

// nextArg returns the next word that was not an option (poptGetArg).
func (p *popt) nextArg() (string, bool) {
	if len(p.leftovers) == 0 {
		return "", false
	}
	a := p.leftovers[0]
	p.leftovers = p.leftovers[1:]
	return a, true
}
