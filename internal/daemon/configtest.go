package daemon

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/gvs-lb/gvs/internal/config"
)

// DefaultConfigFile is keepalived's default configuration path.
const DefaultConfigFile = "/etc/keepalived/keepalived.conf"

// ConfigTest checks a keepalived.conf as `keepalived -t` does (gvsd -t),
// prints what it found to out and returns keepalived's exit code.
func ConfigTest(path string, out io.Writer) int {
	if path == "" {
		path = DefaultConfigFile
	}
	_, warnings, err := checkConfig(path)
	for _, w := range warnings {
		fmt.Fprintf(out, "%s: warning: %s\n", w.Pos, w.Msg)
	}
	if err != nil {
		fmt.Fprintln(out, err)
		return config.TestExitCode(err)
	}
	fmt.Fprintf(out, "%s: configuration OK\n", path)
	return config.ExitOK
}

// checkConfig is the configuration test: gvsd -t reports its result and a
// reload (SIGHUP) applies the configuration only when it passes, so a
// reload refuses exactly what -t refuses. It loads the file and plans it as
// gvsd would run it. err is nil when the test passes (exit 0); else it is
// what config.TestExitCode maps to the exit code, with file:line in each
// message. The warnings are the complaints that do not fail the test.
//
// The lines keepalived's own config test counts as errors although
// keepalived runs with them (Warning.KeepalivedError: a block never
// closed, as in a file cut short while it was written) fail the test too.
// gvsd still starts with them, as keepalived does, but never reloads
// them.
func checkConfig(path string) (*config.Config, []config.Warning, error) {
	cfg, all, err := config.Load(path)
	var warnings []config.Warning
	var strict config.Errors
	for _, w := range all {
		if w.KeepalivedError {
			strict = append(strict, &config.Error{File: w.Pos.File, Line: w.Pos.Line, Msg: w.Msg})
			continue
		}
		warnings = append(warnings, w)
	}
	if err != nil {
		return nil, warnings, err
	}
	if len(strict) > 0 {
		return nil, warnings, strict
	}
	// What gvsd itself would refuse at start. Warnings of the planning
	// are logged when the configuration is applied.
	quiet := slog.New(slog.DiscardHandler)
	if _, _, err := planLVS(cfg, quiet); err != nil {
		return nil, warnings, err
	}
	if _, err := planVRRP(cfg, quiet); err != nil {
		return nil, warnings, err
	}
	return cfg, warnings, nil
}
