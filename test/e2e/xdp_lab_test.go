package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// xdpLab is the namespaces of the xdp tests that run the real gvsd:
//
//	client 198.18.0.100 ─┐
//	dirA   198.18.0.1  ──┼─ br0 (198.18.0.0/24; sync messages too)
//	dirB   198.18.0.2  ──┤   (as many directors as asked for)
//	rs1    198.18.0.11 ──┤   VIP 198.18.0.200 on a director's eth0 (moveVIP);
//	rs2    198.18.0.12 ──┘   on the real servers' lo
//
// Each real server is the test/rs binary listening on TCP and UDP :80 (so
// on its own address too, for health checks), set up for direct routing
// with `gvsadm realserver setup`, and answering with its name (RS1, RS2).
type xdpLab struct {
	client  *netnstest.NS
	dirs    []*netnstest.NS
	rs      []*netnstest.NS
	rsProcs []*netnstest.Proc
	gvsd    []*netnstest.Proc // the running gvsd of each director (nil before start)
	socks   []string
	t       *testing.T
}

func newXDPLab(t *testing.T, directors int) *xdpLab {
	t.Helper()
	netnstest.Require(t)
	hub := netnstest.New(t, "hub")
	l := &xdpLab{client: netnstest.New(t, "cli"), t: t}
	for i := range directors {
		l.dirs = append(l.dirs, netnstest.New(t, fmt.Sprintf("dir%c", 'a'+i)))
	}
	l.rs = []*netnstest.NS{netnstest.New(t, "rs1"), netnstest.New(t, "rs2")}
	netnstest.Bridge(t, hub, "br0", "eth0", append(append([]*netnstest.NS{l.client}, l.dirs...), l.rs...)...)
	l.client.Addr("eth0", "198.18.0.100/24")
	for i, d := range l.dirs {
		d.Addr("eth0", fmt.Sprintf("198.18.0.%d/24", i+1))
	}
	for i, n := range l.rs {
		n.Addr("eth0", fmt.Sprintf("198.18.0.%d/24", 11+i))
		n.Run(filepath.Join(bin, "gvsadm"), "realserver", "setup", "--vip", e2eVIP, "--mode", "dr")
		l.rsProcs = append(l.rsProcs, nil)
		l.startRS(t, i)
	}
	l.gvsd = make([]*netnstest.Proc, directors)
	l.socks = make([]string, directors)
	return l
}

// startRS starts real server i (again, after a kill).
func (l *xdpLab) startRS(t *testing.T, i int) {
	t.Helper()
	l.rsProcs[i] = l.rs[i].Start(filepath.Join(bin, "rs"), "-name", fmt.Sprintf("RS%d", i+1), "-listen", ":80", "-udp", ":80")
	waitListening(t, l.rs[i], e2eVIP+":80")
}

// start runs gvsd --engine xdp on director i's eth0 with the extra
// arguments, and waits until its admin API answers (loading the BPF
// program takes a while on a busy machine).
func (l *xdpLab) start(t *testing.T, i int, args ...string) *netnstest.Proc {
	t.Helper()
	l.socks[i] = filepath.Join(t.TempDir(), "gvsd.sock")
	l.gvsd[i] = l.dirs[i].Start(filepath.Join(bin, "gvsd"), append([]string{"--engine", "xdp", "--interface", "eth0", "--socket", l.socks[i], "--grace", "1s"}, args...)...)
	p := l.gvsd[i]
	waitFor(t, 60*time.Second, "gvsd with the xdp engine", func() bool {
		select {
		case <-p.Done():
			t.Fatalf("director %c: gvsd exited:\n%s", 'A'+i, p.Output())
		default:
		}
		_, err := l.adm(i, "-Ln")
		return err == nil
	})
	return p
}

// adm runs gvsadm against director i's gvsd.
func (l *xdpLab) adm(i int, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(bin, "gvsadm"), args...)
	cmd.Env = append(os.Environ(), "GVS_SOCKET="+l.socks[i])
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// mustAdm is adm failing the lab's test when gvsadm fails.
func (l *xdpLab) mustAdm(i int, args ...string) string {
	l.t.Helper()
	out, err := l.adm(i, args...)
	if err != nil {
		l.t.Fatalf("director %c: gvsadm %s: %v\n%s\ngvsd log:\n%s", 'A'+i, strings.Join(args, " "), err, out, l.gvsd[i].Output())
	}
	return out
}

// moveVIP puts the VIP on director i and points the client at it.
func (l *xdpLab) moveVIP(i int) {
	for j, d := range l.dirs {
		if j != i {
			d.Cmd("ip", "addr", "del", e2eVIP+"/32", "dev", "eth0").Run() // may not be there
		}
	}
	l.dirs[i].Run("ip", "addr", "replace", e2eVIP+"/32", "dev", "eth0")
	mac := strings.TrimSpace(l.dirs[i].Run("cat", "/sys/class/net/eth0/address"))
	l.client.Run("ip", "neigh", "replace", e2eVIP, "lladdr", mac, "dev", "eth0", "nud", "permanent")
}

// waitServing waits until a request through the VIP is answered: a
// director serves once it has resolved the real servers (a first SYN may
// be dropped until then).
func (l *xdpLab) waitServing(t *testing.T) {
	t.Helper()
	waitFor(t, 30*time.Second, "an answer through the VIP", func() bool {
		_, err := getInNS(l.client.Name, e2eVIP+":80")
		return err == nil
	})
}

// open makes n kept-alive connections through the director holding the
// VIP and returns them with the real server each reached; t's cleanup
// closes them.
func (l *xdpLab) open(t *testing.T, n int) ([]*keepAlive, []string) {
	t.Helper()
	var ks []*keepAlive
	var names []string
	for range n {
		k, err := dialKeepAlive(l.client.Name, e2eVIP+":80")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { k.conn.Close() })
		name, err := k.get()
		if err != nil {
			t.Fatalf("first request: %v", err)
		}
		ks, names = append(ks, k), append(names, name)
	}
	return ks, names
}

// pool lists director i's first service's real servers as "RS1:weight"
// (from gvsadm -Ln), sorted.
func (l *xdpLab) pool(i int) string {
	out, _ := l.adm(i, "-Ln")
	var pool []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || f[0] != "->" || !strings.HasPrefix(f[1], "198.18.0.1") {
			continue
		}
		host, _, _ := strings.Cut(f[1], ":")
		pool = append(pool, fmt.Sprintf("RS%s:%s", strings.TrimPrefix(host, "198.18.0.1"), f[3]))
	}
	slices.Sort(pool)
	return strings.Join(pool, " ")
}
