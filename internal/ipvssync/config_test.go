package ipvssync

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
)

// The maxlen values are what ipvsadm -L --daemon printed for these
// daemons on a real kernel (testdata/ipvsadm-1.31-daemon.txt).
func TestDefaultsAsKernel(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		mtu  int
		want Config
	}{
		{name: "master defaults", cfg: Config{State: Master}, mtu: 1500,
			want: Config{State: Master, Interface: "eth0", MaxLen: 1472, Group: DefaultGroup, Port: 8848, TTL: 1}},
		{name: "master on a jumbo interface stays at 1500", cfg: Config{State: Master, Interface: "eth1", SyncID: 7}, mtu: 9000,
			want: Config{State: Master, Interface: "eth1", SyncID: 7, MaxLen: 1472, Group: DefaultGroup, Port: 8848, TTL: 1}},
		{name: "backup on a jumbo interface", cfg: Config{State: Backup, Interface: "eth1"}, mtu: 9000,
			want: Config{State: Backup, Interface: "eth1", MaxLen: 8972, Group: DefaultGroup, Port: 8848, TTL: 1}},
		{name: "backup with everything given", cfg: Config{State: Backup, Interface: "eth1", SyncID: 3, MaxLen: 1400,
			Group: netip.MustParseAddr("224.0.0.99"), Port: 9000, TTL: 3}, mtu: 9000,
			want: Config{State: Backup, Interface: "eth1", SyncID: 3, MaxLen: 1400, Group: netip.MustParseAddr("224.0.0.99"), Port: 9000, TTL: 3}},
		{name: "IPv6 group", cfg: Config{State: Master, Interface: "eth0", Group: netip.MustParseAddr("ff02::1:2")}, mtu: 1500,
			want: Config{State: Master, Interface: "eth0", MaxLen: 1452, Group: netip.MustParseAddr("ff02::1:2"), Port: 8848, TTL: 1}},
		{name: "backup maxlen raised to 1024", cfg: Config{State: Backup, Interface: "lo", SyncID: 5, MaxLen: 100}, mtu: 65536,
			want: Config{State: Backup, Interface: "lo", SyncID: 5, MaxLen: 1024, Group: DefaultGroup, Port: 8848, TTL: 1}},
		{name: "backup on lo", cfg: Config{State: Backup, Interface: "lo"}, mtu: 65536,
			want: Config{State: Backup, Interface: "lo", MaxLen: 65507, Group: DefaultGroup, Port: 8848, TTL: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.cfg.withDefaults(tt.mtu); got != tt.want {
				t.Fatalf("withDefaults = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestNeedsLink: the start failures a link or address change can cure
// are told from the others, wrapped as Start returns them.
func TestNeedsLink(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"no such interface", ErrNoDevice, true},
		{"kernel master without an IPv4 address", fmt.Errorf("start: %w", syscall.EADDRNOTAVAIL), true},
		{"bind on a missing address", &net.OpError{Op: "listen", Err: os.NewSyscallError("bind", syscall.EADDRNOTAVAIL)}, true},
		{"interface down", fmt.Errorf("join: %w", syscall.ENETDOWN), true},
		{"daemon already running", ErrRunning, false},
		{"engine cannot sync", errors.New("the proxy engine cannot synchronize connections"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := NeedsLink(tc.err); got != tc.want {
				t.Errorf("NeedsLink(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}
