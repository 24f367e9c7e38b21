package vrrp

import (
	"context"
	"log/slog"
	"os/exec"
	"time"

	"github.com/gvs-lb/gvs/internal/script"
)

// NotifyTimeout bounds how long one notify script may run.
const NotifyTimeout = 30 * time.Second

// notifyJob is a notify script and the arguments it gets.
type notifyJob struct {
	sc   script.Cmd
	args []string
}

// notifier runs notify scripts one after another, in the order of the
// state changes, without blocking the state machine.
type notifier struct {
	log  *slog.Logger
	jobs chan notifyJob
	done chan struct{}
}

func newNotifier(log *slog.Logger) *notifier {
	n := &notifier{log: log, jobs: make(chan notifyJob, 64), done: make(chan struct{})}
	go func() {
		defer close(n.done)
		for job := range n.jobs {
			runNotify(n.log, job.sc, job.args...)
		}
	}()
	return n
}

// run queues sc with args; an empty script is skipped.
func (n *notifier) run(sc script.Cmd, args ...string) {
	if sc.IsZero() {
		return
	}
	select {
	case n.jobs <- notifyJob{sc, args}:
	default:
		n.log.Warn("notify script skipped: too many queued", "script", sc.Line)
	}
}

// close waits for the queued scripts.
func (n *notifier) close() {
	close(n.jobs)
	<-n.done
}

// runNotify runs sc through /bin/sh, as its user, with args appended, as
// keepalived appends "INSTANCE name state priority" to a notify script.
func runNotify(log *slog.Logger, sc script.Cmd, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), NotifyTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/bin/sh", append([]string{"-c", sc.Line + ` "$@"`, "sh"}, args...)...)
	cmd.SysProcAttr = sc.SysProcAttr()
	out, err := cmd.CombinedOutput()
	if err != nil {
		log.Warn("notify script failed", "script", sc.Line, "args", args, "err", err, "output", string(out))
		return
	}
	log.Debug("notify script ran", "script", sc.Line, "args", args)
}
