package ipvsadm

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// fixedClient answers with fixed data: the counters and connections the
// real IPVS had when the golden files were recorded, which no table
// without traffic can produce. It refuses every change.
type fixedClient struct {
	svcs  []ipvs.ServiceStatus
	conns []ipvs.Conn
}

func (f fixedClient) Exec(context.Context, []ipvs.Command) error {
	return &wire.CommandError{Msg: "fixed data: no changes"}
}
func (f fixedClient) Services(context.Context) ([]ipvs.ServiceStatus, error) { return f.svcs, nil }
func (f fixedClient) Conns(context.Context) ([]ipvs.Conn, error)             { return f.conns, nil }
func (f fixedClient) Service(_ context.Context, key ipvs.ServiceKey) (ipvs.ServiceStatus, bool, error) {
	for _, s := range f.svcs {
		if s.ServiceKey == key {
			return s, true, nil
		}
	}
	return ipvs.ServiceStatus{}, false, nil
}
func (f fixedClient) Timeouts(context.Context) (ipvs.Timeouts, error) {
	return ipvs.DefaultTimeouts, nil
}
func (f fixedClient) Info(context.Context) (wire.Info, error) {
	return wire.Info{Version: "1.2.1", ConnTabSize: 4096}, nil
}
func (f fixedClient) Socket() string { return "/nonexistent/gvsd.sock" }

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// connScenario is the VM's state in record-main.sh's connection part: a
// persistent NAT service on 198.18.0.50:80 after 3 HTTP requests, a UDP
// service on :53 after 2 datagrams. Dests are in the kernel's order.
func connScenario(expire41866 int64) fixedClient {
	vip := netip.MustParseAddr("198.18.0.50")
	rs1, rs2 := netip.MustParseAddr("198.19.0.61"), netip.MustParseAddr("198.19.0.62")
	web := ipvs.ServiceStatus{
		Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 80},
			Scheduler: "rr", Flags: ipvs.FlagPersistent | ipvs.FlagHashed, Timeout: 300, Netmask: 32},
		Stats: ipvs.Stats{Conns: 3, InPkts: 18, OutPkts: 18, InBytes: 1185, OutBytes: 1593},
		Rates: ipvs.Rates{InPPS: 1, OutPPS: 1, InBPS: 93, OutBPS: 124},
		Dests: []ipvs.DestStatus{
			{Dest: ipvs.Dest{Addr: rs2, Port: 80, Method: ipvs.Masq, Weight: 1}, InactConns: 3, PersistConns: 1,
				Stats: ipvs.Stats{Conns: 3, InPkts: 18, OutPkts: 18, InBytes: 1185, OutBytes: 1593},
				Rates: ipvs.Rates{InPPS: 1, OutPPS: 1, InBPS: 93, OutBPS: 124}},
			{Dest: ipvs.Dest{Addr: rs1, Port: 80, Method: ipvs.Masq, Weight: 1}},
		},
	}
	dns := ipvs.ServiceStatus{
		Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.UDP, Addr: vip, Port: 53},
			Scheduler: "rr", Flags: ipvs.FlagHashed, Netmask: 32},
		Stats: ipvs.Stats{Conns: 2, InPkts: 2, OutPkts: 2, InBytes: 66, OutBytes: 66},
		Rates: ipvs.Rates{InBPS: 6, OutBPS: 6},
	}
	for _, rs := range []netip.Addr{rs2, rs1} {
		dns.Dests = append(dns.Dests, ipvs.DestStatus{Dest: ipvs.Dest{Addr: rs, Port: 53, Method: ipvs.Masq, Weight: 1},
			InactConns: 1, Stats: ipvs.Stats{Conns: 1, InPkts: 1, OutPkts: 1, InBytes: 33, OutBytes: 33},
			Rates: ipvs.Rates{InBPS: 3, OutBPS: 3}})
	}
	conn := func(p ipvs.Protocol, c, v, d, state string, ms int64) ipvs.Conn {
		return ipvs.Conn{Proto: p, Client: ap(c), Virtual: ap(v), Dest: ap(d), State: state, Expires: ms}
	}
	return fixedClient{
		// the UDP service was added second; the kernel lists it first only
		// in hash order, so give the table's order and let -L sort
		svcs: []ipvs.ServiceStatus{dns, web},
		conns: []ipvs.Conn{
			conn(ipvs.TCP, "198.18.0.2:41878", "198.18.0.50:80", "198.19.0.62:80", "TIME_WAIT", 115_400),
			conn(ipvs.UDP, "198.18.0.2:52731", "198.18.0.50:53", "198.19.0.62:53", "UDP", 195_900),
			conn(ipvs.TCP, "198.18.0.2:41856", "198.18.0.50:80", "198.19.0.62:80", "TIME_WAIT", 114_999),
			conn(ipvs.TCP, "198.18.0.2:41866", "198.18.0.50:80", "198.19.0.62:80", "TIME_WAIT", expire41866),
			conn(ipvs.TCP, "198.18.0.2:0", "198.18.0.50:80", "198.19.0.62:80", "ASSURED", 295_000),
			conn(ipvs.UDP, "198.18.0.2:42997", "198.18.0.50:53", "198.19.0.61:53", "UDP", 196_100),
		},
	}
}

// TestPrinterGolden prints fixed ipvs values with the recorded command
// lines and requires the real ipvsadm's recorded bytes.
func TestPrinterGolden(t *testing.T) {
	tests := []struct {
		name   string
		golden string
		client Client
	}{
		{"connections numeric", "conns/conn_Lnc.txt", connScenario(115_000)},
		{"connections with names", "conns/conn_Lc.txt", connScenario(114_000)},
		{"persistent-conn counts", "conns/conn_Ln_persistent.txt", connScenario(0)},
		{"active and inactive", "conns/conn_Ln.txt", connScenario(0)},
		{"stats", "conns/conn_Ln_stats.txt", connScenario(0)},
		{"rate", "conns/conn_Ln_rate.txt", connScenario(0)},
		{"service and -c conflict", "conns/conn_Lnc_svc.txt", connScenario(0)},
		{"nosort in the kernel's order", "main/rich_Ln_nosort.txt", richKernelOrder(t)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := readRecorded(t, filepath.Join("testdata", "ipvsadm-1.31", tt.golden))
			var out, errb bytes.Buffer
			rc := Run(context.Background(), want.args, strings.NewReader(""), &out, &errb, tt.client)
			if rc != want.rc || out.String() != want.stdout || errb.String() != want.stderr {
				t.Errorf("%s\ngot exit %d, want %d\n--- got\n%s--- want\n%s--- got stderr\n%s--- want stderr\n%s",
					strings.Join(want.args, " "), rc, want.rc, out.String(), want.stdout, errb.String(), want.stderr)
			}
		})
	}
}

// richKernelOrder builds the "rich" table of record-main.sh in a real
// table and returns its services in the order the VM's kernel listed them
// with --nosort (hash order), real servers in the table's (the kernel's)
// order.
func richKernelOrder(t *testing.T) fixedClient {
	c := startServer(t)
	seq := readSeq(t, "main")
	for _, line := range seq {
		if line == "case rich_Ln" {
			break
		}
		if rest, ok := strings.CutPrefix(line, "run "); ok {
			var out, errb bytes.Buffer
			if rc := Run(context.Background(), append([]string{"ipvsadm"}, strings.Fields(rest)...), nil, &out, &errb, c); rc != 0 {
				t.Fatalf("setup %q: %s", rest, errb.String())
			}
		}
	}
	svcs, err := c.Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	order := []string{"TCP  [2001:db8::10]:80", "TCP  198.18.0.10:8443", "UDP  198.18.0.10:5060",
		"TCP  198.18.0.10:443", "TCP  127.0.0.1:8000", "TCP  198.18.0.10:80", "UDP  198.18.0.10:53",
		"TCP  198.18.0.10:25", "TCP  198.18.0.10:22", "TCP  198.18.0.10:0", "FWM  1", "FWM  2 IPv6"}
	slices.SortStableFunc(svcs, func(a, b ipvs.ServiceStatus) int {
		return slices.Index(order, serviceName(&a, FmtNumeric)) - slices.Index(order, serviceName(&b, FmtNumeric))
	})
	if len(svcs) != len(order) || serviceName(&svcs[0], FmtNumeric) != order[0] {
		t.Fatalf("rich table has %d services, want %d", len(svcs), len(order))
	}
	return fixedClient{svcs: svcs}
}

func readSeq(t *testing.T, suite string) []string {
	t.Helper()
	r := readFile(t, filepath.Join("testdata", "ipvsadm-1.31", suite+".seq"))
	return strings.Split(strings.TrimSpace(r), "\n")
}

// TestLargeNumbers checks the K/M/G/T scaling of --stats and --rate
// against ipvsadm's print_largenum (which the VM's small counters cannot
// reach): below 10^8 exact in 9 columns, then thousands (K) below 10^9,
// millions (M) below 10^11, billions (G) below 10^14, else T; --exact
// widens the column instead.
func TestLargeNumbers(t *testing.T) {
	tests := []struct {
		name  string
		n     uint64
		exact bool
		want  string
	}{
		{"zero", 0, false, "        0"},
		{"largest exact", 99_999_999, false, " 99999999"},
		{"thousands", 100_000_000, false, "  100000K"},
		{"thousands truncated", 999_999_999, false, "  999999K"},
		{"millions", 1_000_000_000, false, "    1000M"},
		{"largest millions", 99_999_999_999, false, "   99999M"},
		{"billions", 100_000_000_000, false, "     100G"},
		{"largest billions", 99_999_999_999_999, false, "   99999G"},
		{"trillions", 100_000_000_000_000, false, "     100T"},
		{"max", 1<<64 - 1, false, "18446744T"},
		{"exact small", 36, true, "       36"},
		{"exact 8 digits", 12_345_678, true, " 12345678"},
		{"exact 9 digits", 123_456_789, true, " 123456789"},
		{"exact max", 1<<64 - 1, true, " 18446744073709551615"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Format(0)
			if tt.exact {
				f = FmtExact
			}
			if got := largeNum(tt.n, f); got != tt.want {
				t.Errorf("largeNum(%d) = %q, want %q", tt.n, got, tt.want)
			}
		})
	}

	// a whole listing: service counters scale, real server rates print
	// CPS and packet rates unscaled, as ipvsadm does
	svc := connScenario(0).svcs[1]
	svc.Stats = ipvs.Stats{Conns: 123_456_789, InPkts: 5_000_000_000, OutPkts: 42, InBytes: 700_000_000_000_000, OutBytes: 99_999_999}
	svc.Rates = ipvs.Rates{CPS: 150_000_000, InPPS: 2_000_000_000, OutBPS: 3_000_000_000_000}
	svc.Dests = svc.Dests[:1]
	svc.Dests[0].Rates = ipvs.Rates{CPS: 150_000_000, InPPS: 2_000_000_000, InBPS: 1_000_000_000}
	var b bytes.Buffer
	WriteService(&b, svc, FmtNumeric|FmtStats)
	WriteService(&b, svc, FmtNumeric|FmtRate)
	want := "" +
		"Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n" +
		"  -> RemoteAddress:Port\n" +
		"TCP  198.18.0.50:80                123456K    5000M       42     700T 99999999\n" +
		"  -> 198.19.0.62:80                      3       18       18     1185     1593\n" +
		"Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS\n" +
		"  -> RemoteAddress:Port\n" +
		"TCP  198.18.0.50:80                150000K    2000M        0        0    3000G\n" +
		"  -> 198.19.0.62:80               150000000 2000000000        0    1000M        0\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
