package ipvsadm

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/api/client"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

var (
	vip  = netip.MustParseAddr("198.18.0.10")
	rip  = netip.MustParseAddr("198.19.0.11")
	vip6 = netip.MustParseAddr("2001:db8::10")
)

func tcp(a netip.Addr, port uint16) ipvs.ServiceKey {
	return ipvs.ServiceKey{Proto: ipvs.TCP, Addr: a, Port: port}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		args string
		want Request
	}{
		{"no arguments lists", "", Request{Cmd: CmdList}},
		{"add with defaults", "-A -t 198.18.0.10:80", Request{Cmd: CmdAdd, HasService: true,
			Service: ipvs.Service{ServiceKey: tcp(vip, 80), Scheduler: "wlc", Netmask: 32}}},
		{"persistent without a value", "-A -t 198.18.0.10:80 -s rr -p", Request{Cmd: CmdAdd, HasService: true,
			Service: ipvs.Service{ServiceKey: tcp(vip, 80), Scheduler: "rr", Flags: ipvs.FlagPersistent, Timeout: 360, Netmask: 32}}},
		{"persistent value, mask, long forms", "--add-service --tcp-service 198.18.0.10:https --scheduler=sh --persistent 600 --netmask 255.255.255.0 -b sh-port,sh-fallback",
			Request{Cmd: CmdAdd, HasService: true, Service: ipvs.Service{ServiceKey: tcp(vip, 443), Scheduler: "sh",
				Flags: ipvs.FlagPersistent | ipvs.SchedFlag1 | ipvs.SchedFlag2, Timeout: 600, Netmask: 24}}},
		{"clustered short options with attached values", "-At198.18.0.10:80 -srr -p30", Request{Cmd: CmdAdd, HasService: true,
			Service: ipvs.Service{ServiceKey: tcp(vip, 80), Scheduler: "rr", Flags: ipvs.FlagPersistent, Timeout: 30, Netmask: 32}}},
		{"the /0 mask is contiguous", "-A -t 198.18.0.10:80 -s rr -p -M 0.0.0.0", Request{Cmd: CmdAdd, HasService: true,
			Service: ipvs.Service{ServiceKey: tcp(vip, 80), Scheduler: "rr", Flags: ipvs.FlagPersistent, Timeout: 360, Netmask: 0}}},
		{"IPv6 with prefix mask", "-E -t [2001:db8::10]:80 -s mh -p -M 64", Request{Cmd: CmdEdit, HasService: true,
			Service: ipvs.Service{ServiceKey: tcp(vip6, 80), Scheduler: "mh", Flags: ipvs.FlagPersistent, Timeout: 360, Netmask: 64}}},
		{"IPv6 firewall mark", "-A -f 7 -6 -s rr", Request{Cmd: CmdAdd, HasService: true,
			Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Addr: netip.IPv6Unspecified(), FWMark: 7}, Scheduler: "rr", Netmask: 128}}},
		{"UDP one-packet with sip", "-A -u 198.18.0.10:sip -s rr -o -p 30 --pe sip", Request{Cmd: CmdAdd, HasService: true,
			Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.UDP, Addr: vip, Port: 5060}, Scheduler: "rr",
				Flags: ipvs.FlagOnePacket | ipvs.FlagPersistent, Timeout: 30, Netmask: 32, PE: "sip"}}},
		{"localhost", "-D -t localhost:8000", Request{Cmd: CmdDel, HasService: true,
			Service: ipvs.Service{ServiceKey: tcp(netip.MustParseAddr("127.0.0.1"), 8000), Netmask: 32}}},
		{"GVS extensions on a service", "-A -t 198.18.0.10:80 --proxy-protocol 2 --laddr 198.18.0.100,198.18.0.101", Request{Cmd: CmdAdd, HasService: true,
			Service: ipvs.Service{ServiceKey: tcp(vip, 80), Scheduler: "wlc", Netmask: 32, ProxyProtocol: 2,
				LocalAddrs: []netip.Addr{netip.MustParseAddr("198.18.0.100"), netip.MustParseAddr("198.18.0.101")}}}},
		{"list connections", "-Lnc", Request{Cmd: CmdList, List: ListConns, Format: FmtNumeric}},
		{"list one service with stats", "-ln --stats --exact -u 198.18.0.10:53", Request{Cmd: CmdList, List: ListService, HasService: true,
			Format: FmtNumeric | FmtStats | FmtExact, Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.UDP, Addr: vip, Port: 53}, Netmask: 32}}},
		{"list timeouts", "-L --timeout", Request{Cmd: CmdList, List: ListTimeout}},
		{"save numeric", "-Sn", Request{Cmd: CmdSave, Format: FmtRule | FmtNumeric}},
		{"help", "-h --whatever", Request{Cmd: CmdHelp}},
		{"version", "--version", Request{Cmd: CmdVersion}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(append([]string{"gvsadm"}, strings.Fields(tt.args)...))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.args, err)
			}
			got.Change = nil
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("Parse(%q)\n got %+v\nwant %+v", tt.args, *got, tt.want)
			}
		})
	}
}

func TestParseChange(t *testing.T) {
	svc := ipvs.Service{ServiceKey: tcp(vip, 80), Netmask: 32}
	tests := []struct {
		name string
		args string
		want ipvs.Command
	}{
		{"direct routing takes the service port", "-a -t 198.18.0.10:80 -r 198.19.0.11:8080 -w 3",
			ipvs.Command{Op: ipvs.OpAddDest, Service: &svc, Dest: &ipvs.Dest{Addr: rip, Port: 80, Method: ipvs.Route, Weight: 3}}},
		{"NAT keeps its port, thresholds", "-a -t 198.18.0.10:80 -r 198.19.0.11:http-alt -m -w 0 -x 100 -y 50",
			ipvs.Command{Op: ipvs.OpAddDest, Service: &svc, Dest: &ipvs.Dest{Addr: rip, Port: 8080, Method: ipvs.Masq, UThreshold: 100, LThreshold: 50}}},
		{"NAT without a port takes the service's", "-e -t 198.18.0.10:80 -r 198.19.0.11 -m",
			ipvs.Command{Op: ipvs.OpEditDest, Service: &svc, Dest: &ipvs.Dest{Addr: rip, Port: 80, Method: ipvs.Masq, Weight: 1}}},
		{"GUE tunnel", "-a -t 198.18.0.10:80 -r 198.19.0.11 -i --tun-type gue --tun-port 6080 --tun-remcsum",
			ipvs.Command{Op: ipvs.OpAddDest, Service: &svc, Dest: &ipvs.Dest{Addr: rip, Port: 80, Method: ipvs.Tunnel, Weight: 1,
				TunType: ipvs.TunGUE, TunPort: 6080, TunFlags: TunFlagRemCsum}}},
		{"FullNAT", "-a -t 198.18.0.10:80 -r 198.19.0.11:8080 --fullnat",
			ipvs.Command{Op: ipvs.OpAddDest, Service: &svc, Dest: &ipvs.Dest{Addr: rip, Port: 8080, Method: ipvs.FullNAT, Weight: 1}}},
		{"delete a real server", "-d -t 198.18.0.10:80 -r 198.19.0.11",
			ipvs.Command{Op: ipvs.OpDelDest, Service: &svc, Dest: &ipvs.Dest{Addr: rip, Port: 80, Method: ipvs.Route, Weight: 1}}},
		{"timeouts", "--set 100 0 300", ipvs.Command{Op: ipvs.OpSetTimeout, Timeouts: &ipvs.Timeouts{TCP: 100, UDP: 300}}},
		{"zero all", "-Z", ipvs.Command{Op: ipvs.OpZero}},
		{"zero one", "-Z -t 198.18.0.10:80", ipvs.Command{Op: ipvs.OpZero, Service: &svc}},
		{"clear", "--clear", ipvs.Command{Op: ipvs.OpClear}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(append([]string{"gvsadm"}, strings.Fields(tt.args)...))
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.args, err)
			}
			if got.Change == nil || !reflect.DeepEqual(*got.Change, tt.want) {
				t.Errorf("Parse(%q).Change\n got %+v\nwant %+v", tt.args, got.Change, tt.want)
			}
		})
	}
}

// TestParseErrors covers refusals with ipvsadm's words and exit statuses;
// the replay test covers many more, recorded from the real ipvsadm.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		args string
		msg  string
		code int
	}{
		{"no command", "-n", "Try `gvsadm -h' or 'gvsadm --help' for more information.", 255},
		{"unknown long option", "-L --frobnicate", "--frobnicate: unknown option", 255},
		{"missing argument", "-A -t", "-t: missing argument", 255},
		{"second command", "-A -L", "invalid option `-L'", 2},
		{"missing real server", "-a -t 198.18.0.10:80 -w 2", "You need to supply the 'real-server' option for the 'add-server' command", 2},
		{"weight out of range", "-a -t 198.18.0.10:80 -r 198.19.0.11 -w 2147483648", "illegal weight specified", 2},
		{"bad port", "-A -t 198.18.0.10:65536", "illegal virtual server address[:port] specified", 2},
		{"unknown port name", "-A -t 198.18.0.10:nosuchport", "illegal virtual server address[:port] specified", 2},
		{"host name", "-A -t www.example.org:80", "illegal virtual server address[:port] specified\n" +
			`gvsadm: host names are not resolved ("www.example.org"): use a numeric address or localhost`, 2},
		{"zero port", "-A -t 198.18.0.10 -s rr", "Zero port specified for non-persistent service", 2},
		{"bad timeout", "-A -t 198.18.0.10:80 -p 0", "invalid timeout value `0' specified", 2},
		{"timeout is the next word", "-A -t 198.18.0.10:80 -p abc", "invalid timeout value `abc' specified", 2},
		{"non-contiguous mask", "-A -t 198.18.0.10:80 -p -M 255.0.255.0",
			"illegal virtual server persistent mask specified\ngvsadm: only contiguous masks such as 255.255.255.0 are supported", 2},
		{"sched flag for another scheduler", "-A -t 198.18.0.10:80 -s rr -b sh-port", "incompatible scheduler flag `sh-port'", 2},
		{"-6 first", "-A -6 -f 1", "-6 used before -f\n", 2},
		{"tunnel option without -i", "-a -t 198.18.0.10:80 -r 198.19.0.11 --tun-type gue --tun-port 1", "Tunnel options conflict with forward method", 2},
		{"gue without port", "-a -t 198.18.0.10:80 -r 198.19.0.11 -i --tun-type gue", "You need to supply the 'tun-port' option for the 'gue' tunnel type", 2},
		{"family", "-a -t 198.18.0.10:80 -r [2001:db8::1]:80 -m", "Different address family is allowed only for tunneling servers", 2},
		{"list conflict", "-L -c --rate", "options conflicts in the list command", 2},
		{"set needs three", "--set 1 2", "--set option requires 3 timeout values", 2},
		{"unexpected argument", "-C now", "unexpected argument now", 2},
		{"fullnat on a service", "-A -t 198.18.0.10:80 --fullnat", "Illegal 'forwarding-method' option with the 'add-service' command", 2},
		{"laddr on a real server", "-a -t 198.18.0.10:80 -r 198.19.0.11 --laddr 198.18.0.100", "Illegal 'laddr' option with the 'add-server' command", 2},
		{"proxy protocol version", "-A -t 198.18.0.10:80 --proxy-protocol 3", "illegal PROXY protocol version `3' specified (want 1 or 2)", 2},
		{"bad local address", "-A -t 198.18.0.10:80 --laddr 198.18.0.100,nope",
			"illegal local address `nope' specified (want --laddr ADDR[,ADDR...] with numeric addresses)", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := Parse(append([]string{"/usr/sbin/gvsadm"}, strings.Fields(tt.args)...))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) = %+v, %v; want an *Error", tt.args, req, err)
			}
			if e.Msg != tt.msg || e.Code != tt.code {
				t.Errorf("Parse(%q) = %q (exit %d), want %q (exit %d)", tt.args, e.Msg, e.Code, tt.msg, tt.code)
			}
		})
	}
}

func TestOptionTables(t *testing.T) {
	for i, row := range cmdOptions {
		if len(row) != numOpts {
			t.Errorf("cmdOptions[%s] has %d columns, want %d", Cmd(i+1), len(row), numOpts)
		}
	}
}

// TestSaveRestoreRoundTrip saves a table with every kind of service and
// real server, restores it into an empty gvsd and saves again: the two
// saves must be equal, numeric (-Sn) and with names (-S).
func TestSaveRestoreRoundTrip(t *testing.T) {
	run := func(t *testing.T, c Client, stdin string, args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if rc := Run(context.Background(), append([]string{"gvsadm"}, args...), strings.NewReader(stdin), &out, &errb, c); rc != 0 {
			t.Fatalf("gvsadm %s: exit %d: %s", strings.Join(args, " "), rc, errb.String())
		}
		return out.String()
	}
	src := startServer(t)
	for _, line := range readSeq(t, "main") {
		if line == "case rich_Ln" {
			break
		}
		if rest, ok := strings.CutPrefix(line, "run "); ok {
			run(t, src, "", strings.Fields(rest)...)
		}
	}
	// GVS extensions and a timeout change survive too
	run(t, src, "", "-A", "-t", "198.18.0.11:443", "-s", "wrr", "--proxy-protocol", "1", "--laddr", "198.18.0.200,2001:db8::200")
	run(t, src, "", "-a", "-t", "198.18.0.11:443", "-r", "198.19.0.21:8443", "--fullnat", "-w", "9")

	for _, save := range []string{"-Sn", "-S"} {
		t.Run(save, func(t *testing.T) {
			saved := run(t, src, "", save)
			if !strings.Contains(saved, "--proxy-protocol 1 --laddr 198.18.0.200,2001:db8::200") || !strings.Contains(saved, "--fullnat -w 9") {
				t.Errorf("%s lost the GVS extensions:\n%s", save, saved)
			}
			dst := startServer(t)
			run(t, dst, "# saved by gvsadm\n\n"+saved, "-R")
			if again := run(t, dst, "", save); again != saved {
				t.Errorf("restored table saves differently\n--- first\n%s--- after -R\n%s", saved, again)
			}
			if a, b := run(t, src, "", "-Ln"), run(t, dst, "", "-Ln"); a != b {
				t.Errorf("restored table lists differently\n--- first\n%s--- after -R\n%s", a, b)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if rc := Run(context.Background(), []string{"/usr/sbin/ipvsadm", "-h"}, nil, &out, &errb, fixedClient{}); rc != 0 || errb.Len() != 0 {
		t.Fatalf("-h: exit %d, stderr %q", rc, errb.String())
	}
	help := out.String()
	if !strings.HasPrefix(help, "ipvsadm v1.31 ") || !strings.Contains(help, "  ipvsadm -A|-E SERVICE") {
		t.Errorf("help does not use the name it was run as:\n%s", help)
	}
	// every option the parser knows is in the help
	for _, o := range options {
		if o.long == "start-daemon" || o.long == "stop-daemon" || strings.HasPrefix(o.long, "mcast") ||
			o.long == "syncid" || o.long == "sync-maxlen" {
			continue // sync daemon options: parsed, refused by gvsd
		}
		if !strings.Contains(help, "--"+o.long) {
			t.Errorf("help lacks --%s", o.long)
		}
	}
}

// TestNotRunning runs gvsadm against a socket nobody listens on.
func TestNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "gvsd.sock")
	for _, args := range [][]string{{"gvsadm", "-Ln"}, {"gvsadm", "-A", "-t", "198.18.0.10:80"}} {
		var out, errb bytes.Buffer
		rc := Run(context.Background(), args, nil, &out, &errb, newAPIClient(sock))
		want := "gvsadm: gvsd is not running: nothing answers on " + sock + "\n" +
			"Start it with `gvsd --engine proxy --socket " + sock + "`, or set GVS_SOCKET to the socket of a running gvsd.\n"
		if rc != ExitUsage || errb.String() != want || out.Len() != 0 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2, %q", args, rc, errb.String(), want)
		}
	}
	if _, err := os.Stat(sock); err == nil {
		t.Errorf("gvsadm created %s", sock)
	}
}

// FuzzParse: any argv either parses into a Request or is refused with an
// *Error carrying one of ipvsadm's exit statuses; nothing panics.
func FuzzParse(f *testing.F) {
	for _, suite := range []string{"main", "parser"} {
		files, _ := filepath.Glob(filepath.Join("testdata", "ipvsadm-1.31", suite, "*.txt"))
		for _, p := range files {
			b, _ := os.ReadFile(p)
			if _, rest, ok := strings.Cut(string(b), "-- args --\n"); ok {
				line, _, _ := strings.Cut(rest, "\n")
				f.Add(strings.Join(strings.Fields(line)[1:], "\x00"))
			}
		}
	}
	f.Add("-A\x00-t\x00[2001:db8::1]:80\x00-p\x00-M\x0064")
	f.Add("-a\x00--sctp-service\x00[::1]:1\x00-r\x00localhost\x00-i\x00--tun-type\x00gre\x00--tun-csum")
	f.Fuzz(func(t *testing.T, s string) {
		argv := append([]string{"gvsadm"}, strings.Split(s, "\x00")...)
		req, err := Parse(argv)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || req != nil || (e.Code != ExitUsage && e.Code != ExitKernel) || e.Msg == "" {
				t.Fatalf("Parse(%q) = %v, %v", argv, req, err)
			}
			return
		}
		if req == nil {
			t.Fatalf("Parse(%q) = nil, nil", argv)
		}
		switch req.Cmd {
		case CmdAdd, CmdEdit, CmdDel, CmdFlush, CmdAddDest, CmdEditDest, CmdDelDest, CmdTimeout, CmdZero:
			if req.Change == nil {
				t.Fatalf("Parse(%q): %s without a change", argv, req.Cmd)
			}
			if req.Change.Service != nil {
				var b bytes.Buffer
				WriteService(&b, ipvs.ServiceStatus{Service: *req.Change.Service}, FmtRule)
			}
		default:
			if req.Change != nil {
				t.Fatalf("Parse(%q): %s with a change", argv, req.Cmd)
			}
		}
	})
}

func newAPIClient(sock string) Client { return client.New(sock) }
