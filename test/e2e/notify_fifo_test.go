package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// fifoLines reads the lines of the FIFO at path once it exists, until
// its last writer closes it.
type fifoLines struct {
	mu    sync.Mutex
	lines []string
	done  chan struct{}
}

func readFIFO(t *testing.T, path string) *fifoLines {
	t.Helper()
	waitFor(t, 10*time.Second, "the notify FIFO "+path, func() bool {
		st, err := os.Stat(path)
		return err == nil && st.Mode()&os.ModeNamedPipe != 0
	})
	// Non-blocking open: it does not wait for a writer; reads then wait
	// in Go's poller.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := &fifoLines{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		defer f.Close()
		br := bufio.NewReader(f)
		for {
			line, err := br.ReadString('\n')
			if line != "" {
				r.mu.Lock()
				r.lines = append(r.lines, line)
				r.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		f.SetReadDeadline(time.Now())
		<-r.done
	})
	return r
}

func (r *fifoLines) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

func (r *fifoLines) waitLine(t *testing.T, limit time.Duration, line string) {
	t.Helper()
	waitFor(t, limit, fmt.Sprintf("%q in the notify FIFO (have %q)", line, r.get()), func() bool {
		return slices.Contains(r.get(), line)
	})
}

// waitEOF waits until the writers closed the FIFO.
func (r *fifoLines) waitEOF(t *testing.T, limit time.Duration) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(limit):
		t.Fatalf("the notify FIFO was not closed within %s (have %q)", limit, r.get())
	}
}

// fifoConf is the lab's keepalived.conf: VI_1 with the VIP, and a
// virtual server with two real servers on the director itself, each
// watched by a TCP_CHECK; the FIFOs and the LVS FIFO's reader live in
// dir.
func fifoConf(dir string) string {
	return fmt.Sprintf(`global_defs {
	router_id FIFO_E2E
	notify_fifo %[1]s/all.fifo
	vrrp_notify_fifo %[1]s/vrrp.fifo
	lvs_notify_fifo %[1]s/lvs.fifo
	lvs_notify_fifo_script "%[1]s/reader.sh lvs"
}
vrrp_instance VI_1 {
	state BACKUP
	interface eth0
	virtual_router_id 61
	priority 100
	advert_int 1
	virtual_ipaddress {
		%[2]s/24 dev eth0
	}
}
virtual_server 198.18.3.1 8080 {
	delay_loop 1
	lb_algo rr
	lb_kind NAT
	protocol TCP
	real_server 198.18.3.1 9001 {
		TCP_CHECK {
			connect_timeout 1
			retry 1
			delay_before_retry 1
		}
	}
	real_server 198.18.3.1 9002 {
		TCP_CHECK {
			connect_timeout 1
			retry 1
			delay_before_retry 1
		}
	}
}
`, dir, vrrpVIP)
}

// TestNotifyFIFOAsKeepalived runs one director with notify_fifo,
// vrrp_notify_fifo and lvs_notify_fifo (read by its
// lvs_notify_fifo_script): first the real keepalived (VRRP only, -P:
// this kernel has no IPVS for its checkers), then gvsd with the same
// file. gvsd's VRRP lines must be keepalived's, line for line; its
// checker lines are those keepalived 2.2.7 wrote for the same events on
// kernel IPVS (recorded in the ipvs-vm, see internal/notify's tests).
// The FIFOs gvsd created are gone when it has stopped, and the reader got
// the FIFO's path as its last argument.
func TestNotifyFIFOAsKeepalived(t *testing.T) {
	netnstest.Require(t, "keepalived")
	p := newVRRPPair(t)
	dir := t.TempDir()
	reader := filepath.Join(dir, "reader.sh")
	script := fmt.Sprintf("#!/bin/sh\necho \"$@\" >> %[1]s/reader.args\nexec cat \"$2\" >> %[1]s/lvs.out\n", dir)
	if err := os.WriteFile(reader, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := fifoConf(dir)
	masterLine := `INSTANCE "VI_1" MASTER 100` + "\n"
	stopLine := `INSTANCE "VI_1" STOP 100` + "\n"

	// The real keepalived's VRRP lines.
	ka := p.startKeepalived(t, 0, conf)
	kaVRRP := readFIFO(t, filepath.Join(dir, "vrrp.fifo"))
	kaVRRP.waitLine(t, 10*time.Second, masterLine)
	ka.Stop()
	kaVRRP.waitEOF(t, 5*time.Second)
	kaLines := kaVRRP.get()
	if !slices.Contains(kaLines, stopLine) {
		t.Fatalf("keepalived wrote %q: no STOP line", kaLines)
	}
	waitFor(t, 5*time.Second, "keepalived to remove its FIFOs", func() bool {
		_, err1 := os.Stat(filepath.Join(dir, "vrrp.fifo"))
		_, err2 := os.Stat(filepath.Join(dir, "all.fifo"))
		return errors.Is(err1, os.ErrNotExist) && errors.Is(err2, os.ErrNotExist)
	})
	os.Remove(filepath.Join(dir, "lvs.out"))
	os.Remove(filepath.Join(dir, "reader.args"))

	// gvsd, with its two real servers listening.
	var rss [2]net.Listener
	for i := range rss {
		err := p.dirs[0].Do(func() (err error) {
			rss[i], err = net.Listen("tcp", fmt.Sprintf("198.18.3.1:900%d", i+1))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rss[i].Close() })
		go func() {
			for {
				c, err := rss[i].Accept()
				if err != nil {
					return
				}
				c.Close()
			}
		}()
	}
	gvsd := p.startGVSD(t, 0, conf)
	vrrpFIFO := readFIFO(t, filepath.Join(dir, "vrrp.fifo"))
	all := readFIFO(t, filepath.Join(dir, "all.fifo"))
	vrrpFIFO.waitLine(t, 10*time.Second, masterLine)

	rsDown := func(port string) string {
		return fmt.Sprintf("RS [198.18.3.1]:tcp:%s [198.18.3.1]:tcp:8080 DOWN\n", port)
	}
	rss[1].Close()
	all.waitLine(t, detectWithin+2*time.Second, rsDown("9002"))
	rss[0].Close()
	vsDown := "VS [198.18.3.1]:tcp:8080 DOWN\n"
	all.waitLine(t, detectWithin+2*time.Second, vsDown)

	gvsd.Stop()
	vrrpFIFO.waitEOF(t, 5*time.Second)
	all.waitEOF(t, 5*time.Second)
	if got := vrrpFIFO.get(); !slices.Equal(got, kaLines) {
		t.Errorf("vrrp_notify_fifo:\n gvsd       %q\n keepalived %q", got, kaLines)
	}
	// keepalived also writes VS [198.18.3.1]:tcp:8080 UP when it starts
	// (its quorum is "gained" then); gvsd's checkers start with it.
	lvsWant := []string{rsDown("9002"), rsDown("9001"), vsDown}
	vrrpThenLVS := append(slices.Clip(kaLines[:len(kaLines)-1]), append(lvsWant, stopLine)...)
	if got := all.get(); !slices.Equal(got, vrrpThenLVS) {
		t.Errorf("notify_fifo:\n got  %q\n want %q", got, vrrpThenLVS)
	}
	for _, name := range []string{"all.fifo", "vrrp.fifo", "lvs.fifo"} {
		if _, err := os.Lstat(filepath.Join(dir, name)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after gvsd stopped (%v)", name, err)
		}
	}
	waitFor(t, 5*time.Second, "the lvs_notify_fifo_script to write what it read", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "lvs.out"))
		return string(b) == strings.Join(lvsWant, "")
	})
	args, err := os.ReadFile(filepath.Join(dir, "reader.args"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(args), "lvs "+filepath.Join(dir, "lvs.fifo")+"\n"; got != want {
		t.Errorf("lvs_notify_fifo_script ran once with %q, want %q", got, want)
	}
}
