package vrrp

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// ParamMatch says how a vrrp_track_process's parameters are compared with
// a process's arguments.
type ParamMatch string

// Parameter matching, as keepalived's param_match.
const (
	// ParamExact: the arguments are the parameters, no more, no fewer.
	ParamExact ParamMatch = "exact"
	// ParamPartial: the arguments start with the parameters, whole words.
	ParamPartial ParamMatch = "partial"
	// ParamInitial: the arguments start with the parameters, the last
	// of which may be the start of a word.
	ParamInitial ParamMatch = "initial"
)

// commLen is the longest comm the kernel keeps (TASK_COMM_LEN - 1).
const commLen = 15

// DefaultProcessPoll is how often RunProcess scans /proc by default.
// keepalived follows process starts and exits with the netlink proc
// connector; GVS polls.
const DefaultProcessPoll = time.Second

// TrackProcess is a vrrp_track_process block: how many running processes
// match, against a quorum.
type TrackProcess struct {
	Name string
	// Process is the name compared with a process's comm (what ps and
	// pgrep show; only its first 15 bytes count), or with FullCommand
	// the first word of its command line (argv[0], often a path).
	Process string
	// Params, with FullCommand, are compared with the arguments after
	// the first as ParamMatch says; with no Params and no ParamMatch any
	// arguments match.
	Params      []string
	ParamMatch  ParamMatch
	FullCommand bool
	// Quorum is the fewest matching processes that pass (default 1), and
	// QuorumMax the most (negative: no maximum).
	Quorum    int
	QuorumMax int
	// Weight as a vrrp_script's: 0 means that losing the quorum puts the
	// instance in FAULT.
	Weight int
	// TerminateDelay is how long the quorum must stay lost before the
	// tracker fails, ForkDelay how long it must stay regained before it
	// passes again (keepalived's delay sets both).
	TerminateDelay time.Duration
	ForkDelay      time.Duration
}

// Matches reports whether a process with that comm and command line
// (argv) is one the tracker counts.
func (p *TrackProcess) Matches(comm string, argv []string) bool {
	full := p.FullCommand || p.Params != nil || p.ParamMatch != ""
	if !full {
		name := p.Process
		if len(name) > commLen {
			name = name[:commLen]
		}
		return comm == name
	}
	if len(argv) == 0 || argv[0] != p.Process {
		return false
	}
	args, want := argv[1:], p.Params
	switch p.ParamMatch {
	case "":
		return want == nil || slices.Equal(args, want)
	case ParamExact:
		return slices.Equal(args, want)
	case ParamPartial:
		return len(args) >= len(want) && slices.Equal(args[:len(want)], want)
	case ParamInitial:
		if len(want) == 0 {
			return true
		}
		n := len(want) - 1
		return len(args) > n && slices.Equal(args[:n], want[:n]) && strings.HasPrefix(args[n], want[n])
	}
	return false
}

// Count is how many processes under procRoot (normally /proc) match.
// Zombies, whose command line is gone, do not count.
func (p *TrackProcess) Count(procRoot string) (int, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return 0, fmt.Errorf("vrrp_track_process %s: %w", p.Name, err)
	}
	n := 0
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		dir := filepath.Join(procRoot, e.Name())
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue // gone, a zombie or a kernel thread
		}
		comm, err := os.ReadFile(filepath.Join(dir, "comm"))
		if err != nil {
			continue
		}
		argv := strings.Split(string(bytes.TrimSuffix(cmdline, []byte{0})), "\x00")
		if p.Matches(strings.TrimSuffix(string(comm), "\n"), argv) {
			n++
		}
	}
	return n, nil
}

// Equal reports whether p and o track the same processes alike.
func (p *TrackProcess) Equal(o *TrackProcess) bool {
	a, b := *p, *o
	if !slices.Equal(a.Params, b.Params) {
		return false
	}
	a.Params, b.Params = nil, nil
	return a.Name == b.Name && a.Process == b.Process && a.ParamMatch == b.ParamMatch && a.FullCommand == b.FullCommand &&
		a.Quorum == b.Quorum && a.QuorumMax == b.QuorumMax && a.Weight == b.Weight &&
		a.TerminateDelay == b.TerminateDelay && a.ForkDelay == b.ForkDelay
}

// RunProcess scans /proc every poll (DefaultProcessPoll when 0) until ctx
// ends and calls report with whether the number of processes matching p
// is within its quorum: the first result at once, then each change once
// it has lasted TerminateDelay (quorum lost) or ForkDelay (regained).
func RunProcess(ctx context.Context, log *slog.Logger, p TrackProcess, poll time.Duration, report func(ok bool)) {
	runProcess(ctx, log, p, "/proc", poll, report)
}

func runProcess(ctx context.Context, log *slog.Logger, p TrackProcess, procRoot string, poll time.Duration, report func(ok bool)) {
	if log == nil {
		log = slog.Default()
	}
	if poll <= 0 {
		poll = DefaultProcessPoll
	}
	var (
		known, result bool
		pending       bool      // the quorum differs from result
		since         time.Time // since when
	)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		n, err := p.Count(procRoot)
		if err != nil {
			log.Warn("vrrp_track_process scan failed", "error", err)
		}
		ok := n >= p.Quorum && (p.QuorumMax < 0 || n <= p.QuorumMax)
		now := time.Now()
		switch {
		case !known:
			known, result = true, ok
			log.Info("vrrp_track_process result", "process", p.Name, "running", n, "ok", ok)
			report(ok)
		case ok == result:
			pending = false
		default:
			if !pending {
				pending, since = true, now
			}
			delay := p.TerminateDelay
			if ok {
				delay = p.ForkDelay
			}
			if now.Sub(since) >= delay {
				pending, result = false, ok
				log.Info("vrrp_track_process result", "process", p.Name, "running", n, "ok", ok)
				report(ok)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
