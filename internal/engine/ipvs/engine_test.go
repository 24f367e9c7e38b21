package ipvs

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/engine/enginetest"
	table "github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/ipvsadm"
	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// These tests need a kernel with ip_vs. The project's VM tests
// (test/ipvsvm) boot one and run them there with GVS_IPVS_VM=1; elsewhere
// they skip, even under CI=true, since the VM test is what CI runs them in.
func requireIPVS(t *testing.T) {
	t.Helper()
	netnstest.Require(t, "sysctl")
	g, err := dialGenl()
	if err == nil {
		g.Close()
		return
	}
	if os.Getenv("GVS_IPVS_VM") != "" {
		t.Fatalf("the VM's kernel has no IPVS: %v", err)
	}
	t.Skipf("needs a kernel with ip_vs (this one has none: %v); run them in the VM: go test ./test/ipvsvm", err)
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newEngine starts an engine on the kernel IPVS table of namespace ns
// (each namespace has its own), closed when the test ends.
func newEngine(t *testing.T, ns *netnstest.NS, opts Options) *Engine {
	t.Helper()
	var e *Engine
	if err := ns.Do(func() (err error) { e, err = New(quietLog(), opts); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(t.Context()) })
	return e
}

const confVIP = enginetest.DRVIP

// TestConformance runs the engine contract's scenarios on
// enginetest.DRLab, the kernel's IPVS in the director's namespace sending
// to the two real servers by direct routing.
func TestConformance(t *testing.T) {
	requireIPVS(t)
	enginetest.Run(t, func(t *testing.T) *enginetest.Setup {
		s, _ := drLab(t)
		// The kernel drops the packets of a deleted real server's
		// connections (ip_vs_in: the destination is no longer available).
		s.RemovedServerDropsConnections = true
		return s
	})
}

// drLab is enginetest.DRLab with an engine in the director's namespace,
// which it returns too.
func drLab(t *testing.T) (*enginetest.Setup, *netnstest.NS) {
	s, dir := enginetest.DRLab(t)
	s.Engine = newEngine(t, dir, Options{})
	return s, dir
}

func tcp(addr string, port uint16) table.ServiceKey {
	return table.ServiceKey{Proto: table.TCP, Addr: netip.MustParseAddr(addr), Port: port}
}

func service(k table.ServiceKey, sched string, flags uint32) *table.Service {
	s := &table.Service{ServiceKey: k, Scheduler: sched, Flags: flags | table.FlagHashed, Netmask: 32}
	if k.IPv6() {
		s.Netmask = 128
	}
	return s
}

func dest(addr string, port uint16, m table.Method, w int32) table.Dest {
	return table.Dest{Addr: netip.MustParseAddr(addr), Port: port, Method: m, Weight: w}
}

// kernelTable is a table with every forwarding method and option, every
// scheduler of the kernel, IPv4 and IPv6, and a firewall-mark service.
func kernelTable() []table.Command {
	var b []table.Command
	add := func(s *table.Service, ds ...table.Dest) {
		b = append(b, table.Command{Op: table.OpAddService, Service: s})
		for _, d := range ds {
			b = append(b, table.Command{Op: table.OpAddDest, Service: s, Dest: &d})
		}
	}
	thresholds := dest("198.18.0.12", 80, table.Route, 2)
	thresholds.UThreshold, thresholds.LThreshold = 100, 50
	add(service(tcp(confVIP, 80), "rr", 0), dest("198.18.0.11", 80, table.Masq, 1), thresholds)

	persistent := service(table.ServiceKey{Proto: table.UDP, Addr: netip.MustParseAddr(confVIP), Port: 53}, "wlc", table.FlagPersistent)
	persistent.Timeout, persistent.Netmask = 300, 24
	add(persistent, dest("198.18.0.11", 53, table.Tunnel, 1))

	// SIP persistence (ip_vs_pe_sip) with the /0 mask: one template for
	// every client, per Call-ID.
	sip := service(table.ServiceKey{Proto: table.UDP, Addr: netip.MustParseAddr(confVIP), Port: 5060}, "rr", table.FlagPersistent|table.FlagOnePacket)
	sip.Timeout, sip.Netmask, sip.PE = 120, 0, "sip"
	add(sip, dest("198.18.0.11", 5060, table.Route, 1))

	gue := dest("198.18.0.11", 443, table.Tunnel, 1)
	gue.TunType, gue.TunPort, gue.TunFlags = table.TunGUE, 6080, 0x1
	gre := dest("198.18.0.12", 443, table.Tunnel, 1)
	gre.TunType, gre.TunFlags = table.TunGRE, 0x2
	add(service(tcp(confVIP, 443), "sh", table.SchedFlag1|table.SchedFlag2), gue, gre)

	add(service(table.ServiceKey{FWMark: 7, Addr: netip.IPv4Unspecified()}, "lc", 0), dest("198.18.0.13", 0, table.Route, 1))
	add(service(tcp("2001:db8::200", 80), "mh", table.SchedFlag1),
		dest("2001:db8::11", 80, table.Masq, 1), dest("2001:db8::12", 8080, table.Route, 3))
	add(service(table.ServiceKey{Proto: table.UDP, Addr: netip.MustParseAddr(confVIP), Port: 5353}, "rr", table.FlagOnePacket),
		dest("198.18.0.11", 5353, table.Route, 1))
	for i, sched := range []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh"} {
		add(service(tcp(confVIP, uint16(1000+i)), sched, 0), dest("198.18.0.11", 80, table.Masq, 1))
	}
	b = append(b, table.Command{Op: table.OpSetTimeout, Timeouts: &table.Timeouts{TCP: 1000, TCPFin: 60, UDP: 200}})
	return b
}

// TestKernelTable programs every method and option into the kernel, and
// compares the real ipvsadm's listings of the kernel's table with gvsadm's
// formatting of the engine's status, byte for byte.
func TestKernelTable(t *testing.T) {
	requireIPVS(t)
	dir := netnstest.New(t, "dir")
	e := newEngine(t, dir, Options{})
	batch := kernelTable()
	if err := e.Apply(batch); err != nil {
		t.Fatal(err)
	}
	st := e.Status()
	var want int
	for _, c := range batch {
		if c.Op == table.OpAddService {
			want++
		}
	}
	if len(st) != want {
		t.Fatalf("Status lists %d services, want %d", len(st), want)
	}
	// Each real server reads back as it was given.
	for _, c := range batch {
		if c.Op != table.OpAddDest {
			continue
		}
		i := slices.IndexFunc(st, func(s table.ServiceStatus) bool { return s.ServiceKey == c.Service.ServiceKey })
		j := slices.IndexFunc(st[i].Dests, func(d table.DestStatus) bool { return d.AddrPort() == c.Dest.AddrPort() })
		if j < 0 || st[i].Dests[j].Dest != *c.Dest {
			t.Errorf("%s: real server %+v reads back as %+v", c.Service.ServiceKey, *c.Dest, st[i].Dests)
		}
	}
	// One service's status is its entry in the whole table's.
	for _, s := range st {
		if one, ok := e.StatusOf(s.ServiceKey); !ok || !reflect.DeepEqual(one, s) {
			t.Errorf("StatusOf(%s) = %+v, %v; Status has %+v", s.ServiceKey, one, ok, s)
		}
	}
	for _, args := range [][]string{{"-Ln"}, {"-Sn"}, {"-Ln", "--thresholds"}, {"-Ln", "--tun-info"},
		{"-Ln", "--persistent-conn"}, {"-Ln", "--stats"}, {"-Ln", "--rate"}} {
		compareIpvsadm(t, dir, e, args...)
	}
	if got, want := dir.Run("ipvsadm", "-L", "--timeout"), "Timeout (tcp tcpfin udp): 1000 60 200\n"; got != want {
		t.Errorf("ipvsadm -L --timeout: %q, want %q", got, want)
	}
}

// compareIpvsadm runs the real ipvsadm with args in ns and formats the
// engine's status as gvsadm does for the same arguments.
func compareIpvsadm(t *testing.T, ns *netnstest.NS, e *Engine, args ...string) {
	t.Helper()
	var f ipvsadm.Format = ipvsadm.FmtNumeric
	for _, a := range args {
		switch a {
		case "-Sn":
			f |= ipvsadm.FmtRule
		case "--stats":
			f |= ipvsadm.FmtStats
		case "--rate":
			f |= ipvsadm.FmtRate
		case "--thresholds":
			f |= ipvsadm.FmtThresholds
		case "--tun-info":
			f |= ipvsadm.FmtTunInfo
		case "--persistent-conn":
			f |= ipvsadm.FmtPersistentConn
		}
	}
	real := ns.Run("ipvsadm", args...)
	var ours bytes.Buffer
	if err := ipvsadm.WriteTable(&ours, "1.2.1", 4096, e.Status(), f); err != nil {
		t.Fatal(err)
	}
	if ours.String() != real {
		t.Errorf("ipvsadm %s differs from gvsadm's:\n--- ipvsadm\n%s--- gvsadm\n%s", strings.Join(args, " "), real, ours.String())
	}
}

// TestMissingScheduler: a scheduler whose module the kernel lacks is
// refused with the module's name. ip_vs_twos came in Linux 6.2; on a
// later kernel inside the VM (a throw-away guest) modprobe is told to
// fail for it, so that it cannot be loaded there either.
func TestMissingScheduler(t *testing.T) {
	requireIPVS(t)
	hidden := hideModule(t, "ip_vs_twos")
	e := newEngine(t, netnstest.New(t, "dir"), Options{})
	err := e.Apply([]table.Command{{Op: table.OpAddService, Service: service(tcp(confVIP, 80), "twos", 0)}})
	switch {
	case err == nil && hidden:
		t.Fatal("the twos scheduler was accepted although modprobe cannot load its module")
	case err == nil:
		t.Skip("this kernel has the twos scheduler; the VM's test hides its module: go test ./test/ipvsvm")
	}
	if !strings.Contains(err.Error(), "ip_vs_twos") {
		t.Fatalf("error %q does not name the missing module ip_vs_twos", err)
	}
	if len(e.Status()) != 0 {
		t.Fatal("a refused service is listed")
	}
	pe := service(table.ServiceKey{Proto: table.UDP, Addr: netip.MustParseAddr(confVIP), Port: 5060}, "rr", table.FlagPersistent)
	pe.Timeout, pe.PE = 60, "nosuch"
	err = e.Apply([]table.Command{{Op: table.OpAddService, Service: pe}})
	if err == nil || !strings.Contains(err.Error(), "ip_vs_pe_nosuch") {
		t.Fatalf("a missing persistence engine: error %v, want one naming ip_vs_pe_nosuch", err)
	}
}

// hideModule makes modprobe fail for a module the kernel has not loaded
// (an install command of /bin/false) until the test ends, and reports
// whether it did. Only inside the IPVS VM: the host's modprobe
// configuration is not the test's to change.
func hideModule(t *testing.T, module string) bool {
	t.Helper()
	if os.Getenv("GVS_IPVS_VM") == "" {
		return false
	}
	if _, err := os.Stat("/sys/module/" + module); err == nil {
		t.Skipf("%s is already loaded in this VM, so it cannot be hidden", module)
	}
	conf := "/etc/modprobe.d/gvs-hide-" + module + ".conf"
	if err := os.WriteFile(conf, []byte("install "+module+" /bin/false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(conf) })
	return true
}

// TestEditPersistenceEngine: an edit sets and clears a service's
// persistence engine in the kernel, as ipvsadm -E --pe does.
func TestEditPersistenceEngine(t *testing.T) {
	requireIPVS(t)
	dir := netnstest.New(t, "dir")
	e := newEngine(t, dir, Options{})
	svc := service(table.ServiceKey{Proto: table.UDP, Addr: netip.MustParseAddr(confVIP), Port: 5060}, "rr", table.FlagPersistent)
	svc.Timeout, svc.Netmask = 60, 32
	if err := e.Apply([]table.Command{{Op: table.OpAddService, Service: svc}}); err != nil {
		t.Fatal(err)
	}
	withPE := *svc
	withPE.PE = "sip"
	for _, step := range []struct {
		svc  *table.Service
		want string
	}{
		{&withPE, "-A -u 198.18.0.200:5060 -s rr -p 60 --pe sip\n"},
		{svc, "-A -u 198.18.0.200:5060 -s rr -p 60\n"},
	} {
		if err := e.Apply([]table.Command{{Op: table.OpEditService, Service: step.svc}}); err != nil {
			t.Fatal(err)
		}
		if got := dir.Run("ipvsadm", "-Sn"); got != step.want {
			t.Errorf("after the edit, ipvsadm -Sn prints %q, want %q", got, step.want)
		}
	}
}

// TestOwnership: services added with ipvsadm are left alone, unless the
// engine flushes the table (lvs_flush, lvs_flush_onstop).
func TestOwnership(t *testing.T) {
	requireIPVS(t)
	dir := netnstest.New(t, "dir")
	dir.Run("ipvsadm", "-A", "-t", "198.18.0.201:80", "-s", "rr")
	e := newEngine(t, dir, Options{})
	ours := service(tcp(confVIP, 80), "rr", 0)
	if err := e.Apply([]table.Command{{Op: table.OpAddService, Service: ours}}); err != nil {
		t.Fatal(err)
	}
	if st := e.Status(); len(st) != 1 || st[0].ServiceKey != ours.ServiceKey {
		t.Fatalf("the engine lists %v, want only its own service", st)
	}
	// Adding a service someone else added is refused, saying so.
	err := e.Apply([]table.Command{{Op: table.OpAddService, Service: service(tcp("198.18.0.201", 80), "rr", 0)}})
	if err == nil || !strings.Contains(err.Error(), "outside gvsd") {
		t.Fatalf("adding a service ipvsadm added: %v, want an error saying it was added outside gvsd", err)
	}
	e.Close(t.Context())
	if got := dir.Run("ipvsadm", "-Sn"); got != "-A -t 198.18.0.201:80 -s rr\n" {
		t.Fatalf("after Close the kernel has\n%swant only the service ipvsadm added", got)
	}

	e = newEngine(t, dir, Options{Flush: true})
	if got := dir.Run("ipvsadm", "-Sn"); got != "" {
		t.Fatalf("after starting with Flush the kernel has\n%s", got)
	}
	dir.Run("ipvsadm", "-A", "-t", "198.18.0.201:80", "-s", "rr")
	e.opts.FlushOnStop = true
	e.Close(t.Context())
	if got := dir.Run("ipvsadm", "-Sn"); got != "" {
		t.Fatalf("after Close with FlushOnStop the kernel has\n%s", got)
	}
}

// TestConns: a connection through the kernel is listed as ipvsadm -Lnc
// lists it.
func TestConns(t *testing.T) {
	requireIPVS(t)
	s, dir := drLab(t)
	k := s.Services[0]
	batch := []table.Command{{Op: table.OpAddService, Service: service(k, "rr", 0)}}
	for _, d := range s.Dests {
		batch = append(batch, table.Command{Op: table.OpAddDest, Service: service(k, "rr", 0), Dest: &d})
	}
	if err := s.Engine.Apply(batch); err != nil {
		t.Fatal(err)
	}
	c, err := s.Dial(k.AddrPort())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	e := s.Engine.(*Engine)
	var ours bytes.Buffer
	var real string
	// The expiry counts down in seconds: read until both reads fall in
	// the same second.
	for range 5 {
		var conns []table.Conn
		dir.Do(func() error { conns = e.Conns(); return nil })
		ours.Reset()
		ipvsadm.WriteConns(&ours, conns, ipvsadm.FmtNumeric)
		real = dir.Run("ipvsadm", "-Lnc")
		if ours.String() == real {
			break
		}
	}
	if ours.String() != real {
		t.Fatalf("ipvsadm -Lnc differs from gvsadm's:\n--- ipvsadm\n%s--- gvsadm\n%s", real, ours.String())
	}
	if !strings.Contains(real, "ESTABLISHED") {
		t.Fatalf("ipvsadm -Lnc lists no established connection:\n%s", real)
	}
}

func TestCheckDest(t *testing.T) {
	e := &Engine{}
	svc := service(tcp(confVIP, 80), "rr", 0)
	fnat := dest("198.18.0.11", 80, table.FullNAT, 1)
	if err := e.CheckDest(svc, &fnat); err == nil || !strings.Contains(err.Error(), "--engine xdp") {
		t.Errorf("FullNAT: %v, want an error naming the xdp engine", err)
	}
	pp := *svc
	pp.ProxyProtocol = 2
	nat := dest("198.18.0.11", 80, table.Masq, 1)
	if err := e.CheckDest(&pp, &nat); err == nil || !strings.Contains(err.Error(), "--engine proxy") {
		t.Errorf("PROXY protocol: %v, want an error naming the proxy engine", err)
	}
	for _, m := range []table.Method{table.Masq, table.Route, table.Tunnel} {
		d := dest("198.18.0.11", 80, m, 1)
		if err := e.CheckDest(svc, &d); err != nil {
			t.Errorf("%s: %v", m, err)
		}
	}
}

func TestParseConns(t *testing.T) {
	in := `Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData
TCP C6120002 C360 C612000A 0050 C613000B 0050 TIME_WAIT       116
UDP 2001:0db8:0000:0000:0000:0000:0000:0002 D431 2001:0db8:0000:0000:0000:0000:0000:000a 0035 2001:0db8:0000:0000:0000:0000:0000:000b 0035 UDP             299
`
	got, err := parseConns(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []table.Conn{
		{Proto: table.TCP, Client: netip.MustParseAddrPort("198.18.0.2:50016"), Virtual: netip.MustParseAddrPort("198.18.0.10:80"),
			Dest: netip.MustParseAddrPort("198.19.0.11:80"), State: "TIME_WAIT", Expires: 116000},
		{Proto: table.UDP, Client: netip.MustParseAddrPort("[2001:db8::2]:54321"), Virtual: netip.MustParseAddrPort("[2001:db8::a]:53"),
			Dest: netip.MustParseAddrPort("[2001:db8::b]:53"), State: "UDP", Expires: 299000},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("parsed\n%+v\nwant\n%+v", got, want)
	}
}

// TestNetmaskAttr: the persistence mask reaches the kernel as ipvsadm
// sends it: an IPv4 mask's bytes (/0 from -M 0.0.0.0 included), an IPv6
// prefix length as a host-order u32.
func TestNetmaskAttr(t *testing.T) {
	le := func(n byte) []byte { b := []byte{0, 0, 0, 0}; binary.NativeEndian.PutUint32(b, uint32(n)); return b }
	for _, tt := range []struct {
		addr    string
		netmask int
		want    []byte
	}{
		{"198.18.0.10", 32, []byte{255, 255, 255, 255}},
		{"198.18.0.10", 24, []byte{255, 255, 255, 0}},
		{"198.18.0.10", 0, []byte{0, 0, 0, 0}},
		{"2001:db8::10", 64, le(64)},
	} {
		s := &table.Service{ServiceKey: table.ServiceKey{Proto: table.TCP, Addr: netip.MustParseAddr(tt.addr), Port: 80},
			Scheduler: "rr", Flags: table.FlagPersistent, Timeout: 300, Netmask: tt.netmask}
		if got := netmaskAttr(s); !bytes.Equal(got, tt.want) {
			t.Errorf("%s/%d: the kernel gets mask % x, want % x", tt.addr, tt.netmask, got, tt.want)
		}
	}
}
