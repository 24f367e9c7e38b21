// Command gvsd is the GVS daemon: a layer-4 load balancer (the IPVS data
// plane) with keepalived's health checks and VRRP, driven by gvsadm.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/daemon"
	"github.com/gvs-lb/gvs/internal/director"
	"github.com/gvs-lb/gvs/internal/engine/xdp"
)

// version is gvsd's version, set when building a release:
//
//	go build -ldflags "-X main.version=1.2.0" ./cmd/gvsd
//
// Left empty, gvsd reports the module version and commit it was built from.
var version string

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

const usage = `Usage: gvsd [OPTION]...
The GVS daemon: a layer-4 load balancer. It serves the IPVS table that gvsadm
(ipvsadm's commands) edits, and runs a keepalived.conf: its virtual servers,
health checkers and VRRP instances. It stays in the foreground and logs to
stderr.

  -f, --use-file FILE     run this keepalived.conf (default: no file; gvsadm
                          alone builds the table)
  -t, --config-test       check the configuration file (-f, or
                          /etc/keepalived/keepalived.conf) for the --engine
                          given and exit with keepalived's codes: 0 fine,
                          4 unreadable, 5 errors
      --engine NAME       data plane: proxy (default; a TCP/UDP proxy, NAT
                          only, no privileges), xdp (root; DR, TUN, NAT,
                          FullNAT in XDP on --interface), ipvs (root; the
                          kernel's IPVS, every method and scheduler it
                          has), or auto (xdp, falling back to proxy)
      --interface IF      interface the xdp engine attaches to; repeat for
                          several (NAT replies must arrive on one of them)
      --xdp-mode MODE     native or generic; default native, falling back to
                          generic (generic on veth)
      --xdp-max-services N
                          xdp engine: most virtual services (default 4096,
                          at most 65535); its maps are sized for them at
                          start (about 1 KiB of kernel memory each)
      --xdp-max-real-servers N
                          xdp engine: most real servers of all services
                          together (default 4 per --xdp-max-services, at
                          most 65535; about 100 bytes each)
      --xdp-max-conns N   xdp engine: size of the connection table of each
                          address family, in entries (one per DR or TUN
                          connection, two per NAT or FullNAT one); when full
                          the least recently used entry is evicted (default
                          262144, at most 134217728; 280 bytes of kernel
                          memory each, 70 MiB for the default)
      --fwmark-rules FILE
                          xdp engine: the MARK rules that select firewall-
                          mark services (-f MARK, virtual_server fwmark N), as
                          "iptables-save -t mangle" prints them: XDP runs
                          before iptables marks packets, so gvsd applies
                          -A PREROUTING/INPUT rules of -d ADDR[/LEN], -p
                          tcp|udp, --dport N[:M], -m multiport --dports,
                          -j MARK --set-mark N itself; the last matching
                          rule wins, as in iptables. Other rules in those
                          chains are refused (FILE:LINE); SIGHUP re-reads it
      --fwmark-rules6 FILE
                          the same for IPv6 ("ip6tables-save -t mangle")
      --socket PATH       admin API socket, mode 0600 (default $GVS_SOCKET,
                          else /run/gvs/gvsd.sock)
      --bpf-pin DIR       xdp engine: pin the connection table and the XDP
                          links in DIR, on a BPF filesystem (for example
                          /sys/fs/bpf/gvs/NAME), and take them over at
                          start: established connections survive a restart
                          (default: nothing pinned)
  -I, --dont-release-ipvs with --bpf-pin: on SIGTERM leave the program
                          attached and the pins in place, forwarding with the
                          last table and no health checks until the next
                          gvsd takes over (default: drain for --grace,
                          detach and remove the pins)
      --grace DURATION    on SIGTERM, how long established connections may
                          finish (default 10s)
      --tcp-conns N       proxy engine: most open TCP connections of all
                          services together (two descriptors each); a new one
                          over the bound is reset and counted (default a
                          quarter of the descriptor limit, at most 262144)
      --tcp-conns-per-service N
                          proxy engine: most open TCP connections of one
                          service (default half of --tcp-conns)
      --udp-flows N       proxy engine: most UDP flows of all services
                          together; the least recently used is evicted for a
                          new one (default a quarter of the descriptor
                          limit, at most 65536)
      --udp-flows-per-service N
                          proxy engine: most UDP flows of one service
                          (default half of --udp-flows)
  -D, --log-detail        log debug detail
  -n, --dont-fork         accepted for keepalived compatibility: gvsd never
  -l, --log-console       forks and always logs to stderr
  -h, --help              print this help and exit
  -v, --version           print the version and exit

Signals: SIGHUP reloads the file of -f and the --fwmark-rules files.
SIGTERM or SIGINT stops: the admin socket stays up, read-only, while
connections drain for --grace; a second signal stops at once.

Documentation: README.md (section gvsd) and, for keepalived.conf keywords,
internal/config/doc.go, in the source at github.com/gvs-lb/gvs.
`

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// settings are gvsd's command line.
type settings struct {
	opts                           daemon.Options
	interfaces                     listFlag
	test, debug, help, showVersion bool
}

// flagSet binds every option, keepalived's long and short names alike, to
// s. The help text is usage, not the flags' own.
func (s *settings) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("gvsd", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // run prints errors itself, the usage only on --help
	fs.StringVar(&s.opts.Engine, "engine", "proxy", "")
	fs.StringVar(&s.opts.Socket, "socket", wire.DefaultSocket(), "")
	fs.StringVar(&s.opts.ConfigFile, "f", "", "")
	fs.StringVar(&s.opts.ConfigFile, "use-file", "", "")
	fs.BoolVar(&s.test, "t", false, "")
	fs.BoolVar(&s.test, "config-test", false, "")
	fs.Var(&s.interfaces, "interface", "")
	fs.StringVar(&s.opts.XDPMode, "xdp-mode", "", "")
	fs.IntVar(&s.opts.XDPMaxServices, "xdp-max-services", 0, "")
	fs.IntVar(&s.opts.XDPMaxDests, "xdp-max-real-servers", 0, "")
	fs.Func("xdp-max-conns", "", func(v string) error { return parseMaxConns(v, &s.opts.XDPMaxConns) })
	fs.DurationVar(&s.opts.Grace, "grace", 10*time.Second, "")
	fs.StringVar(&s.opts.BPFPin, "bpf-pin", "", "")
	fs.StringVar(&s.opts.FWMarkRules, "fwmark-rules", "", "")
	fs.StringVar(&s.opts.FWMarkRules6, "fwmark-rules6", "", "")
	fs.BoolVar(&s.opts.DontReleaseIPVS, "I", false, "")
	fs.BoolVar(&s.opts.DontReleaseIPVS, "dont-release-ipvs", false, "")
	fs.IntVar(&s.opts.TCPConns, "tcp-conns", 0, "")
	fs.IntVar(&s.opts.TCPConnsPerService, "tcp-conns-per-service", 0, "")
	fs.IntVar(&s.opts.UDPFlows, "udp-flows", 0, "")
	fs.IntVar(&s.opts.UDPFlowsPerService, "udp-flows-per-service", 0, "")
	fs.BoolVar(&s.debug, "D", false, "")
	fs.BoolVar(&s.debug, "log-detail", false, "")
	for _, compat := range []string{"n", "dont-fork", "l", "log-console"} {
		fs.Bool(compat, false, "")
	}
	fs.BoolVar(&s.help, "h", false, "")
	fs.BoolVar(&s.help, "help", false, "")
	fs.BoolVar(&s.showVersion, "v", false, "")
	fs.BoolVar(&s.showVersion, "version", false, "")
	return fs
}

// parseMaxConns reads --xdp-max-conns into n, refusing what is not a
// size the kernel makes.
func parseMaxConns(v string, n *uint32) error {
	x, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return fmt.Errorf("want a number of connection entries from 1 to %d", xdp.MaxConnsLimit)
	}
	if err := xdp.CheckMaxConns(x); err != nil {
		return err
	}
	*n = uint32(x)
	return nil
}

// run is gvsd with its arguments; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	var s settings
	fs := s.flagSet()
	err := fs.Parse(args)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if err != nil {
		fmt.Fprintf(stderr, "gvsd: %v\nTry 'gvsd --help' for more information.\n", err)
		return 2
	}
	switch {
	case s.help:
		io.WriteString(stdout, usage)
		return 0
	case s.showVersion:
		writeVersion(stdout)
		return 0
	case s.test:
		return daemon.ConfigTest(s.opts.ConfigFile, s.opts, stderr)
	}
	s.opts.Interfaces = s.interfaces

	level := slog.LevelInfo
	if s.debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if err := daemon.Run(context.Background(), s.opts, log); err != nil {
		fmt.Fprintln(stderr, "gvsd:", err)
		return 1
	}
	return 0
}

// writeVersion prints gvsd -v: the version, what gvsd is compatible with,
// and the toolchain.
func writeVersion(w io.Writer) {
	fmt.Fprintf(w, "gvsd %s\n", versionString())
	fmt.Fprintf(w, "IPVS %s table and ipvsadm 1.31 commands (gvsadm), keepalived 2.2 configuration\n", director.Version)
	fmt.Fprintf(w, "built with %s for %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// versionString is version, or without one what the build recorded: the
// module version, and the commit (with "+dirty" for uncommitted changes).
func versionString() string {
	v := version
	bi, ok := debug.ReadBuildInfo()
	if v == "" && ok {
		v = bi.Main.Version
		var rev, dirty string
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && len(s.Value) >= 12:
				rev = s.Value[:12]
			case s.Key == "vcs.modified" && s.Value == "true":
				dirty = "+dirty"
			}
		}
		if rev != "" && !strings.Contains(v, rev) {
			v += " " + rev + dirty
		}
	}
	if v == "" {
		v = "(devel)"
	}
	return v
}
