package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unicode"
)

// DefaultScriptUser runs the scripts that name no user when global_defs
// has no script_user and this user exists, as in keepalived.
const DefaultScriptUser = "keepalived_script"

// scriptHost is what resolving scripts needs from the system: the user
// and group databases and gvsd's own ids. Tests inject it; the files are
// always the real ones.
type scriptHost struct {
	lookupUser  func(name string) (*user.User, error)
	lookupGroup func(name string) (*user.Group, error)
	euid, egid  uint32
	path        string // $PATH, for scripts named without a slash
}

func systemScriptHost() scriptHost {
	path, ok := os.LookupEnv("PATH")
	if !ok {
		path = "/bin:/usr/bin" // confstr(_CS_PATH)
	}
	return scriptHost{lookupUser: user.Lookup, lookupGroup: user.LookupGroup,
		euid: uint32(os.Geteuid()), egid: uint32(os.Getegid()), path: path}
}

// Kinds of scripts: keepalived words its messages for each.
type scriptKind int

const (
	trackScript  scriptKind = iota // vrrp_script
	miscScript                     // MISC_CHECK misc_path
	notifyScript                   // notify_*, notify (VRRP and real servers)
	quorumScript                   // quorum_up, quorum_down
	fifoScript                     // notify_fifo_script and its vrrp_ and lvs_ kin
	notifyFIFO                     // a notify FIFO: not a script, its user owns the FIFO
)

// scriptRef is one script of the configuration, as resolveScripts walks
// them.
type scriptRef struct {
	s    *Script
	kind scriptKind
	name string // the vrrp_script's name
}

// Flags of a script security check, as keepalived's check_script_secure
// returns them.
const (
	scInsecure   = 1 << iota // a non-root user could change it
	scIsScript               // it was found
	scInhibit                // it must not run
	scNotFound               // a part of its path is missing or unreadable
	scExecutable             // its user may execute it
	scSystem                 // "</file" tests: run by the shell, nothing to check
)

// resolveScripts sets every script's UID, GID and Disabled, as keepalived
// 2.2 does while it reads its configuration and before it runs it:
//
//   - a script runs as its own user (and group, else the user's primary
//     group); one that names no user runs as global_defs script_user,
//     else as keepalived_script when that user exists, else as gvsd's own
//     user. A user that does not exist disables the script; with
//     enable_script_security a missing keepalived_script disables every
//     script that names no user.
//   - a script run as root (uid or gid 0, or set-uid/gid root) that a
//     non-root user could change (the file or a directory above it owned
//     by a non-root user, or writable by a non-root group or by all,
//     directories with the sticky bit excepted) is reported; with
//     enable_script_security it is disabled.
//   - a script that cannot be found, or that its user cannot execute, is
//     disabled.
//
// A disabled vrrp_script is no longer tracked, a disabled MISC_CHECK is
// removed from its real server, a disabled notify script is not run.
// Without enable_script_security, running scripts at all is reported as a
// script security error (exit ExitConfigTestSecurity at -t).
func resolveScripts(c *Config, file string, h scriptHost) []Warning {
	r := &scriptResolver{c: c, h: h}
	var vrrpSide, checkSide []scriptRef
	for i := range c.Scripts {
		if s := c.Scripts[i].Script; s != nil && s.Cmd != "" {
			vrrpSide = append(vrrpSide, scriptRef{s: s, kind: trackScript, name: c.Scripts[i].Name})
		}
	}
	notify := func(side *[]scriptRef, kind scriptKind, ss ...*Script) {
		for _, s := range ss {
			if s != nil && s.Cmd != "" {
				*side = append(*side, scriptRef{s: s, kind: kind})
			}
		}
	}
	for i := range c.SyncGroups {
		n := &c.SyncGroups[i].Notify
		notify(&vrrpSide, notifyScript, n.Master, n.Backup, n.Fault, n.Stop, n.Any)
	}
	for i := range c.Instances {
		n := &c.Instances[i].Notify
		notify(&vrrpSide, notifyScript, n.Master, n.Backup, n.Fault, n.Stop, n.Any)
	}
	for i := range c.VirtualServers {
		vs := &c.VirtualServers[i]
		notify(&checkSide, quorumScript, vs.QuorumUp, vs.QuorumDown)
		for j := range vs.RealServers {
			rs := &vs.RealServers[j]
			notify(&checkSide, notifyScript, rs.NotifyUp, rs.NotifyDown)
			for k := range rs.Checkers {
				if m := rs.Checkers[k].Misc; m != nil && m.Path != nil {
					checkSide = append(checkSide, scriptRef{s: m.Path, kind: miscScript})
				}
			}
		}
	}

	// The notify FIFOs' readers: the global one runs once, on the side
	// that runs (gvsd is one process; keepalived's VRRP process starts it
	// when there is one).
	g := &c.Global
	switch {
	case len(c.Instances) > 0:
		notify(&vrrpSide, fifoScript, g.NotifyFIFOScript)
	default:
		notify(&checkSide, fifoScript, g.NotifyFIFOScript)
	}
	notify(&vrrpSide, fifoScript, g.VRRPNotifyFIFOScript)
	notify(&checkSide, fifoScript, g.LVSNotifyFIFOScript)

	// Users first, in the order keepalived reads them: the FIFOs' as
	// global_defs is read.
	for _, f := range []*Script{g.NotifyFIFO, g.VRRPNotifyFIFO, g.LVSNotifyFIFO} {
		if f != nil && f.Cmd != "" {
			r.setUser(scriptRef{s: f, kind: notifyFIFO})
		}
	}
	for _, ref := range append(append([]scriptRef{}, vrrpSide...), checkSide...) {
		r.setUser(ref)
	}
	// Then the security checks, VRRP's and the checkers', each only when
	// keepalived would run that side at all.
	if len(c.Instances) > 0 {
		r.secure(vrrpSide, file, "scripts")
	}
	if len(c.VirtualServers) > 0 {
		r.secure(checkSide, file, "check scripts")
	}
	return r.warns
}

type scriptResolver struct {
	c     *Config
	h     scriptHost
	warns []Warning

	defaultDone   bool
	defaultFailed bool
	defUID        uint32
	defGID        uint32
}

// logf records what keepalived logs (a warning gvsd -t prints; keepalived
// -t does not count it).
func (r *scriptResolver) logf(p Pos, format string, args ...any) {
	r.warns = append(r.warns, Warning{Pos: p, Msg: fmt.Sprintf(format, args...)})
}

// errorf records what keepalived -t reports as a configuration error.
func (r *scriptResolver) errorf(p Pos, format string, args ...any) {
	r.warns = append(r.warns, Warning{Pos: p, Msg: fmt.Sprintf(format, args...), KeepalivedError: true})
}

// lookup resolves a user and optional group to ids, logging keepalived's
// message when either does not exist.
func (r *scriptResolver) lookup(p Pos, name, group string) (uid, gid uint32, ok bool) {
	u, err := r.h.lookupUser(name)
	if err != nil {
		var unknown user.UnknownUserError
		if errors.As(err, &unknown) {
			r.logf(p, "Script user '%s' does not exist", name)
		} else {
			r.logf(p, "Unable to resolve script username '%s' - ignoring", name)
		}
		return 0, 0, false
	}
	uid64, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid64, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		r.logf(p, "Unable to resolve script username '%s' - ignoring", name)
		return 0, 0, false
	}
	if group != "" {
		g, err := r.h.lookupGroup(group)
		if err != nil {
			var unknown user.UnknownGroupError
			if errors.As(err, &unknown) {
				r.logf(p, "Script group '%s' does not exist", group)
			} else {
				r.logf(p, "Unable to resolve script group name '%s' - ignoring", group)
			}
			return 0, 0, false
		}
		if gid64, err = strconv.ParseUint(g.Gid, 10, 32); err != nil {
			r.logf(p, "Unable to resolve script group name '%s' - ignoring", group)
			return 0, 0, false
		}
	}
	return uint32(uid64), uint32(gid64), true
}

// defaultUser is who runs scripts that name no user; ok is false when
// that cannot be settled, and then no such script runs.
func (r *scriptResolver) defaultUser(p Pos) (uid, gid uint32, ok bool) {
	if !r.defaultDone {
		r.defaultDone = true
		g := &r.c.Global
		switch {
		case g.ScriptUser != "":
			if r.defUID, r.defGID, ok = r.lookup(g.ScriptUserPos, g.ScriptUser, g.ScriptGroup); !ok {
				r.errorf(g.ScriptUserPos, "Error setting global script uid/gid")
				r.defaultFailed = true
			}
		default:
			r.defUID, r.defGID = r.h.euid, r.h.egid
			if uid, gid, ok := r.lookup(p, DefaultScriptUser, ""); ok {
				r.defUID, r.defGID = uid, gid
			} else if g.EnableScriptSecurity {
				r.errorf(p, "Unable to set default user %s for script", DefaultScriptUser)
				r.defaultFailed = true
			}
		}
	}
	return r.defUID, r.defGID, !r.defaultFailed
}

// setUser settles who runs ref's script, or disables it.
func (r *scriptResolver) setUser(ref scriptRef) {
	s := ref.s
	var ok bool
	if s.User != "" {
		if s.UID, s.GID, ok = r.lookup(s.Pos, s.User, s.Group); ok {
			return
		}
		s.Disabled = fmt.Sprintf("script user %s", s.User)
		if s.Group != "" {
			s.Disabled += " or group " + s.Group
		}
		s.Disabled += " does not exist"
		switch ref.kind {
		case trackScript:
			r.errorf(s.Pos, "Unable to set uid/gid for script %s", cmdStr(s))
			r.untracked(ref.name)
		case miscScript:
			r.errorf(s.Pos, "Failed to set uid/gid for misc checker script %s - removing", cmdStr(s))
		case notifyFIFO:
			r.logf(s.Pos, "Invalid user/group for fifo %s - ignoring", s.Cmd)
		default:
			r.logf(s.Pos, "Invalid user/group for %s script %s - ignoring", ref.kind.word(), s.word0())
		}
		return
	}
	if s.UID, s.GID, ok = r.defaultUser(s.Pos); ok {
		return
	}
	s.Disabled = "no default script user"
	switch ref.kind {
	case trackScript:
		r.errorf(s.Pos, "Unable to set default user for vrrp script %s - removing", ref.name)
		r.untracked(ref.name)
	case miscScript:
		r.errorf(s.Pos, "Unable to set default user for misc script %s - removing", cmdStr(s))
	case notifyFIFO:
		r.logf(s.Pos, "Failed to set default user for fifo %s - ignoring", s.Cmd)
	default:
		r.logf(s.Pos, "Failed to set default user for %s script %s - ignoring", ref.kind.word(), s.word0())
	}
}

// untracked reports, as keepalived does, the instances and groups that
// track a vrrp_script removed while reading the configuration.
func (r *scriptResolver) untracked(name string) {
	for _, g := range r.c.SyncGroups {
		for _, t := range g.TrackScripts {
			if t.Name == name {
				r.errorf(g.Pos, "(%s) track script %s not found, ignoring...", g.Name, name)
			}
		}
	}
	for _, v := range r.c.Instances {
		for _, t := range v.TrackScripts {
			if t.Name == name {
				r.errorf(v.Pos, "(%s) track script %s not found, ignoring...", v.Name, name)
			}
		}
	}
}

// secure checks one side's scripts (VRRP's or the checkers') and
// disables the ones that must not run.
func (r *scriptResolver) secure(refs []scriptRef, file, what string) {
	security := r.c.Global.EnableScriptSecurity
	all := 0
	for _, ref := range refs {
		s := ref.s
		if s.Disabled != "" {
			continue
		}
		flags := r.checkSecure(s, security)
		all |= flags
		switch {
		case flags&scInhibit != 0:
			s.Disabled = "insecure"
			if flags&scInsecure == 0 {
				s.Disabled = "not a regular file"
			}
		case flags&scNotFound != 0:
			s.Disabled = "not found or not accessible"
		case flags&scExecutable == 0 && (ref.kind == notifyScript || ref.kind == quorumScript || ref.kind == fifoScript || flags&scSystem == 0):
			s.Disabled = "not executable"
		default:
			continue
		}
		switch ref.kind {
		case trackScript:
			if flags&scInhibit != 0 {
				r.errorf(s.Pos, "Disabling track script %s due to insecure", ref.name)
			} else if flags&scNotFound != 0 {
				r.errorf(s.Pos, "Disabling track script %s since not found/accessible", ref.name)
			}
		case miscScript:
			if flags&scInhibit != 0 {
				r.logf(s.Pos, "Disabling misc script %s due to insecure", cmdStr(s))
			} else if flags&scNotFound != 0 {
				r.logf(s.Pos, "Disabling misc script %s since not found/accessible", cmdStr(s))
			}
		}
	}
	if !security && all&scIsScript != 0 {
		msg := "SECURITY VIOLATION - " + what + " are being executed but script_security not enabled."
		if all&scInsecure != 0 {
			msg += " There are insecure scripts."
		}
		r.warns = append(r.warns, Warning{Pos: Pos{File: file}, Msg: msg, KeepalivedError: true, Security: true})
	}
}

// checkSecure is keepalived's check_script_secure: it finds the script
// (a path search for a bare name), checks that its user may reach and
// execute it, and, when it runs with root's privileges, that no non-root
// user could change it or a directory above it.
func (r *scriptResolver) checkSecure(s *Script, security bool) int {
	p := s.Pos
	name := s.word0()
	if rest, ok := strings.CutPrefix(name, "<"); ok && strings.HasPrefix(strings.TrimLeft(rest, " \t"), "/") {
		return scSystem
	}
	if !strings.Contains(name, "/") {
		found, denied := r.pathSearch(name, s.UID, s.GID)
		switch {
		case found != "":
			r.logf(p, "WARNING - script `%s` resolved by path search to `%s`. Please specify full path.", name, found)
			name = found
		case denied:
			r.logf(p, "Permissions failure for script %s in path - disabling", name)
			return scNotFound
		default:
			r.logf(p, "Cannot find script %s in path - disabling", name)
			return scNotFound
		}
	}
	real, err := realpathAs(name, s.UID, s.GID)
	if err != nil {
		r.logf(p, "Script %s cannot be accessed - %s", name, strerror(err))
		return scNotFound
	}
	// keepalived keeps the name the script was called by when a symlink
	// leads to the same file under another name, and checks both paths.
	checked, realFile := real, ""
	if filepath.Base(real) != filepath.Base(name) {
		alias := filepath.Join(filepath.Dir(real), filepath.Base(name))
		if a, b := statOf(alias), statOf(real); a != nil && b != nil && a.Dev == b.Dev && a.Ino == b.Ino {
			checked, realFile = alias, real
		}
	}
	st := statOf(real)
	if st == nil {
		r.logf(p, "Unable to access script `%s` - disabling", checked)
		return scNotFound
	}
	flags := scIsScript
	protect := false
	if isExecutable(st, s.UID, s.GID) {
		flags |= scExecutable
		protect = s.UID == 0 || s.GID == 0 ||
			(st.Uid == 0 && st.Mode&syscall.S_IXUSR != 0 && st.Mode&syscall.S_ISUID != 0) ||
			(st.Gid == 0 && st.Mode&syscall.S_IXGRP != 0 && st.Mode&syscall.S_ISGID != 0)
	} else {
		r.logf(p, "WARNING - script '%s' is not executable for uid:gid %d:%d - disabling.", checked, s.UID, s.GID)
	}
	if !protect {
		return flags
	}
	flags |= r.checkPath(p, checked, security)
	if realFile != "" {
		flags |= r.checkPath(p, realFile, security)
	}
	return flags
}

// checkPath is keepalived's check_security: every directory from / down
// to the file must be root's and not writable by a non-root group or by
// all (a sticky directory may be), and so must the file.
func (r *scriptResolver) checkPath(p Pos, path string, security bool) int {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	cur := "/"
	for i := -1; i < len(parts); i++ {
		if i >= 0 {
			cur = filepath.Join(cur, parts[i])
		}
		last := i == len(parts)-1
		var st syscall.Stat_t
		if err := syscall.Lstat(cur, &st); err != nil {
			var en syscall.Errno
			if errors.As(err, &en) && (en == syscall.EACCES || en == syscall.ELOOP || en == syscall.ENOENT || en == syscall.ENOTDIR) {
				r.logf(p, "check_script_secure could not find script '%s' - disabling", path)
			} else {
				r.logf(p, "check_script_secure('%s') returned errno %d - %s - disabling", path, int(en), strerror(err))
			}
			return scNotFound
		}
		typ := st.Mode & syscall.S_IFMT
		isDir, isReg := typ == syscall.S_IFDIR, typ == syscall.S_IFREG
		if (!last && !isDir) || (last && !isReg && typ != syscall.S_IFLNK) {
			r.logf(p, "Wrong file type found in script path '%s'.", path)
			return scInhibit
		}
		if st.Uid != 0 || (((isDir && st.Mode&syscall.S_ISVTX == 0) || isReg) &&
			((st.Gid != 0 && st.Mode&syscall.S_IWGRP != 0) || st.Mode&syscall.S_IWOTH != 0)) {
			if security {
				r.logf(p, "Unsafe permissions found for script '%s' - disabling.", path)
				return scInsecure | scInhibit
			}
			r.logf(p, "Unsafe permissions found for script '%s'.", path)
			return scInsecure
		}
	}
	return 0
}

// pathSearch finds a bare script name in $PATH as execve's search would
// for uid:gid; denied is set when a file was found that they may not run.
func (r *scriptResolver) pathSearch(name string, uid, gid uint32) (found string, denied bool) {
	for _, dir := range strings.Split(r.h.path, ":") {
		p := name
		if dir != "" {
			p = dir + "/" + name
		}
		st := statOf(p)
		if st == nil {
			continue
		}
		if st.Mode&syscall.S_IFMT == syscall.S_IFREG && isExecutable(st, uid, gid) {
			return p, false
		}
		denied = true
	}
	return "", denied
}

// realpathAs resolves name to an absolute path without symbolic links,
// failing with EACCES where uid:gid (with gid as their only group) may
// not search a directory on the way.
func realpathAs(name string, uid, gid uint32) (string, error) {
	abs, err := filepath.Abs(name)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", err
	}
	if uid == 0 {
		return real, nil
	}
	for _, d := range []string{abs, real} {
		for dir := filepath.Dir(d); ; dir = filepath.Dir(dir) {
			if st := statOf(dir); st != nil && !mayAccess(st, uid, gid, syscall.S_IXUSR, syscall.S_IXGRP, syscall.S_IXOTH) {
				return "", &fs.PathError{Op: "realpath", Path: name, Err: syscall.EACCES}
			}
			if dir == "/" || dir == "." {
				break
			}
		}
	}
	return real, nil
}

// isExecutable is keepalived's test that uid:gid may execute a file
// (root: any execute bit).
func isExecutable(st *syscall.Stat_t, uid, gid uint32) bool {
	if uid == 0 {
		return st.Mode&(syscall.S_IXUSR|syscall.S_IXGRP|syscall.S_IXOTH) != 0
	}
	return mayAccess(st, uid, gid, syscall.S_IXUSR, syscall.S_IXGRP, syscall.S_IXOTH)
}

func mayAccess(st *syscall.Stat_t, uid, gid uint32, usr, grp, oth uint32) bool {
	switch {
	case uid == 0:
		return true
	case uid == st.Uid:
		return st.Mode&usr != 0
	case gid == st.Gid:
		return st.Mode&grp != 0
	default:
		return st.Mode&oth != 0
	}
}

func statOf(path string) *syscall.Stat_t {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return nil
	}
	return &st
}

// strerror is err's errno as glibc's strerror words it ("No such file or
// directory").
func strerror(err error) string {
	var en syscall.Errno
	msg := err.Error()
	if errors.As(err, &en) {
		msg = en.Error()
	}
	if msg == "" {
		return msg
	}
	rs := []rune(msg)
	rs[0] = unicode.ToUpper(rs[0])
	return string(rs)
}

// word0 is the program the script line starts.
func (s *Script) word0() string {
	if a := s.Args(); len(a) > 0 {
		return a[0]
	}
	return ""
}

// cmdStr is a script line as keepalived prints it: each word in single
// quotes.
func cmdStr(s *Script) string {
	args := s.Args()
	for i, a := range args {
		if i > 0 || (!strings.HasPrefix(a, "<") && !strings.HasPrefix(a, ">")) {
			args[i] = "'" + a + "'"
		}
	}
	return strings.Join(args, " ")
}

func (k scriptKind) word() string {
	switch k {
	case quorumScript:
		return "quorum"
	case fifoScript:
		return "notify_fifo"
	}
	return "notify"
}
