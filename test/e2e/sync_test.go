package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// TestSyncDaemonFailover: two directors run gvsd --engine xdp with the
// same DR service; connections opened through director A keep going to
// the same real servers through director B after the VIP moves, when A
// runs the master sync daemon and B the backup one, and break without
// them (B's program passes packets of connections it does not know to its
// kernel, which resets them). With persistence, the synchronized template
// sends the client's new connections through B to the same real server.
//
//	client 198.18.0.100 ─┐
//	dirA   198.18.0.1  ──┼─ br0 (198.18.0.0/24; the sync messages too)
//	dirB   198.18.0.2  ──┤
//	rs1    198.18.0.11 ──┤   VIP 198.18.0.200 on A's eth0, later B's;
//	rs2    198.18.0.12 ──┘   on the real servers' lo
func TestSyncDaemonFailover(t *testing.T) {
	lab := newXDPLab(t, 2)
	lab.start(t, 0)
	lab.start(t, 1)
	client, dirs, procs := lab.client, lab.dirs, lab.gvsd
	adm, mustAdm, moveVIP := lab.adm, lab.mustAdm, lab.moveVIP
	for i := range dirs {
		mustAdm(i, "-A", "-t", e2eVIP+":80", "-s", "rr")
		mustAdm(i, "-a", "-t", e2eVIP+":80", "-r", "198.18.0.11:80", "-g")
		mustAdm(i, "-a", "-t", e2eVIP+":80", "-r", "198.18.0.12:80", "-g")
	}

	open := lab.open
	moveVIP(0)
	lab.waitServing(t)

	t.Run("without sync the connection breaks", func(t *testing.T) {
		moveVIP(0)
		ks, _ := open(t, 1)
		moveVIP(1)
		if name, err := ks[0].get(); err == nil {
			t.Fatalf("the connection answered %q through director B, which never saw it: the test cannot tell sync from no sync", name)
		}
	})

	t.Run("with sync the connections go on to the same real servers", func(t *testing.T) {
		mustAdm(0, "--start-daemon", "master", "--mcast-interface", "eth0", "--syncid", "9")
		mustAdm(1, "--start-daemon", "backup", "--mcast-interface", "eth0", "--syncid", "9")
		if got, want := mustAdm(0, "-L", "--daemon"), "master sync daemon (mcast=eth0, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"; got != want {
			t.Errorf("director A -L --daemon:\n%q\nwant\n%q", got, want)
		}
		if got, want := mustAdm(1, "-L", "--daemon"), "backup sync daemon (mcast=eth0, syncid=9, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"; got != want {
			t.Errorf("director B -L --daemon:\n%q\nwant\n%q", got, want)
		}
		moveVIP(0)
		ks, names := open(t, 2)
		if names[0] == names[1] {
			t.Fatalf("both connections went to %s; want one per real server (rr)", names[0])
		}
		// The master sends about once a second; wait for B's table.
		waitFor(t, 20*time.Second, "director B to list the synced connections", func() bool {
			out, _ := adm(1, "-Lnc")
			for i, k := range ks {
				want := fmt.Sprintf("ESTABLISHED %s %s:80 198.18.0.%d:80", k.conn.LocalAddr(), e2eVIP, 10+int(names[i][2]-'0'))
				if !strings.Contains(strings.Join(strings.Fields(out), " "), want) {
					return false
				}
			}
			return true
		})
		moveVIP(1)
		for i, k := range ks {
			for range 3 {
				if name, err := k.get(); err != nil || name != names[i] {
					t.Fatalf("connection %d through director B: %q, %v; want it to go on to %s\ndirector B:\n%s", i, name, err, names[i], procs[1].Output())
				}
			}
		}
		mustAdm(0, "--stop-daemon", "master")
		mustAdm(1, "--stop-daemon", "backup")
		if out := mustAdm(1, "-L", "--daemon"); out != "" {
			t.Errorf("-L --daemon after --stop-daemon: %q", out)
		}
	})

	t.Run("with sync a persistent client's new connections keep their real server", func(t *testing.T) {
		for i := range dirs {
			mustAdm(i, "-E", "-t", e2eVIP+":80", "-s", "rr", "-p", "300")
		}
		// Director A sends the client to RS2 (RS1 quiesced there for its
		// first connection). On director B RS2 is quiesced: a template
		// still sends its clients there, as in the kernel, but rr alone
		// picks RS1.
		mustAdm(0, "-e", "-t", e2eVIP+":80", "-r", "198.18.0.11:80", "-g", "-w", "0")
		mustAdm(1, "-e", "-t", e2eVIP+":80", "-r", "198.18.0.12:80", "-g", "-w", "0")
		mustAdm(0, "--start-daemon", "master", "--mcast-interface", "eth0", "--syncid", "9")
		mustAdm(1, "--start-daemon", "backup", "--mcast-interface", "eth0", "--syncid", "9")
		t.Cleanup(func() { adm(0, "--stop-daemon", "master"); adm(1, "--stop-daemon", "backup") })
		moveVIP(0)
		if name, err := getInNS(client.Name, e2eVIP+":80"); err != nil || name != "RS2" {
			t.Fatalf("first request through director A: %q, %v; want RS2", name, err)
		}
		mustAdm(0, "-e", "-t", e2eVIP+":80", "-r", "198.18.0.11:80", "-g", "-w", "1")
		tmpl := "NONE 198.18.0.100:0 " + e2eVIP + ":80 198.18.0.12:80"
		waitFor(t, 20*time.Second, "director B to list the client's persistence template", func() bool {
			out, _ := adm(1, "-Lnc")
			return strings.Contains(strings.Join(strings.Fields(out), " "), tmpl)
		})
		moveVIP(1)
		for i := range 3 {
			if name, err := getInNS(client.Name, e2eVIP+":80"); err != nil || name != "RS2" {
				t.Fatalf("new connection %d through director B: %q, %v; want RS2 (the template's)\ndirector B -Lnc:\n%s", i, name, err, mustAdm(1, "-Lnc"))
			}
		}
		// gvsadm daemons shows the counters -L --daemon has no room for.
		for i, state := range []string{"master", "backup"} {
			out := mustAdm(i, "daemons")
			lines := strings.Split(strings.TrimSpace(out), "\n")
			f := strings.Fields(lines[len(lines)-1])
			// State Interface SyncID Group Port Messages Sent Installed Skipped Dropped Errors
			if len(lines) != 2 || len(f) != 11 || f[0] != state || f[5] == "0" || state == "master" && f[6] == "0" || state == "backup" && f[7] == "0" {
				t.Errorf("director %c gvsadm daemons:\n%s\nwant the %s's row with messages and entries counted", 'A'+i, out, state)
			}
		}
	})
}

// TestLVSSyncDaemonFollowsVRRP: keepalived.conf's lvs_sync_daemon runs
// the master sync daemon on the director whose VRRP instance is MASTER
// and the backup daemon on the other, and swaps them when the VIP moves.
func TestLVSSyncDaemonFollowsVRRP(t *testing.T) {
	netnstest.Require(t)
	p := newVRRPPair(t)
	syncLine := "\tlvs_sync_daemon eth0 VI_1 id 7\n"
	socks := make([]string, 2)
	procs := make([]*netnstest.Proc, 2)
	start := func(i int, state string, prio int) {
		conf := strings.Replace(vrrpInstanceConf("2", state, prio, ""), "global_defs {\n", "global_defs {\n"+syncLine, 1)
		socks[i] = filepath.Join(p.conf, fmt.Sprintf("dir%d.sock", i+1))
		procs[i] = p.dirs[i].Start(filepath.Join(bin, "gvsd"), "--engine", "xdp", "--interface", "eth0", "--grace", "1s",
			"-f", p.write(t, i, conf), "--socket", socks[i])
	}
	daemons := func(i int) string {
		cmd := exec.Command(filepath.Join(bin, "gvsadm"), "-L", "--daemon")
		cmd.Env = append(os.Environ(), "GVS_SOCKET="+socks[i])
		out, _ := cmd.CombinedOutput()
		return string(out)
	}
	const params = " sync daemon (mcast=eth0, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"
	waitDaemon := func(i int, state string) {
		t.Helper()
		waitFor(t, 10*time.Second, fmt.Sprintf("director %d to run the %s sync daemon", i+1, state), func() bool {
			return daemons(i) == state+params
		})
	}
	start(0, "MASTER", 100)
	start(1, "BACKUP", 90)
	p.waitVIP(t, 0, 30*time.Second, "the VIP on director 1")
	waitDaemon(0, "master")
	waitDaemon(1, "backup")

	procs[0].Stop()
	p.waitVIP(t, 1, backupMDI+time.Second, "the VIP on director 2 after the master stopped")
	waitDaemon(1, "master")
}
