package config

import (
	"errors"
	"fmt"
	"strings"
)

// Pos is where a configuration line is: the file as it was named (the path
// given to Load, or an include's path) and a 1-based line number.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
}

// String is "file:line", or "file" for what concerns the whole file.
func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Error is a configuration error at a line: Error() is "file:line: msg".
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Errors is every configuration error found, in file order. Parse returns
// an Errors when it found more than one problem; errors.As finds each
// *Error in it.
type Errors []*Error

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap gives errors.Is and errors.As every error.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

// Warning is something keepalived would accept with a complaint: a
// deprecated spelling, a keyword GVS reads but does not act on, a missing
// closing brace at the end of a file. The configuration still loads.
type Warning struct {
	Pos
	Msg string
	// KeepalivedError is set when keepalived 2.2.7's config test (-t)
	// reports this as a configuration error (exit ExitConfigTest) although
	// it carries on; GVS only warns. A strict check can count these.
	KeepalivedError bool
	// Security is set on keepalived's script security errors ("SECURITY
	// VIOLATION - scripts are being executed but script_security not
	// enabled."): keepalived -t exits ExitConfigTestSecurity for them.
	Security bool
}

func (w Warning) String() string { return fmt.Sprintf("%s: %s", w.Pos, w.Msg) }

// Exit codes of keepalived (its enum exit_code), which `gvsd -t` uses the
// same way: a configuration test exits ExitOK, ExitConfig when a file
// cannot be read or the configuration cannot work at all, ExitConfigTest
// for any other configuration error, and ExitConfigTestSecurity when only
// script security checks failed.
const (
	ExitOK                 = 0 // KEEPALIVED_EXIT_OK
	ExitNoMemory           = 1 // KEEPALIVED_EXIT_NO_MEMORY
	ExitProgramError       = 2 // KEEPALIVED_EXIT_PROGRAM_ERROR
	ExitFatal              = 3 // KEEPALIVED_EXIT_FATAL
	ExitConfig             = 4 // KEEPALIVED_EXIT_CONFIG: file not found, bad interface, fatal config
	ExitConfigTest         = 5 // KEEPALIVED_EXIT_CONFIG_TEST: -t found configuration errors
	ExitConfigTestSecurity = 6 // KEEPALIVED_EXIT_CONFIG_TEST_SECURITY: -t found script security errors
	ExitNoConfig           = 7 // KEEPALIVED_EXIT_NO_CONFIG
)

// TestExitCode is the exit code of a configuration test (`gvsd -t`) that
// ended with err, as keepalived -t chooses it: ExitOK for nil, ExitConfig
// when the configuration file could not be read, ExitConfigTest for
// configuration errors.
func TestExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	var fe *FileError
	if errors.As(err, &fe) {
		return ExitConfig
	}
	return ExitConfigTest
}

// FileError is a configuration file that could not be read.
type FileError struct {
	Path string
	Err  error
}

func (e *FileError) Error() string {
	return fmt.Sprintf("cannot read configuration file %s: %v", e.Path, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }
