package ipvsadm

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// hostName is the name gvsadm prints for an address when not told -n.
// ipvsadm asks the resolver; gvsadm resolves nothing but the loopback
// addresses, which print as "localhost" as they do on a stock Debian host.
func hostName(a netip.Addr) string {
	if a.IsLoopback() && (a == netip.AddrFrom4([4]byte{127, 0, 0, 1}) || a == netip.IPv6Loopback()) {
		return "localhost"
	}
	return a.String()
}

// addrPortName is ipvsadm's addrport_to_anyname: "a:p" or "[a]:p",
// numeric with -n, else with host and service names.
func addrPortName(a netip.Addr, port uint16, proto ipvs.Protocol, f Format) string {
	a = a.Unmap()
	host, ps := a.String(), strconv.Itoa(int(port))
	if f&FmtNumeric == 0 {
		host = hostName(a)
		if n := portName(port, proto); n != "" {
			ps = n
		}
	}
	if a.Is4() {
		return host + ":" + ps
	}
	return "[" + host + "]:" + ps
}

func is6(a netip.Addr) bool { return a.Is6() && !a.Is4In6() }

// largeNum is ipvsadm's print_largenum: 9 columns, scaled with K, M, G, T
// unless --exact.
func largeNum(i uint64, f Format) string {
	if f&FmtExact != 0 {
		s := strconv.FormatUint(i, 10)
		if len(s) <= 8 {
			return fmt.Sprintf("%9s", s)
		}
		return " " + s
	}
	switch {
	case i < 100_000_000:
		return fmt.Sprintf("%9d", i)
	case i < 1_000_000_000:
		return fmt.Sprintf("%8dK", i/1000)
	case i < 100_000_000_000:
		return fmt.Sprintf("%8dM", i/1_000_000)
	case i < 100_000_000_000_000:
		return fmt.Sprintf("%8dG", i/1_000_000_000)
	}
	return fmt.Sprintf("%8dT", i/1_000_000_000_000)
}

// schedFlags is ipvsadm's print_sched_flags.
func schedFlags(s *ipvs.Service) string {
	var names []string
	switch s.Scheduler {
	case "sh", "mh":
		if s.Flags&ipvs.SchedFlag1 != 0 {
			names = append(names, s.Scheduler+"-fallback")
		}
		if s.Flags&ipvs.SchedFlag2 != 0 {
			names = append(names, s.Scheduler+"-port")
		}
	default:
		for i, b := range []uint32{ipvs.SchedFlag1, ipvs.SchedFlag2, ipvs.SchedFlag3} {
			if s.Flags&b != 0 {
				names = append(names, fmt.Sprintf("flag-%d", i+1))
			}
		}
	}
	return strings.Join(names, ",")
}

const anySchedFlag = ipvs.SchedFlag1 | ipvs.SchedFlag2 | ipvs.SchedFlag3

// netmaskText is a persistent service's netmask as ipvsadm writes it: a
// prefix length for IPv6, a dotted mask for IPv4.
func netmaskText(s *ipvs.Service) string {
	if is6(s.Addr) {
		return strconv.Itoa(s.Netmask)
	}
	bits := s.Netmask
	m := ^uint32(0)
	if bits < 32 {
		m = ^(m >> uint(max(bits, 0)))
	}
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)}).String()
}

func netmaskIsFull(s *ipvs.Service) bool {
	return s.Netmask == ipvs.FullNetmask(is6(s.Addr))
}

// words is an address as libipvs compares it: one 32-bit word for IPv4,
// four for IPv6 (the IPv4 word first, as in the C union).
func words(a netip.Addr) [4]uint32 {
	var w [4]uint32
	if a.Unmap().Is4() {
		b := a.Unmap().As4()
		w[0] = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		return w
	}
	b := a.As16()
	for i := range w {
		w[i] = uint32(b[4*i])<<24 | uint32(b[4*i+1])<<16 | uint32(b[4*i+2])<<8 | uint32(b[4*i+3])
	}
	return w
}

// cmpAddr compares as libipvs: word by word, the difference taken as a
// signed 32-bit number (so addresses more than 2^31 apart compare the
// other way round, exactly as in ipvsadm).
func cmpAddr(a, b netip.Addr) int {
	wa, wb := words(a), words(b)
	n := 1
	if is6(a) {
		n = 4
	}
	for i := 0; i < n; i++ {
		if r := int32(wa[i] - wb[i]); r != 0 {
			return int(r)
		}
	}
	return 0
}

// cmpServices is libipvs's ipvs_cmp_services.
func cmpServices(a, b *ipvs.ServiceStatus) int {
	if r := int32(a.FWMark - b.FWMark); r != 0 {
		return int(r)
	}
	if r := family(a.Addr) - family(b.Addr); r != 0 {
		return r
	}
	if r := int(a.Proto) - int(b.Proto); r != 0 {
		return r
	}
	if r := cmpAddr(a.Addr, b.Addr); r != 0 {
		return r
	}
	return int(a.Port) - int(b.Port)
}

// family is AF_INET or AF_INET6, the order libipvs sorts families in.
func family(a netip.Addr) int {
	if is6(a) {
		return 10
	}
	return 2
}

// cmpDests is libipvs's ipvs_cmp_dests.
func cmpDests(a, b *ipvs.DestStatus) int {
	if r := cmpAddr(a.Addr, b.Addr); r != 0 {
		return r
	}
	return int(a.Port) - int(b.Port)
}

// Sorted returns the services sorted as ipvsadm lists them, each with its
// real servers sorted, unless f has FmtNoSort. svcs is not modified.
func Sorted(svcs []ipvs.ServiceStatus, f Format) []ipvs.ServiceStatus {
	out := make([]ipvs.ServiceStatus, len(svcs))
	for i, s := range svcs {
		s.Dests = slices.Clone(s.Dests)
		if f&FmtNoSort == 0 {
			slices.SortStableFunc(s.Dests, func(a, b ipvs.DestStatus) int { return cmpDests(&a, &b) })
		}
		out[i] = s
	}
	if f&FmtNoSort == 0 {
		slices.SortStableFunc(out, func(a, b ipvs.ServiceStatus) int { return cmpServices(&a, &b) })
	}
	return out
}

// WriteTitle writes the first line of a full listing.
func WriteTitle(w io.Writer, version string, size int) {
	fmt.Fprintf(w, "IP Virtual Server version %s (size=%d)\n", version, size)
}

// WriteHeader writes the column headings (ipvsadm's print_title).
func WriteHeader(w io.Writer, f Format) {
	const local, remote = "Prot LocalAddress:Port", "  -> RemoteAddress:Port\n"
	switch {
	case f&FmtStats != 0:
		fmt.Fprintf(w, "%-33s %8s %8s %8s %8s %8s\n"+remote, local, "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
	case f&FmtRate != 0:
		fmt.Fprintf(w, "%-33s %8s %8s %8s %8s %8s\n"+remote, local, "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS")
	case f&FmtThresholds != 0:
		fmt.Fprintf(w, "%-33s %-10s %-10s %-10s %-10s\n"+remote, local, "Uthreshold", "Lthreshold", "ActiveConn", "InActConn")
	case f&FmtPersistentConn != 0:
		fmt.Fprintf(w, "%-33s %-9s %-11s %-10s %-10s\n"+remote, local, "Weight", "PersistConn", "ActiveConn", "InActConn")
	case f&FmtTunInfo != 0:
		io.WriteString(w, "Prot LocalAddress:Port Scheduler Flags\n"+
			"  -> RemoteAddress:Port           Forward TunnelInfo    Weight ActiveConn InActConn\n")
	case f&FmtRule == 0:
		io.WriteString(w, "Prot LocalAddress:Port Scheduler Flags\n"+
			"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n")
	}
}

// WriteTable writes what ipvsadm -L (or -S, with FmtRule) prints for the
// whole table: the title, the headings and every service.
func WriteTable(w io.Writer, version string, size int, svcs []ipvs.ServiceStatus, f Format) error {
	bw := bufio.NewWriter(w)
	if f&FmtRule == 0 {
		WriteTitle(bw, version, size)
	}
	WriteHeader(bw, f)
	for _, s := range Sorted(svcs, f) {
		writeService(bw, &s, f)
	}
	return bw.Flush()
}

// WriteService writes what ipvsadm -L -t/-u/-f prints for one service:
// the headings and the service, without the title.
func WriteService(w io.Writer, svc ipvs.ServiceStatus, f Format) error {
	bw := bufio.NewWriter(w)
	WriteHeader(bw, f)
	s := Sorted([]ipvs.ServiceStatus{svc}, f)[0]
	writeService(bw, &s, f)
	return bw.Flush()
}

// serviceName is the service column ("TCP  1.2.3.4:80", "FWM  1") or, with
// FmtRule, the option naming it ("-t 1.2.3.4:80", "-f 1 -6").
func serviceName(s *ipvs.ServiceStatus, f Format) string {
	if s.IsFWMark() {
		// ipvsadm prints the mark with %d
		mark := int32(s.FWMark)
		switch {
		case f&FmtRule != 0 && is6(s.Addr):
			return fmt.Sprintf("-f %d -6", mark)
		case f&FmtRule != 0:
			return fmt.Sprintf("-f %d", mark)
		case is6(s.Addr):
			return fmt.Sprintf("FWM  %d IPv6", mark)
		}
		return fmt.Sprintf("FWM  %d", mark)
	}
	v := addrPortName(s.Addr, s.Port, s.Proto, f)
	if f&FmtRule != 0 {
		opt := "--xxx-service"
		switch s.Proto {
		case ipvs.TCP:
			opt = "-t"
		case ipvs.UDP:
			opt = "-u"
		case ipvs.SCTP:
			opt = "--sctp-service"
		}
		return opt + " " + v
	}
	proto := "?"
	if s.Proto == ipvs.TCP || s.Proto == ipvs.UDP || s.Proto == ipvs.SCTP {
		proto = s.Proto.String()
	}
	name := fmt.Sprintf("%-4s %s", proto, v)
	if !is6(s.Addr) {
		name = truncate(name, 33)
	}
	return name
}

func writeService(w *bufio.Writer, s *ipvs.ServiceStatus, f Format) {
	name := serviceName(s, f)
	switch {
	case f&FmtRule != 0:
		fmt.Fprintf(w, "-A %s -s %s", name, s.Scheduler)
		if s.Persistent() {
			fmt.Fprintf(w, " -p %d", s.Timeout)
			if !netmaskIsFull(&s.Service) {
				w.WriteString(" -M " + netmaskText(&s.Service))
			}
		}
		if s.PE != "" {
			fmt.Fprintf(w, " --pe %s", s.PE)
		}
		if s.Flags&ipvs.FlagOnePacket != 0 {
			w.WriteString(" -o")
		}
		if s.Flags&anySchedFlag != 0 {
			w.WriteString(" -b " + schedFlags(&s.Service))
		}
		// GVS extensions
		if s.ProxyProtocol != 0 {
			fmt.Fprintf(w, " --proxy-protocol %d", s.ProxyProtocol)
		}
		if len(s.LocalAddrs) > 0 {
			as := make([]string, len(s.LocalAddrs))
			for i, a := range s.LocalAddrs {
				as[i] = a.String()
			}
			w.WriteString(" --laddr " + strings.Join(as, ","))
		}
	case f&FmtStats != 0:
		fmt.Fprintf(w, "%-33s", name)
		st := s.Stats
		for _, v := range []uint64{st.Conns, st.InPkts, st.OutPkts, st.InBytes, st.OutBytes} {
			w.WriteString(largeNum(v, f))
		}
	case f&FmtRate != 0:
		fmt.Fprintf(w, "%-33s", name)
		r := s.Rates
		for _, v := range []uint64{r.CPS, r.InPPS, r.OutPPS, r.InBPS, r.OutBPS} {
			w.WriteString(largeNum(v, f))
		}
	default:
		fmt.Fprintf(w, "%s %s", name, s.Scheduler)
		if s.Flags&anySchedFlag != 0 {
			w.WriteString(" (" + schedFlags(&s.Service) + ")")
		}
		if s.Persistent() {
			fmt.Fprintf(w, " persistent %d", s.Timeout)
			if !netmaskIsFull(&s.Service) {
				w.WriteString(" mask " + netmaskText(&s.Service))
			}
			if s.PE != "" {
				fmt.Fprintf(w, " pe %s", s.PE)
			}
		}
		if s.Flags&ipvs.FlagOnePacket != 0 {
			w.WriteString(" ops")
		}
	}
	w.WriteString("\n")

	// a firewall-mark service names no protocol, so its ports get no names
	proto := s.Proto
	if s.IsFWMark() {
		proto = 0
	}
	for i := range s.Dests {
		writeDest(w, name, &s.Dests[i], proto, f)
	}
}

// Tunnel checksum names, indexed by Dest.TunFlags.
var (
	tunFlagNames = [...]string{"-c", "+c", "r+c"}
	tunFlagOpts  = [...]string{"--tun-nocsum", "--tun-csum", "--tun-remcsum"}
)

func tunFlagIndex(fl uint16) int {
	if int(fl) < len(tunFlagNames) {
		return int(fl)
	}
	return 0
}

// tunInfo is the TunnelInfo column: "n/a", "ipip", "gue:6080:+c", "gre:-c".
func tunInfo(d *ipvs.DestStatus) string {
	if d.Method != ipvs.Tunnel {
		return "n/a"
	}
	switch d.TunType {
	case ipvs.TunGUE:
		return truncate(fmt.Sprintf("gue:%d:%s", d.TunPort, tunFlagNames[tunFlagIndex(d.TunFlags)]), 15)
	case ipvs.TunGRE:
		return "gre:" + tunFlagNames[tunFlagIndex(d.TunFlags)]
	}
	return "ipip"
}

func writeDest(w *bufio.Writer, svcName string, d *ipvs.DestStatus, proto ipvs.Protocol, f Format) {
	dname := addrPortName(d.Addr, d.Port, proto, f)
	if f&FmtRule == 0 && !is6(d.Addr) {
		dname = truncate(dname, 28)
	}
	switch {
	case f&FmtRule != 0:
		fmt.Fprintf(w, "-a %s -r %s %s -w %d", svcName, dname, d.Method.Flag(), d.Weight)
		if d.Method == ipvs.Tunnel {
			switch d.TunType {
			case ipvs.TunGRE:
				fmt.Fprintf(w, " --tun-type gre %s", tunFlagOpts[tunFlagIndex(d.TunFlags)])
			case ipvs.TunGUE:
				fmt.Fprintf(w, " --tun-type gue --tun-port %d %s", d.TunPort, tunFlagOpts[tunFlagIndex(d.TunFlags)])
			default:
				w.WriteString(" --tun-type ipip")
			}
		}
		w.WriteString("\n")
	case f&FmtStats != 0:
		fmt.Fprintf(w, "  -> %-28s", dname)
		st := d.Stats
		for _, v := range []uint64{st.Conns, st.InPkts, st.OutPkts, st.InBytes, st.OutBytes} {
			w.WriteString(largeNum(v, f))
		}
		w.WriteString("\n")
	case f&FmtRate != 0:
		r := d.Rates
		fmt.Fprintf(w, "  -> %-28s %8d %8d %8d%s%s\n", dname, r.CPS, r.InPPS, r.OutPPS, largeNum(r.InBPS, f), largeNum(r.OutBPS, f))
	case f&FmtThresholds != 0:
		fmt.Fprintf(w, "  -> %-28s %-10d %-10d %-10d %-10d\n", dname, d.UThreshold, d.LThreshold, d.ActiveConns, d.InactConns)
	case f&FmtPersistentConn != 0:
		fmt.Fprintf(w, "  -> %-28s %-9d %-11d %-10d %-10d\n", dname, d.Weight, d.PersistConns, d.ActiveConns, d.InactConns)
	case f&FmtTunInfo != 0:
		fmt.Fprintf(w, "  -> %-28s %-7s %-13s %-6d %-10d %-10d\n", dname, d.Method, tunInfo(d), d.Weight, d.ActiveConns, d.InactConns)
	default:
		fmt.Fprintf(w, "  -> %-28s %-7s %-6d %-10d %-10d\n", dname, d.Method, d.Weight, d.ActiveConns, d.InactConns)
	}
}

// WriteConns writes what ipvsadm -Lc prints: the connection entries in the
// order given.
func WriteConns(w io.Writer, conns []ipvs.Conn, f Format) error {
	bw := bufio.NewWriter(w)
	bw.WriteString("IPVS connection entries\n")
	if f&FmtPersistentConn != 0 {
		fmt.Fprintf(bw, "pro expire %-11s %-18s %-18s %-18s %-16s %s\n", "state", "source", "virtual", "destination", "pe name", "pe_data")
	} else {
		fmt.Fprintf(bw, "pro expire %-11s %-18s %-18s %s\n", "state", "source", "virtual", "destination")
	}
	for _, c := range conns {
		secs := max(c.Expires, 0) / 1000
		proto := "IP"
		if c.Proto == ipvs.TCP || c.Proto == ipvs.UDP || c.Proto == ipvs.SCTP {
			proto = c.Proto.String()
		}
		fmt.Fprintf(bw, "%-3s %-6s %-11s %-18s %-18s %s\n", proto,
			fmt.Sprintf("%02d:%02d", secs/60, secs%60), c.State,
			addrPortName(c.Client.Addr(), c.Client.Port(), c.Proto, f),
			addrPortName(c.Virtual.Addr(), c.Virtual.Port(), c.Proto, f),
			addrPortName(c.Dest.Addr(), c.Dest.Port(), c.Proto, f))
	}
	return bw.Flush()
}

// WriteTimeouts writes what ipvsadm -L --timeout prints.
func WriteTimeouts(w io.Writer, t ipvs.Timeouts) error {
	_, err := fmt.Fprintf(w, "Timeout (tcp tcpfin udp): %d %d %d\n", t.TCP, t.TCPFin, t.UDP)
	return err
}
