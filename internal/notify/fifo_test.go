package notify

import (
	"bufio"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The want lines below were read from the notify FIFOs of the real
// keepalived 2.2.7 (Debian 12's package): VRRP from a vrrp_sync_group G1
// of VI_1 (priority 100) and VI_2 (priority 90) in a network namespace,
// the checkers' from TCP_CHECKs on kernel IPVS in the ipvs-vm
// (/work/shared/tools/ipvs-vm), with real servers stopped and started.
func TestLinesAsKeepalivedWritesThem(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"instance master", InstanceLine("VI_1", "MASTER", 100), `INSTANCE "VI_1" MASTER 100` + "\n"},
		{"instance backup", InstanceLine("VI_2", "BACKUP", 90), `INSTANCE "VI_2" BACKUP 90` + "\n"},
		{"instance fault", InstanceLine("VI_3", "FAULT", 255), `INSTANCE "VI_3" FAULT 255` + "\n"},
		{"instance stop", InstanceLine("VI_1", "STOP", 100), `INSTANCE "VI_1" STOP 100` + "\n"},
		{"group master", GroupLine("G1", "MASTER"), `GROUP "G1" MASTER 0` + "\n"},
		{"group stop", GroupLine("G1", "STOP"), `GROUP "G1" STOP 0` + "\n"},
		{"virtual server up", VirtualServerLine(VirtualServerName("", 0, ap("198.18.5.100:80"), unix.IPPROTO_TCP), true),
			"VS [198.18.5.100]:tcp:80 UP\n"},
		{"fwmark virtual server down", VirtualServerLine(VirtualServerName("", 7, netip.AddrPort{}, 0), false),
			"VS FWM 7 DOWN\n"},
		{"group virtual server up", VirtualServerLine(VirtualServerName("VSG", 0, ap("198.18.5.101:80"), unix.IPPROTO_UDP), true),
			"VS [VSG]:0 UP\n"},
		{"real server down", RealServerLine(ServerName(ap("198.18.6.12:80"), unix.IPPROTO_TCP),
			VirtualServerName("", 0, ap("198.18.5.100:80"), unix.IPPROTO_TCP), false),
			"RS [198.18.6.12]:tcp:80 [198.18.5.100]:tcp:80 DOWN\n"},
		{"real server of a fwmark service", RealServerLine(ServerName(ap("198.18.6.11:0"), 0),
			VirtualServerName("", 7, netip.AddrPort{}, 0), true),
			"RS [198.18.6.11]:none:0 FWM 7 UP\n"},
		{"real server of a group", RealServerLine(ServerName(ap("198.18.6.11:80"), unix.IPPROTO_UDP),
			VirtualServerName("VSG", 0, ap("198.18.5.101:80"), unix.IPPROTO_UDP), false),
			"RS [198.18.6.11]:udp:80 [VSG]:0 DOWN\n"},
		// not observed: keepalived's inet_sockaddrtos2 prints IPv6
		// addresses bare, inside the same brackets
		{"ipv6 real server", ServerName(ap("[2001:db8::11]:443"), unix.IPPROTO_SCTP), "[2001:db8::11]:sctp:443"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestFIFOCreatedWrittenAndRemoved(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify.fifo")
	created, err := CreateFIFO(path, uint32(os.Geteuid()), uint32(os.Getegid()))
	if err != nil || !created {
		t.Fatalf("CreateFIFO: created %v, %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	// keepalived's mkfifo(0644) under its default umask 0177
	if st.Mode()&os.ModeNamedPipe == 0 || st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want a FIFO with -rw-------", st.Mode())
	}
	f, err := OpenFIFO(path, created, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A reader that opens it after gvsd sees the lines written since.
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f.WriteLine(InstanceLine("VI_1", "MASTER", 100))
	f.WriteLine(GroupLine("G1", "MASTER"))
	buf := make([]byte, 128)
	n, err := r.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(buf[:n]), "INSTANCE \"VI_1\" MASTER 100\nGROUP \"G1\" MASTER 0\n"; got != want {
		t.Errorf("read %q, want %q", got, want)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("after Close the FIFO gvsd created is still there (%v)", err)
	}
	f.WriteLine("after close\n") // dropped, no panic
}

// A FIFO nobody reads fills; further lines are dropped and counted, and
// the writer never blocks. A FIFO that existed is left in place.
func TestFIFONoReaderDropsWithoutBlocking(t *testing.T) {
	path := filepath.Join(t.TempDir(), "existing.fifo")
	if err := unix.Mkfifo(path, 0o640); err != nil {
		t.Fatal(err)
	}
	created, err := CreateFIFO(path, 0, 0)
	if err != nil || created {
		t.Fatalf("CreateFIFO on an existing FIFO: created %v, %v", created, err)
	}
	f, err := OpenFIFO(path, created, nil)
	if err != nil {
		t.Fatal(err)
	}
	line := RealServerLine("[198.18.6.12]:tcp:80", "[198.18.5.100]:tcp:80", false)
	const lines = 100000 // 5 MB, far beyond a pipe's buffer
	for range lines {
		f.WriteLine(line)
	}
	if f.Dropped() == 0 {
		t.Fatalf("no line dropped after %d lines with no reader", lines)
	}
	// What was kept is whole lines.
	r, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f.Close()
	sc := bufio.NewScanner(r)
	kept := 0
	for sc.Scan() {
		if sc.Text()+"\n" != line {
			t.Fatalf("line %d is %q", kept, sc.Text())
		}
		kept++
	}
	if uint64(kept)+f.Dropped() != lines {
		t.Errorf("kept %d + dropped %d != %d written", kept, f.Dropped(), lines)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("Close removed a FIFO it did not create: %v", err)
	}
}

func TestOpenFIFORefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mkfifo(filepath.Join(dir, "real.fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.fifo")
	if err := os.Symlink("real.fifo", link); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenFIFO(link, false, nil); err == nil || !strings.Contains(err.Error(), link) {
		t.Errorf("OpenFIFO on a symbolic link: %v, want an error naming it", err)
	}
}
