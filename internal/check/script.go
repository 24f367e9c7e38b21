package check

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"os/user"
	"strconv"
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

// command builds a script's process in its own process group, as user
// when set.
func command(ctx context.Context, line, username string) (*exec.Cmd, error) {
	argv := splitCommand(line)
	if len(argv) == 0 {
		return nil, errors.New("empty script")
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if username != "" {
		u, err := user.Lookup(username)
		if err != nil {
			return nil, fmt.Errorf("script user: %w", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// On timeout, end the whole group: SIGTERM, then SIGKILL 2s later.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 2 * time.Second
	return cmd, nil
}

// probeMisc runs misc_path. Exit 0 passes; with misc_dynamic, exit 2..255
// passes too and sets the weight to the status minus 2; anything else,
// a signal or the misc_timeout fails.
func (c *Checker) probeMisc(ctx context.Context) (int, error) {
	cmd, err := command(ctx, c.spec.MiscPath, c.spec.User)
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

// runScript runs a notify or quorum script line and waits for it, at most
// timeout.
func runScript(ctx context.Context, line string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd, err := command(ctx, line, "")
	if err != nil {
		return err
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w: %s", line, err, strings.TrimSpace(string(out)))
	}
	return nil
}
