package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// daemon is one gvsd process and the gvsadm that talks to it.
type daemon struct {
	cmd    *exec.Cmd
	socket string
	gvsadm string
	done   chan struct{} // closed when gvsd has exited

	events chan event // checker and pool lines of gvsd's log

	mu   sync.Mutex
	tail []string // gvsd's last log lines, for errors
}

// event is a log line of interest and when the benchmark read it. gvsd
// writes each log record with one write(2) to a pipe, so the read time is
// within microseconds of the moment gvsd logged it.
type event struct {
	msg  string
	at   time.Time
	line string
}

// Log messages the flap is timed with (internal/check): the checker logs
// its verdict, then the manager changes the pool (the director's table
// and the engine) and logs the real server's new state.
const (
	msgCheckFailed    = "check failed"
	msgCheckSucceeded = "check succeeded"
	msgServerDown     = "real server down"
	msgServerUp       = "real server up"
)

// startDaemon starts gvsd (prefix is put before it: `ip netns exec NS`)
// and waits until its admin API answers.
func startDaemon(ctx context.Context, gvsd, gvsadm, socket string, prefix, args []string) (*daemon, error) {
	argv := append(append(append([]string{}, prefix...), gvsd), args...)
	d := &daemon{socket: socket, gvsadm: gvsadm, done: make(chan struct{}), events: make(chan event, 256)}
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Env = append(os.Environ(), "GVS_SOCKET="+socket)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting gvsd: %w", err)
	}
	logDone := make(chan struct{})
	go func() { d.readLog(stderr); close(logDone) }()
	go func() { <-logDone; d.cmd.Wait(); close(d.done) }()
	deadline := time.Now().Add(cmdTimeout)
	for {
		if _, _, err := d.run(ctx, nil, "-L", "--timeout"); err == nil {
			return d, nil
		}
		select {
		case <-d.done:
			return nil, fmt.Errorf("gvsd exited at start (%v):\n%s", d.cmd.ProcessState, d.logTail())
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("gvsd's admin API did not answer on %s within %v:\n%s", socket, cmdTimeout, d.logTail())
		}
	}
}

func (d *daemon) readLog(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		at, line := time.Now(), sc.Text()
		d.mu.Lock()
		d.tail = append(d.tail, line)
		if len(d.tail) > 30 {
			d.tail = d.tail[len(d.tail)-30:]
		}
		d.mu.Unlock()
		for _, m := range []string{msgCheckFailed, msgCheckSucceeded, msgServerDown, msgServerUp} {
			if strings.Contains(line, `msg="`+m+`"`) {
				select {
				case d.events <- event{msg: m, at: at, line: line}:
				default: // nobody is waiting: a backlog is not kept
				}
			}
		}
	}
}

func (d *daemon) logTail() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.tail, "\n")
}

// run runs gvsadm with args against this gvsd and times it, from start to
// exit.
func (d *daemon) run(ctx context.Context, stdin []byte, args ...string) (string, time.Duration, error) {
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, d.gvsadm, args...)
	cmd.Env = append(os.Environ(), "GVS_SOCKET="+d.socket)
	cmd.Stdin = bytes.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return out.String(), took, fmt.Errorf("gvsadm %s: %w: %s", strings.Join(args, " "), err, firstLines(errb.String(), 5))
	}
	if errb.Len() > 0 { // gvsadm -R goes on after a refused line; the benchmark does not
		return out.String(), took, fmt.Errorf("gvsadm %s: %s", strings.Join(args, " "), firstLines(errb.String(), 5))
	}
	return out.String(), took, nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines[n] = "…"
	}
	return strings.Join(lines, "\n")
}

// drain forgets the events read so far.
func (d *daemon) drain() {
	for {
		select {
		case <-d.events:
		default:
			return
		}
	}
}

// wait returns the time of the next log line with msg.
func (d *daemon) wait(ctx context.Context, msg string) (time.Time, error) {
	for {
		select {
		case ev := <-d.events:
			if ev.msg == msg {
				return ev.at, nil
			}
		case <-d.done:
			return time.Time{}, fmt.Errorf("gvsd exited waiting for %q:\n%s", msg, d.logTail())
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("no %q in gvsd's log: %w", msg, ctx.Err())
		}
	}
}

// rss is gvsd's resident memory in bytes.
func (d *daemon) rss() (uint64, error) { return rssOf(d.cmd.Process.Pid) }

// rssOf is a process's resident memory in bytes (VmRSS of
// /proc/PID/status).
func rssOf(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			kb, err := strconv.ParseUint(f[1], 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

// stop ends gvsd by its pid: SIGTERM, then SIGKILL to its process group
// after 15 s.
func (d *daemon) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	pid := d.cmd.Process.Pid
	syscall.Kill(pid, syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(15 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-d.done
	}
}
