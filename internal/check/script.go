package check

import (
	"context"
	"errors"
	"fmt"
	"github.com/gvs-lb/gvs/internal/script"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// splitCommand splits a keepalived script line into words: blanks
// separate words, single or double quotes keep blanks inside a word.
func splitCommand(line string) []string {
	var words []string
	var cur strings.Builder
	var quote rune
	inWord := false
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// command builds a script's process: in its own process group, as
// its user.
func command(ctx context.Context, sc script.Cmd) (*exec.Cmd, error) {
	argv := splitCommand(sc.Line)
	if len(argv) == 0 {
		return nil, errors.New("empty script")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = sc.SysProcAttr()
	// On timeout, end the whole group: SIGTERM, then SIGKILL 2s later.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Second
	return cmd, nil
}

// probeMisc runs misc_path. Exit 0 passes; with misc_dynamic, exit 2..255
// passes too and sets the weight to the status minus 2; anything else,
// a signal or the misc_timeout fails.
func (c *Checker) probeMisc(ctx context.Context) (int, error) {
	cmd, err := command(ctx, script.Cmd{Line: c.spec.MiscPath, RunAs: c.spec.MiscRunAs})
	if err != nil {
		return -1, err
	}
	err = cmd.Run()
	if ctx.Err() != nil {
		return -1, fmt.Errorf("script %s timed out", cmd.Path)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code := ee.ExitCode()
		if c.spec.MiscDynamic && code >= 2 && code <= 255 {
			return code - 2, nil
		}
		if code < 0 {
			return -1, fmt.Errorf("script %s killed by %s", cmd.Path, ee.ProcessState)
		}
		return -1, fmt.Errorf("script %s exited with status %d", cmd.Path, code)
	}
	if err != nil {
		return -1, fmt.Errorf("running script: %w", err)
	}
	return -1, nil
}

// runScript runs a notify or quorum script and waits for it, at most
// timeout.
func runScript(ctx context.Context, sc script.Cmd, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd, err := command(ctx, sc)
	if err != nil {
		return err
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", sc.Line, err, strings.TrimSpace(string(out)))
	}
	return nil
}
