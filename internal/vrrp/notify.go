package vrrp

import (
	"context"
	"log/slog"
	"os/exec"
	"time"
)

// NotifyTimeout bounds how long one notify script may run.
const NotifyTimeout = 30 * time.Second

// notifier runs notify scripts one after another, in the order of the
// state changes, without blocking the state machine.
type notifier struct {
	log  *slog.Logger
	jobs chan []string
	done chan struct{}
}

func newNotifier(log *slog.Logger) *notifier {
	n := &notifier{log: log, jobs: make(chan []string, 64), done: make(chan struct{})}
	go func() {
		defer close(n.done)
		for job := range n.jobs {
			runNotify(n.log, job[0], job[1:]...)
		}
	}()
	return n
}

// run queues script with args; an empty script is skipped.
func (n *notifier) run(script string, args ...string) {
	if script == "" {
		return
	}
	select {
	case n.jobs <- append([]string{script}, args...):
	default:
		n.log.Warn("notify script skipped: too many queued", "script", script)
	}
}

// close waits for the queued scripts.
func (n *notifier) close() {
	close(n.jobs)
	<-n.done
}

// runNotify runs script through /bin/sh with args appended, as keepalived
// appends "INSTANCE name state priority" to a notify script.
func runNotify(log *slog.Logger, script string, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), NotifyTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", script + ` "$@"`, "sh"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		log.Warn("notify script failed", "script", script, "args", args, "err", err, "output", string(out))
		return
	}
	log.Debug("notify script ran", "script", script, "args", args)
}
