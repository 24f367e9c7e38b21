package ipvsadm

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/gvs-lb/gvs/internal/realserver"
)

// Where `gvsadm realserver` keeps what setup changed, and pins the TUN
// decapsulation program so it outlives the command.
const (
	realServerStateDir = "/run/gvs/realserver"
	bpffs              = "/sys/fs/bpf"
)

// RunRealServer is `gvsadm realserver setup|teardown`: it prepares this
// host as a DR or TUN real server (the seeds' manual steps) or undoes that.
func RunRealServer(args []string, stdout, stderr io.Writer) int {
	usage := func(msg string) int {
		if msg != "" {
			fmt.Fprintln(stderr, "gvsadm realserver:", msg)
		}
		fmt.Fprint(stderr, `usage:
  gvsadm realserver setup --vip VIP --mode dr|tun [--interface IF] [--gue-port PORT]... [--generic]
  gvsadm realserver teardown [--vip VIP]
setup puts VIP on lo (/32 or /128), sets arp_ignore=1 and arp_announce=2, and
for tun attaches a decapsulation program (IPIP and GUE) to IF; teardown undoes
it all (every VIP set up when --vip is not given).
`)
		return ExitUsage
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
		m := realserver.Mode(strings.ToLower(*mode))
		if m != realserver.DR && m != realserver.TUN {
			return usage(fmt.Sprintf("bad --mode %q (want dr or tun)", *mode))
		}
		if m == realserver.TUN && *iface == "" {
			return usage("tun needs --interface: where tunnelled packets arrive")
		}
		opts := realserver.Options{Interface: *iface, GUEPorts: guePorts, Generic: *generic, StateFile: stateFile(addr)}
		if m == realserver.TUN {
			if err := mountBPFFS(); err != nil {
				fmt.Fprintln(stderr, "gvsadm realserver:", err)
				return ExitFailure
			}
			opts.PinPath = filepath.Join(bpffs, "gvs", "decap-"+addr.String())
		}
		if err := os.MkdirAll(realServerStateDir, 0o755); err != nil {
			fmt.Fprintln(stderr, "gvsadm realserver:", err)
			return ExitFailure
		}
		if _, err := realserver.Setup(addr, m, opts); err != nil {
			fmt.Fprintln(stderr, "gvsadm realserver setup:", err)
			return ExitFailure
		}
		fmt.Fprintf(stdout, "real server ready for %s (%s): VIP on lo, arp_ignore=1, arp_announce=2\n", addr, m)
		return ExitOK
	case "teardown":
		files := []string{stateFile(addr)}
		if !addr.IsValid() {
			files, _ = filepath.Glob(filepath.Join(realServerStateDir, "*@"+netnsID()+".json"))
		}
		code := ExitOK
		for _, f := range files {
			if err := realserver.TeardownFile(f); err != nil {
				fmt.Fprintln(stderr, "gvsadm realserver teardown:", err)
				code = ExitFailure
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

// mountBPFFS mounts the BPF file system where pinned programs live, unless
// it is there already.
func mountBPFFS() error {
	var st syscall.Statfs_t
	const bpfMagic = 0xcafe4a11
	if err := syscall.Statfs(bpffs, &st); err == nil && st.Type == bpfMagic {
		return nil
	}
	if err := syscall.Mount("bpf", bpffs, "bpf", 0, ""); err != nil && !errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("mounting the BPF file system on %s (needed to keep the decap program attached): %w", bpffs, err)
	}
	return nil
}
