package vrrp

import (
	"context"
	"log/slog"
	"os/exec"
	"time"
)

// RunScript runs the vrrp_script s every Interval until ctx ends and calls
// report with its result: the first result at once, then a change to
// success after Rise successes in a row and to failure after Fall
// failures in a row. A script fails when it exits non-zero or outlives
// Timeout.
func RunScript(ctx context.Context, log *slog.Logger, s TrackScript, report func(ok bool)) {
	if log == nil {
		log = slog.Default()
	}
	var (
		known  bool
		result bool
		run    int // successes (>0) or failures (<0) in a row
	)
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		ok := runCheck(ctx, s)
		if ctx.Err() != nil {
			return
		}
		switch {
		case ok && run >= 0:
			run++
		case ok:
			run = 1
		case !ok && run <= 0:
			run--
		default:
			run = -1
		}
		change := !known ||
			(!result && run >= s.Rise) ||
			(result && -run >= s.Fall)
		if change && (!known || result != ok) {
			known, result = true, ok
			log.Info("vrrp_script result", "script", s.Name, "ok", ok)
			report(ok)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func runCheck(ctx context.Context, s TrackScript) bool {
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", s.Script.Line)
	cmd.SysProcAttr = s.Script.SysProcAttr()
	cmd.WaitDelay = time.Second
	return cmd.Run() == nil
}
