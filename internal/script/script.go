// Package script holds what gvsd needs to start a program a
// keepalived.conf names (notify scripts, vrrp_script, MISC_CHECK): the
// command line and the user it runs as, which internal/config resolves
// (the script's own user, else script_user, else keepalived_script, else
// gvsd's own user).
//
// As keepalived does, the process gets that user's uid and gid and no
// other supplementary group, its own process group, and gvsd's
// environment and working directory unchanged (keepalived neither sets
// HOME nor changes directory for a script).
package script

import (
	"os"
	"syscall"
)

// Cmd is a command line and the user that runs it. The zero Cmd is no
// command.
type Cmd struct {
	Line string
	// RunAs is the uid and gid the command runs as; nil runs it as gvsd
	// itself (tests). internal/config always sets it.
	RunAs *Credential
}

// Credential is a uid and a gid.
type Credential struct {
	UID, GID uint32
}

// IsZero reports whether c names no command.
func (c Cmd) IsZero() bool { return c.Line == "" }

// SysProcAttr starts the process in its own process group (so a timeout
// can end everything it started) as c's user, with the gid as its only
// group.
func (c Cmd) SysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true}
	if r := c.RunAs; r != nil && !(os.Geteuid() != 0 && r.UID == uint32(os.Geteuid()) && r.GID == uint32(os.Getegid())) {
		// An unprivileged gvsd cannot set its groups, and needs not when
		// the script runs as gvsd's own user.
		a.Credential = &syscall.Credential{Uid: r.UID, Gid: r.GID, Groups: []uint32{r.GID}}
	}
	return a
}

// Equal reports whether c and o run the same command as the same user.
func (c Cmd) Equal(o Cmd) bool {
	if (c.RunAs == nil) != (o.RunAs == nil) || c.RunAs != nil && *c.RunAs != *o.RunAs {
		return false
	}
	return c.Line == o.Line
}
