package realserver

import (
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// realServerStateDir is where `gvsadm realserver` keeps what setup
// changed, one file per VIP and network namespace.
const realServerStateDir = "/run/gvs/realserver"

// Exit statuses of Command.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

// Command is `gvsadm realserver setup|teardown` (the gvs-realserver
// program, which gvsadm runs): it prepares this host as a DR or TUN real
// server (the seeds' manual steps) or undoes that, and returns the exit
// status.
func Command(args []string, stdout, stderr io.Writer) int {
	usage := func(msg string) int {
		if msg != "" {
			fmt.Fprintln(stderr, "gvsadm realserver:", msg)
		}
		fmt.Fprint(stderr, `usage:
  gvsadm realserver setup --vip VIP --mode dr|tun [--interface IF] [--gue-port PORT]... [--generic]
  gvsadm realserver teardown [--vip VIP]
setup puts VIP on lo (/32 or /128), sets arp_ignore=1 and arp_announce=2, and
for tun attaches a decapsulation program (IPIP, GUE and GRE) to IF (by default the
interface of the default route), where it stays after gvsadm exits; teardown
undoes it all (every VIP set up in this network namespace when --vip is not
given).
`)
		return exitUsage
	}
	if len(args) == 0 {
		return usage("")
	}
	fs := flag.NewFlagSet("realserver "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	vip := fs.String("vip", "", "virtual IP address")
	mode := fs.String("mode", "dr", "dr or tun")
	iface := fs.String("interface", "", "interface tunnelled packets arrive on (tun)")
	generic := fs.Bool("generic", false, "attach the decap program in generic (skb) mode")
	var guePorts []uint16
	fs.Func("gue-port", "UDP port to decapsulate GUE on (tun; repeatable)", func(s string) error {
		p, err := strconv.ParseUint(s, 10, 16)
		if err != nil || p == 0 {
			return fmt.Errorf("bad GUE port %q (want 1-65535)", s)
		}
		guePorts = append(guePorts, uint16(p))
		return nil
	})
	if err := fs.Parse(args[1:]); err != nil {
		return usage(err.Error())
	}
	var addr netip.Addr
	if *vip != "" {
		a, err := netip.ParseAddr(*vip)
		if err != nil {
			return usage(fmt.Sprintf("bad --vip %q: want an IPv4 or IPv6 address", *vip))
		}
		addr = a.Unmap()
	}
	switch args[0] {
	case "setup":
		if !addr.IsValid() {
			return usage("setup needs --vip")
		}
		m := Mode(strings.ToLower(*mode))
		if m != DR && m != TUN {
			return usage(fmt.Sprintf("bad --mode %q (want dr or tun)", *mode))
		}
		if m == TUN && *iface == "" {
			dev, err := DefaultRouteInterface(addr)
			if err != nil {
				return usage(fmt.Sprintf("tun needs --interface, where tunnelled packets arrive: %v", err))
			}
			*iface = dev
			fmt.Fprintf(stdout, "tunnelled packets are taken on %s, the interface of the default route (--interface to choose another)\n", dev)
		}
		// Persist: the decap program stays attached after gvsadm exits.
		opts := Options{Interface: *iface, GUEPorts: guePorts, Generic: *generic, StateFile: stateFile(addr), Persist: true}
		if err := os.MkdirAll(realServerStateDir, 0o755); err != nil {
			fmt.Fprintln(stderr, "gvsadm realserver:", err)
			return exitFailure
		}
		if _, err := Setup(addr, m, opts); err != nil {
			fmt.Fprintln(stderr, "gvsadm realserver setup:", err)
			return exitFailure
		}
		fmt.Fprintf(stdout, "real server ready for %s (%s): VIP on lo, arp_ignore=1, arp_announce=2\n", addr, m)
		return exitOK
	case "teardown":
		files := []string{stateFile(addr)}
		if !addr.IsValid() {
			files, _ = filepath.Glob(filepath.Join(realServerStateDir, "*@"+netnsID()+".json"))
		}
		code := exitOK
		for _, f := range files {
			if err := TeardownFile(f); err != nil {
				fmt.Fprintln(stderr, "gvsadm realserver teardown:", err)
				code = exitFailure
				continue
			}
			vip, _, _ := strings.Cut(filepath.Base(f), "@")
			fmt.Fprintf(stdout, "undone: %s\n", vip)
		}
		if len(files) == 0 {
			fmt.Fprintln(stdout, "nothing to undo")
		}
		return code
	}
	return usage(fmt.Sprintf("unknown action %q", args[0]))
}

// stateFile is where setup records what it changed for vip in this
// network namespace (several namespaces on one host share /run).
func stateFile(vip netip.Addr) string {
	return filepath.Join(realServerStateDir, vip.String()+"@"+netnsID()+".json")
}

// netnsID names the network namespace this process runs in.
func netnsID() string {
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &st); err != nil {
		return "host"
	}
	return strconv.FormatUint(st.Ino, 10)
}
