package e2e

// The scripts a keepalived.conf names run as the user it gives them, and
// enable_script_security refuses the ones a non-root user could change,
// as keepalived does.

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// scriptDir is a fresh directory every user may search (t.TempDir's are
// root's only).
func scriptDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// writeScript writes a shell script with mode (chmod, not the umask's).
func writeScript(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// scriptNS is a namespace with eth0 up (a veth whose peer stays inside)
// holding addr.
func scriptNS(t *testing.T, addr string) *netnstest.NS {
	t.Helper()
	n := netnstest.New(t, "scr")
	n.Run("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1")
	n.Run("ip", "link", "set", "eth0", "up")
	n.Run("ip", "link", "set", "eth1", "up")
	n.Addr("eth0", addr)
	return n
}

func TestKeepalivedScriptsRunAsTheirUser(t *testing.T) {
	netnstest.Require(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("no user nobody: %v", err)
	}
	// A script that names no user runs as keepalived_script, or as gvsd's
	// own user (root) when there is none.
	defaultUID := "0"
	if u, err := user.Lookup("keepalived_script"); err == nil {
		defaultUID = u.Uid
	}
	n := scriptNS(t, "198.18.5.1/24")
	dir := scriptDir(t)
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(out, 0o1777); err != nil {
		t.Fatal(err)
	}
	id := filepath.Join(dir, "id.sh")
	writeScript(t, id, fmt.Sprintf("id -u > %[1]s/$1.$$ && mv %[1]s/$1.$$ %[1]s/$1\n", out), 0o755)

	conf := fmt.Sprintf(`global_defs {
	router_id SCRIPTS
}
vrrp_script chk {
	script "%[1]s vrrp_script"
	interval 1
	user nobody
}
vrrp_instance VI_1 {
	state MASTER
	interface eth0
	virtual_router_id 62
	priority 100
	advert_int 1
	virtual_ipaddress {
		198.18.5.100/24 dev eth0
	}
	track_script {
		chk
	}
	notify_master "%[1]s notify_master" nobody
	notify "%[1]s notify_default"
}
virtual_server 198.18.5.1 80 {
	delay_loop 1
	lvs_sched rr
	lvs_method NAT
	protocol TCP
	real_server 198.18.5.2 80 {
		alpha
		notify_up "%[1]s notify_up" nobody
		MISC_CHECK {
			misc_path "%[1]s misc_check"
			user nobody
		}
	}
}
`, id)
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	n.Start(filepath.Join(bin, "gvsd"), "--engine", "proxy", "--grace", "1s", "-f", path,
		"--socket", filepath.Join(dir, "gvsd.sock"))

	want := map[string]string{"vrrp_script": nobody.Uid, "notify_master": nobody.Uid, "misc_check": nobody.Uid,
		"notify_up": nobody.Uid, "notify_default": defaultUID}
	got := map[string]string{}
	waitFor(t, 15*time.Second, "every script to write its uid", func() bool {
		for name := range want {
			if b, err := os.ReadFile(filepath.Join(out, name)); err == nil {
				got[name] = strings.TrimSpace(string(b))
			}
		}
		return len(got) == len(want)
	})
	for name, uid := range want {
		if got[name] != uid {
			t.Errorf("%s ran as uid %s, want %s", name, got[name], uid)
		}
	}
}

// TestKeepalivedScriptSecurityConfigTest compares gvsd -t with keepalived
// -t (when installed) on scripts run as root that anyone may change.
func TestKeepalivedScriptSecurityConfigTest(t *testing.T) {
	netnstest.Require(t)
	n := scriptNS(t, "198.18.5.1/24")
	dir := scriptDir(t)
	ww, ok := filepath.Join(dir, "ww.sh"), filepath.Join(dir, "ok.sh")
	writeScript(t, ww, "exit 0\n", 0o777)
	writeScript(t, ok, "exit 0\n", 0o755)

	vrrpConf := func(global, script string) string {
		return fmt.Sprintf(`global_defs {
	router_id SCRIPTS
%s
}
vrrp_script chk {
	script %s
	user root
}
vrrp_instance VI_1 {
	interface eth0
	virtual_router_id 62
	virtual_ipaddress {
		198.18.5.100/24 dev eth0
	}
	track_script {
		chk
	}
}
`, global, script)
	}
	checkConf := func(global, script string) string {
		return fmt.Sprintf(`global_defs {
	router_id SCRIPTS
%s
}
virtual_server 198.18.5.1 80 {
	lvs_sched rr
	lvs_method NAT
	protocol TCP
	real_server 198.18.5.2 80 {
		MISC_CHECK {
			misc_path %s
			user root
		}
	}
}
`, global, script)
	}
	const security = "\tenable_script_security"
	tests := []struct {
		name string
		conf string
		code int
		want []string // in gvsd -t's output
		ka   []string // in keepalived -t's output too
	}{
		{"world-writable vrrp_script refused", vrrpConf(security, ww), 5,
			[]string{fmt.Sprintf("Unsafe permissions found for script '%s' - disabling.", ww)},
			[]string{"Disabling track script chk due to insecure"}},
		{"world-writable MISC_CHECK refused", checkConf(security, ww), 0,
			[]string{fmt.Sprintf("Disabling misc script '%s' due to insecure", ww)}, nil},
		{"world-writable script run without enable_script_security", vrrpConf("", ww), 6,
			[]string{fmt.Sprintf("Unsafe permissions found for script '%s'.", ww)},
			[]string{"SECURITY VIOLATION - scripts are being executed but script_security not enabled. There are insecure scripts."}},
		{"world-writable MISC_CHECK without enable_script_security", checkConf("", ww), 6, nil,
			[]string{"SECURITY VIOLATION - check scripts are being executed but script_security not enabled. There are insecure scripts."}},
		{"root's own script", vrrpConf(security, ok), 0, []string{"configuration OK"}, nil},
	}
	_, noKeepalived := exec.LookPath("keepalived")
	if noKeepalived != nil && os.Getenv("CI") == "true" {
		t.Fatal("CI=true and keepalived is not installed (apt-get install keepalived)")
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, fmt.Sprintf("%d.conf", i))
			if err := os.WriteFile(path, []byte(tt.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(filepath.Join(bin, "gvsd"), "-t", "-f", path).CombinedOutput()
			if code := exitCode(t, err); code != tt.code {
				t.Errorf("gvsd -t exit code %d, want %d\n%s", code, tt.code, out)
			}
			for _, w := range append(tt.want, tt.ka...) {
				if !strings.Contains(string(out), w) {
					t.Errorf("gvsd -t does not say %q:\n%s", w, out)
				}
			}
			if strings.Contains(tt.name, "root's own") && strings.Contains(string(out), "Unsafe") {
				t.Errorf("gvsd -t finds root's own script unsafe:\n%s", out)
			}
			if noKeepalived != nil {
				t.Log("keepalived is not installed: not compared")
				return
			}
			// keepalived -t needs the instance's interface: run it in the
			// namespace.
			kout, err := n.Cmd("keepalived", "-t", "-f", path).CombinedOutput()
			if code := exitCode(t, err); code != tt.code {
				t.Errorf("keepalived -t exit code %d, gvsd -t's %d\n%s", code, tt.code, kout)
			}
			for _, w := range tt.ka {
				if !strings.Contains(string(kout), w) {
					t.Errorf("keepalived -t does not say %q:\n%s", w, kout)
				}
			}
		})
	}
}

// TestKeepalivedInsecureScriptsDoNotRun: with enable_script_security,
// gvsd never runs a root script that anyone may change (the vrrp_script,
// the notify script, the MISC_CHECK), and still runs root's own script.
func TestKeepalivedInsecureScriptsDoNotRun(t *testing.T) {
	netnstest.Require(t)
	n := scriptNS(t, "198.18.5.1/24")
	dir := scriptDir(t)
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	ww, ok := filepath.Join(dir, "ww.sh"), filepath.Join(dir, "ok.sh")
	writeScript(t, ww, fmt.Sprintf("touch %s/$1\n", out), 0o777)
	writeScript(t, ok, fmt.Sprintf("touch %s/$1\n", out), 0o755)
	conf := fmt.Sprintf(`global_defs {
	router_id SCRIPTS
	enable_script_security
}
vrrp_script ww {
	script "%[1]s vrrp_script"
	interval 1
	user root
}
vrrp_instance VI_1 {
	state MASTER
	interface eth0
	virtual_router_id 63
	priority 100
	advert_int 1
	virtual_ipaddress {
		198.18.5.100/24 dev eth0
	}
	track_script {
		ww
	}
	notify_master "%[1]s notify_master" root
	notify "%[2]s notify" root
}
virtual_server 198.18.5.1 80 {
	delay_loop 1
	lvs_sched rr
	lvs_method NAT
	protocol TCP
	real_server 198.18.5.2 80 {
		MISC_CHECK {
			misc_path "%[1]s misc_check"
			user root
		}
	}
}
`, ww, ok)
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	gvsd := n.Start(filepath.Join(bin, "gvsd"), "--engine", "proxy", "--grace", "1s", "-f", path,
		"--socket", filepath.Join(dir, "gvsd.sock"))
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(out, name))
		return err == nil
	}
	waitFor(t, 15*time.Second, "root's own notify script (VI_1 MASTER)", func() bool { return exists("notify") })
	// The refused scripts would have run within a second of the MASTER
	// state (notify_master) and every second (vrrp_script, MISC_CHECK).
	time.Sleep(2500 * time.Millisecond)
	for _, name := range []string{"vrrp_script", "notify_master", "misc_check"} {
		if exists(name) {
			t.Errorf("the world-writable %s ran", name)
		}
	}
	if want := fmt.Sprintf("Unsafe permissions found for script '%s' - disabling.", ww); !strings.Contains(gvsd.Output(), want) {
		t.Errorf("gvsd's log does not say %q:\n%s", want, gvsd.Output())
	}
}
