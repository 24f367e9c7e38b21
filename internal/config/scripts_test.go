package config

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeHost is a user database of name -> "uid:gid" and groups of name ->
// gid, for gvsd running as euid:egid.
func fakeHost(users, groups map[string]string, euid, egid uint32) scriptHost {
	return scriptHost{
		lookupUser: func(name string) (*user.User, error) {
			ids, ok := users[name]
			if !ok {
				return nil, user.UnknownUserError(name)
			}
			uid, gid, _ := strings.Cut(ids, ":")
			return &user.User{Username: name, Uid: uid, Gid: gid}, nil
		},
		lookupGroup: func(name string) (*user.Group, error) {
			gid, ok := groups[name]
			if !ok {
				return nil, user.UnknownGroupError(name)
			}
			return &user.Group{Name: name, Gid: gid}, nil
		},
		euid: euid, egid: egid, path: "/usr/bin:/bin",
	}
}

// warnLines renders warnings as "line: msg", with " [error]" for those
// keepalived -t counts as errors and " [security]" for script security
// errors.
func warnLines(ws []Warning) []string {
	var out []string
	for _, w := range ws {
		s := fmt.Sprintf("%d: %s", w.Line, w.Msg)
		if w.KeepalivedError {
			s += " [error]"
		}
		if w.Security {
			s += " [security]"
		}
		out = append(out, s)
	}
	return out
}

// TestScriptUsers is who runs a script: its own user, else script_user,
// else keepalived_script when it exists, else gvsd's own user; and what
// keepalived says when a user does not exist. Without a vrrp_instance or
// virtual_server nothing runs, so only the users are resolved here.
func TestScriptUsers(t *testing.T) {
	users := map[string]string{"alice": "1001:1001", "carol": "1003:1003"}
	withKS := map[string]string{"alice": "1001:1001", "carol": "1003:1003", DefaultScriptUser: "990:991"}
	groups := map[string]string{"staff": "50"}
	tests := []struct {
		name     string
		global   string // global_defs lines
		user     string // the vrrp_script's user line
		users    map[string]string
		uid, gid uint32
		disabled bool
		warns    []string
	}{
		{name: "keepalived_script when it exists", users: withKS, uid: 990, gid: 991},
		{name: "else gvsd's own user, with keepalived's warning", users: users, uid: 0, gid: 0,
			warns: []string{"3: Script user 'keepalived_script' does not exist"}},
		{name: "no keepalived_script with enable_script_security: not run", global: "enable_script_security",
			users: users, disabled: true, warns: []string{
				"3: Script user 'keepalived_script' does not exist",
				"3: Unable to set default user keepalived_script for script [error]",
				"3: Unable to set default user for vrrp script chk - removing [error]"}},
		{name: "script_user", global: "script_user carol", users: withKS, uid: 1003, gid: 1003},
		{name: "script_user and group", global: "script_user carol staff", users: users, uid: 1003, gid: 50},
		{name: "script_user that does not exist: not run", global: "script_user bob", users: withKS, disabled: true,
			warns: []string{
				"1: Script user 'bob' does not exist",
				"1: Error setting global script uid/gid [error]",
				"3: Unable to set default user for vrrp script chk - removing [error]"}},
		{name: "own user over script_user", global: "script_user carol", user: "user alice", users: users, uid: 1001, gid: 1001},
		{name: "own user and group", user: "user alice staff", users: users, uid: 1001, gid: 50},
		{name: "own user that does not exist: not run", user: "user bob", users: withKS, disabled: true,
			warns: []string{
				"3: Script user 'bob' does not exist",
				"3: Unable to set uid/gid for script '/bin/true' 'x' [error]"}},
		{name: "own group that does not exist: not run", user: "user alice wheel", users: users, disabled: true,
			warns: []string{
				"3: Script group 'wheel' does not exist",
				"3: Unable to set uid/gid for script '/bin/true' 'x' [error]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := fmt.Sprintf("global_defs { %s }\nvrrp_script chk {\n script \"/bin/true x\"\n %s\n}\n", tt.global, tt.user)
			c := mustParse(t, text)
			warns := warnLines(resolveScripts(c, "t.conf", fakeHost(tt.users, groups, 0, 0)))
			s := c.Scripts[0].Script
			if got := s.Disabled != ""; got != tt.disabled {
				t.Errorf("disabled %v (%q), want %v", got, s.Disabled, tt.disabled)
			}
			if !tt.disabled && (s.UID != tt.uid || s.GID != tt.gid) {
				t.Errorf("runs as %d:%d, want %d:%d", s.UID, s.GID, tt.uid, tt.gid)
			}
			if !slices.Equal(warns, tt.warns) {
				t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warns, "\n"), strings.Join(tt.warns, "\n"))
			}
		})
	}
}

// TestScriptUserMessages is keepalived's wording for each kind of script
// whose user does not exist, and that the default user is settled once.
func TestScriptUserMessages(t *testing.T) {
	c := mustParse(t, `global_defs { enable_script_security }
vrrp_script chk { script /bin/true }
vrrp_instance V { interface eth0
 virtual_router_id 9
 virtual_ipaddress { 198.18.0.1 }
 notify_master /bin/true bob
 notify_backup /bin/true
}
virtual_server 198.18.0.10 80 {
 protocol TCP
 quorum_up /bin/true
 real_server 198.18.0.11 80 {
  notify_up /bin/true bob
  MISC_CHECK {
   misc_path "/bin/true a"
   user bob
  }
  MISC_CHECK { misc_path /bin/true }
 }
}`)
	warns := warnLines(resolveScripts(c, "t.conf", fakeHost(nil, nil, 0, 0)))
	want := []string{
		"2: Script user 'keepalived_script' does not exist",
		"2: Unable to set default user keepalived_script for script [error]",
		"2: Unable to set default user for vrrp script chk - removing [error]",
		"6: Script user 'bob' does not exist",
		"6: Invalid user/group for notify script /bin/true - ignoring",
		"7: Failed to set default user for notify script /bin/true - ignoring",
		"11: Failed to set default user for quorum script /bin/true - ignoring",
		"13: Script user 'bob' does not exist",
		"13: Invalid user/group for notify script /bin/true - ignoring",
		"15: Script user 'bob' does not exist",
		"15: Failed to set uid/gid for misc checker script '/bin/true' 'a' - removing [error]",
		"18: Unable to set default user for misc script '/bin/true' - removing [error]",
	}
	if !slices.Equal(warns, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warns, "\n"), strings.Join(want, "\n"))
	}
}

// scriptFile writes an executable script with mode into a directory that
// every user may search, and returns its path.
func scriptFile(t *testing.T, name string, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\nexit 0\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestScriptSecurity is enable_script_security: a script run as root
// that a non-root user could change is refused with keepalived's
// messages; without it, such a script runs and the configuration test
// reports a script security error.
func TestScriptSecurity(t *testing.T) {
	ww := scriptFile(t, "ww.sh", 0o777)
	conf := func(global, path string) string {
		return fmt.Sprintf(`global_defs { %s }
vrrp_script chk {
 script %[2]s
 user root
}
vrrp_instance V { interface eth0
 virtual_router_id 9
 virtual_ipaddress { 198.18.0.1 }
 track_script { chk }
 notify_master %[2]s root
}
virtual_server 198.18.0.10 80 {
 protocol TCP
 real_server 198.18.0.11 80 {
  MISC_CHECK {
   misc_path %[2]s
   user root
  }
 }
}`, global, path)
	}
	host := fakeHost(map[string]string{"root": "0:0", "nobody": "65534:65534"}, nil, 0, 0)
	scripts := func(c *Config) []*Script {
		return []*Script{c.Scripts[0].Script, c.Instances[0].Notify.Master, c.VirtualServers[0].RealServers[0].Checkers[0].Misc.Path}
	}

	t.Run("enable_script_security refuses a world-writable script", func(t *testing.T) {
		c := mustParse(t, conf("enable_script_security", ww))
		warns := warnLines(resolveScripts(c, "t.conf", host))
		unsafe := fmt.Sprintf("Unsafe permissions found for script '%s' - disabling.", ww)
		want := []string{
			"3: " + unsafe,
			"3: Disabling track script chk due to insecure [error]",
			"10: " + unsafe,
			"16: " + unsafe,
			fmt.Sprintf("16: Disabling misc script '%s' due to insecure", ww),
		}
		if !slices.Equal(warns, want) {
			t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warns, "\n"), strings.Join(want, "\n"))
		}
		for _, s := range scripts(c) {
			if s.Disabled == "" {
				t.Errorf("%s at line %d was not disabled", s.Cmd, s.Pos.Line)
			}
		}
	})

	t.Run("without it the script runs, reported", func(t *testing.T) {
		c := mustParse(t, conf("", ww))
		warns := warnLines(resolveScripts(c, "t.conf", host))
		unsafe := fmt.Sprintf("Unsafe permissions found for script '%s'.", ww)
		want := []string{
			"3: " + unsafe, "10: " + unsafe,
			"0: SECURITY VIOLATION - scripts are being executed but script_security not enabled. There are insecure scripts. [error] [security]",
			"16: " + unsafe,
			"0: SECURITY VIOLATION - check scripts are being executed but script_security not enabled. There are insecure scripts. [error] [security]",
		}
		if !slices.Equal(warns, want) {
			t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warns, "\n"), strings.Join(want, "\n"))
		}
		for _, s := range scripts(c) {
			if s.Disabled != "" {
				t.Errorf("%s at line %d disabled: %s", s.Cmd, s.Pos.Line, s.Disabled)
			}
		}
	})

	t.Run("a script run as another user is not root's concern", func(t *testing.T) {
		c := mustParse(t, strings.ReplaceAll(conf("enable_script_security", ww), "root", "nobody"))
		if warns := resolveScripts(c, "t.conf", host); len(warns) != 0 {
			t.Errorf("warnings: %v", warnLines(warns))
		}
	})

	t.Run("missing and not executable scripts do not run", func(t *testing.T) {
		noexec := scriptFile(t, "noexec.sh", 0o644)
		c := mustParse(t, `global_defs { enable_script_security }
vrrp_script gone {
 script /nonexistent/gone.sh
 user nobody
}
vrrp_script noexec {
 script `+noexec+`
 user nobody
}
vrrp_instance V { interface eth0
 virtual_router_id 9
 virtual_ipaddress { 198.18.0.1 }
}`)
		warns := warnLines(resolveScripts(c, "t.conf", host))
		want := []string{
			"3: Script /nonexistent/gone.sh cannot be accessed - No such file or directory",
			"3: Disabling track script gone since not found/accessible [error]",
			fmt.Sprintf("7: WARNING - script '%s' is not executable for uid:gid 65534:65534 - disabling.", noexec),
		}
		if !slices.Equal(warns, want) {
			t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warns, "\n"), strings.Join(want, "\n"))
		}
		for _, s := range c.Scripts {
			if s.Script.Disabled == "" {
				t.Errorf("vrrp_script %s was not disabled", s.Name)
			}
		}
	})

	t.Run("a root-owned script nobody else can change runs", func(t *testing.T) {
		if os.Geteuid() != 0 {
			if os.Getenv("CI") == "true" {
				t.Fatal("CI=true and not root: the script and its directories must be root's")
			}
			t.Skip("needs root: the script and its directories must be root's")
		}
		ok := scriptFile(t, "ok.sh", 0o755)
		c := mustParse(t, conf("enable_script_security", ok))
		if warns := resolveScripts(c, "t.conf", host); len(warns) != 0 {
			t.Errorf("warnings: %v", warnLines(warns))
		}
		for _, s := range scripts(c) {
			if s.Disabled != "" {
				t.Errorf("%s at line %d disabled: %s", s.Cmd, s.Pos.Line, s.Disabled)
			}
		}
	})
}

// TestNotifyFIFOUsers: a notify FIFO is owned by its own user (and
// group), else by the default script user; one whose user does not exist
// is not written, with keepalived's message. Its reader is a script of
// its own user.
func TestNotifyFIFOUsers(t *testing.T) {
	users := map[string]string{"alice": "1001:1001", "carol": "1003:1003"}
	groups := map[string]string{"staff": "50"}
	c := mustParse(t, `global_defs {
 script_user carol
 notify_fifo /run/all.fifo
 vrrp_notify_fifo /run/vrrp.fifo alice staff
 lvs_notify_fifo /run/lvs.fifo bob
 lvs_notify_fifo_script "/bin/cat -u" alice
}
`)
	warns := warnLines(resolveScripts(c, "t.conf", fakeHost(users, groups, 0, 0)))
	g := &c.Global
	for _, tt := range []struct {
		name     string
		s        *Script
		uid, gid uint32
		disabled bool
	}{
		{"notify_fifo", g.NotifyFIFO, 1003, 1003, false},
		{"vrrp_notify_fifo", g.VRRPNotifyFIFO, 1001, 50, false},
		{"lvs_notify_fifo", g.LVSNotifyFIFO, 0, 0, true},
		{"lvs_notify_fifo_script", g.LVSNotifyFIFOScript, 1001, 1001, false},
	} {
		if got := tt.s.Disabled != ""; got != tt.disabled {
			t.Errorf("%s: disabled %v (%q), want %v", tt.name, got, tt.s.Disabled, tt.disabled)
		}
		if !tt.disabled && (tt.s.UID != tt.uid || tt.s.GID != tt.gid) {
			t.Errorf("%s: user %d:%d, want %d:%d", tt.name, tt.s.UID, tt.s.GID, tt.uid, tt.gid)
		}
	}
	want := []string{
		"5: Script user 'bob' does not exist",
		"5: Invalid user/group for fifo /run/lvs.fifo - ignoring",
	}
	if !slices.Equal(warns, want) {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warns, "\n"), strings.Join(want, "\n"))
	}
}
