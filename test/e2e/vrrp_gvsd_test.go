package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// The VRRP tests here run whole directors: gvsd processes (and the real
// keepalived) with a vrrp_instance each, in two namespaces joined by a veth
// pair, and watch the VIP move.

const (
	vrrpVIP = "198.18.3.100"
	// Master_Down_Interval of a backup at priority 90 with advert_int 1:
	// 3 x 1 s + (256 - 90) / 256 s.
	backupMDI = 3*time.Second + 649*time.Millisecond
)

// vrrpInstanceConf is one director's keepalived.conf: VI_1 with the VIP.
func vrrpInstanceConf(version, state string, priority int, extra string) string {
	auth := "\tauthentication {\n\t\tauth_type PASS\n\t\tauth_pass gvs-1234\n\t}\n"
	if version == "3" {
		auth = "" // VRRPv3 has no authentication
	}
	return fmt.Sprintf(`global_defs {
	router_id DIR_%s
	vrrp_version %s
}
vrrp_instance VI_1 {
	state %s
	interface eth0
	virtual_router_id 61
	priority %d
	advert_int 1
%s%s	virtual_ipaddress {
		%s/24 dev eth0
	}
}
`, state, version, state, priority, auth, extra, vrrpVIP)
}

type vrrpPair struct {
	dirs [2]*netnstest.NS
	conf string // directory of the configuration files
	both atomic.Int32
}

func newVRRPPair(t *testing.T) *vrrpPair {
	t.Helper()
	p := &vrrpPair{conf: t.TempDir()}
	p.dirs[0], p.dirs[1] = netnstest.New(t, "vd1"), netnstest.New(t, "vd2")
	netnstest.Veth(t, p.dirs[0], "eth0", p.dirs[1], "eth0")
	p.dirs[0].Addr("eth0", "198.18.3.1/24")
	p.dirs[1].Addr("eth0", "198.18.3.2/24")
	return p
}

// watchNeverBoth polls both directors until the test ends and counts the
// polls that saw the VIP on both.
func (p *vrrpPair) watchNeverBoth(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			if nsHasAddr(p.dirs[0], vrrpVIP) && nsHasAddr(p.dirs[1], vrrpVIP) {
				p.both.Add(1)
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		// Two polls in a row can straddle the handover of a priority 0
		// advert; more means both held the VIP.
		if n := p.both.Load(); n > 2 {
			t.Errorf("the VIP was on both directors in %d polls", n)
		}
	})
}

func (p *vrrpPair) write(t *testing.T, i int, text string) string {
	t.Helper()
	path := filepath.Join(p.conf, fmt.Sprintf("dir%d.conf", i+1))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func (p *vrrpPair) startGVSD(t *testing.T, i int, conf string) *netnstest.Proc {
	t.Helper()
	sock := filepath.Join(p.conf, fmt.Sprintf("dir%d-%d.sock", i+1, time.Now().UnixNano()))
	return p.dirs[i].Start(filepath.Join(bin, "gvsd"), "--engine", "proxy", "--grace", "1s", "-f", p.write(t, i, conf), "--socket", sock)
}

func (p *vrrpPair) startKeepalived(t *testing.T, i int, conf string) *netnstest.Proc {
	t.Helper()
	path := p.write(t, i, conf)
	return p.dirs[i].Start("keepalived", "-n", "-l", "-D", "-G", "-P", "-f", path,
		"-p", path+".pid", "-r", path+".vrrp.pid", "-c", path+".checkers.pid")
}

// waitVIP waits until the VIP is on director i only, and returns how long
// that took.
func (p *vrrpPair) waitVIP(t *testing.T, i int, limit time.Duration, what string) time.Duration {
	t.Helper()
	start := time.Now()
	waitFor(t, limit, what, func() bool { return nsHasAddr(p.dirs[i], vrrpVIP) && !nsHasAddr(p.dirs[1-i], vrrpVIP) })
	return time.Since(start)
}

// failoverAndBack starts director 0 as master and 1 as backup with start,
// checks that the backup hears the master (it stays backup past its
// Master_Down_Interval), that a SIGTERM on the master (priority 0) moves
// the VIP within about a second, and that the restarted master takes it
// back. It returns the three processes.
func (p *vrrpPair) failoverAndBack(t *testing.T, start func(i int) *netnstest.Proc) (master, backup, restarted *netnstest.Proc) {
	t.Helper()
	master = start(0)
	backup = start(1)
	p.waitVIP(t, 0, 10*time.Second, "the VIP on the master")
	p.watchNeverBoth(t)
	time.Sleep(backupMDI + time.Second)
	if nsHasAddr(p.dirs[1], vrrpVIP) {
		t.Fatalf("the backup took the VIP while the master runs; backup says:\n%s", tail(backup.Output()))
	}

	if err := syscall.Kill(-master.Cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	took := p.waitVIP(t, 1, 2*time.Second, "the VIP on the backup after SIGTERM on the master")
	<-master.Done()
	t.Logf("VIP on the backup %v after SIGTERM", took.Round(10*time.Millisecond))
	if took > time.Second+200*time.Millisecond {
		t.Errorf("the VIP took %v to move after the master's priority 0 advert, want about 1 s at most", took)
	}

	restarted = start(0)
	took = p.waitVIP(t, 0, 3*backupMDI, "the restarted master to preempt")
	t.Logf("restarted master preempted after %v", took.Round(10*time.Millisecond))
	return master, backup, restarted
}

// TestGvsdVRRPCrashAndPreempt: a master gvsd that dies without a word
// (SIGKILL) is replaced within Master_Down_Interval + 1 s; restarted, it
// takes the VIP back, or with nopreempt leaves it where it is.
func TestGvsdVRRPCrashAndPreempt(t *testing.T) {
	netnstest.Require(t)
	tests := []struct {
		name      string
		state     string
		extra     string
		preempted bool
	}{
		{"preempt", "MASTER", "", true},
		{"nopreempt", "BACKUP", "\tnopreempt\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newVRRPPair(t)
			master := p.startGVSD(t, 0, vrrpInstanceConf("2", tt.state, 100, tt.extra))
			p.startGVSD(t, 1, vrrpInstanceConf("2", "BACKUP", 90, tt.extra))
			p.waitVIP(t, 0, 10*time.Second, "the VIP on director 1")
			p.watchNeverBoth(t)

			master.Kill()
			<-master.Done()
			// A crash leaves the VIP on the dead director's interface, as a
			// crashed keepalived does; take it away as the dead host would.
			p.dirs[0].Run("ip", "addr", "del", vrrpVIP+"/24", "dev", "eth0")
			took := p.waitVIP(t, 1, backupMDI+time.Second, "the VIP on director 2 after the master crashed")
			t.Logf("VIP on director 2 %v after the crash", took.Round(10*time.Millisecond))

			p.startGVSD(t, 0, vrrpInstanceConf("2", tt.state, 100, tt.extra))
			if tt.preempted {
				took := p.waitVIP(t, 0, 3*backupMDI, "the restarted master to preempt")
				t.Logf("restarted master preempted after %v", took.Round(10*time.Millisecond))
				return
			}
			time.Sleep(backupMDI + 2*time.Second)
			if !nsHasAddr(p.dirs[1], vrrpVIP) || nsHasAddr(p.dirs[0], vrrpVIP) {
				t.Error("with nopreempt the restarted director took the VIP back")
			}
		})
	}
}

// TestGvsdVRRPWithKeepalived runs gvsd against the real keepalived both
// ways round, VRRPv2 with PASS authentication and VRRPv3: each sees the
// other's adverts, the VIP is never on both, and a SIGTERM on the master
// (priority 0) moves the VIP within a second, then preemption moves it
// back.
func TestGvsdVRRPWithKeepalived(t *testing.T) {
	netnstest.Require(t, "keepalived")
	for _, version := range []string{"2", "3"} {
		for _, gvsdMaster := range []bool{true, false} {
			name := fmt.Sprintf("v%s keepalived master", version)
			if gvsdMaster {
				name = fmt.Sprintf("v%s gvsd master", version)
			}
			t.Run(name, func(t *testing.T) {
				p := newVRRPPair(t)
				start := func(i int) *netnstest.Proc {
					state, prio := "MASTER", 100
					if i == 1 {
						state, prio = "BACKUP", 90
					}
					conf := vrrpInstanceConf(version, state, prio, "")
					if (i == 0) == gvsdMaster {
						return p.startGVSD(t, i, conf)
					}
					return p.startKeepalived(t, i, conf)
				}
				_, backup, _ := p.failoverAndBack(t, start)
				for _, line := range strings.Split(backup.Output(), "\n") {
					if strings.Contains(line, "invalid") || strings.Contains(line, "mismatch") {
						t.Errorf("the backup complains about the master's adverts: %s", line)
					}
				}
			})
		}
	}
}

func tail(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// TestVRRPv3AuthenticationAsKeepalived: a version 3 instance with an
// authentication block. keepalived 2.2 warns that v3 has no
// authentication, runs the instance without it, and its config test
// exits 5; gvsd does the same on the same files.
func TestVRRPv3AuthenticationAsKeepalived(t *testing.T) {
	netnstest.Require(t, "keepalived")
	p := newVRRPPair(t)
	v2 := vrrpInstanceConf("2", "MASTER", 100, "")
	v3 := strings.Replace(v2, "vrrp_version 2", "vrrp_version 3", 1)
	tests := []struct {
		name string
		conf string
		code int // keepalived -t's, and gvsd -t's
	}{
		{"v2 with PASS", v2, 0},
		{"v3 with PASS", v3, 5},
		{"v3 with AH", strings.Replace(v3, "auth_type PASS", "auth_type AH", 1), 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := p.write(t, 0, tt.conf)
			kaOut, err := p.dirs[0].Cmd("keepalived", "-t", "-l", "-n", "-f", path).CombinedOutput()
			ka := exitCode(t, err)
			gvsdOut, err := p.dirs[0].Cmd(filepath.Join(bin, "gvsd"), "-t", "-f", path).CombinedOutput()
			gvsd := exitCode(t, err)
			if ka != tt.code || gvsd != ka {
				t.Errorf("keepalived -t exits %d, gvsd -t %d, want both %d\nkeepalived:\n%s\ngvsd:\n%s", ka, gvsd, tt.code, kaOut, gvsdOut)
			}
			if tt.code != 0 && !strings.Contains(string(gvsdOut), "version 3 does not support authentication") {
				t.Errorf("gvsd -t does not say why:\n%s", gvsdOut)
			}
		})
	}

	// Both run the v3 instance, without authentication: gvsd takes the
	// VIP as master.
	proc := p.startGVSD(t, 0, v3)
	p.waitVIP(t, 0, 10*time.Second, "gvsd (v3 with an authentication block) holding the VIP")
	if out := proc.Output(); !strings.Contains(out, "does not support authentication") {
		t.Errorf("gvsd does not warn that the block is ignored:\n%s", out)
	}
}
