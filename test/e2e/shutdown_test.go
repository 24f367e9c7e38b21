package e2e

import (
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestShutdownDrainsReadOnly: after SIGTERM, while a connection drains
// for --grace, gvsadm still shows the service and the connection and is
// told that changes are refused; a second SIGTERM ends the grace period at
// once, and gvsd removes its socket on the way out.
func TestShutdownDrainsReadOnly(t *testing.T) {
	// A real server that keeps every connection open until the test ends.
	rs, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		for {
			c, err := rs.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			accepted <- c
		}
	}()

	d := startGVSD(t, "--engine", "proxy", "--grace", "10m")
	addr := "127.0.0.1:" + freePort(t)
	d.gvsadm(t, "-A", "-t", addr, "-s", "rr")
	d.gvsadm(t, "-a", "-t", addr, "-r", rs.Addr().String(), "-m")
	client, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	select {
	case <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the connection did not reach the real server")
	}

	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var refused string
	waitFor(t, 5*time.Second, "gvsadm to be told that gvsd is shutting down", func() bool {
		out, err := d.gvsadmErr("-E", "-t", addr, "-s", "rr")
		refused = out
		return err != nil
	})
	if want := "gvsd is shutting down: it takes no more changes (read-only until it exits)\n"; refused != want {
		t.Errorf("a change during the grace period: %q, want %q", refused, want)
	}
	if out := d.gvsadm(t, "-Ln"); !strings.Contains(out, "TCP  "+addr+" rr") || !strings.Contains(out, "Masq    1      1          0") {
		t.Errorf("gvsadm -Ln during the grace period does not show the draining connection:\n%s", out)
	}
	if out := d.gvsadm(t, "-Lnc"); !strings.Contains(out, "ESTABLISHED") {
		t.Errorf("gvsadm -Lnc during the grace period does not list the connection:\n%s", out)
	}
	select {
	case <-d.exited:
		t.Fatalf("gvsd exited with a connection draining and 10 minutes of grace: %v", d.waitErr)
	default:
	}

	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.exited:
		if d.waitErr != nil {
			t.Errorf("gvsd after the second SIGTERM: %v", d.waitErr)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second SIGTERM did not end the grace period")
	}
	if _, err := os.Stat(d.socket); !os.IsNotExist(err) {
		t.Errorf("the admin socket is left behind: %v", err)
	}
	// The draining connection was cut.
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(client); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Errorf("the client's connection after gvsd exited: %v", err)
	}
}
