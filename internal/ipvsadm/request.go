// Package ipvsadm is gvsadm: ipvsadm 1.31's command line, output and
// save/restore format on top of gvsd's admin API. Parse turns an argv into a
// Request, the Write* functions turn table data into ipvsadm's exact bytes,
// and Run ties them to a Client and the process's streams.
package ipvsadm

import (
	"fmt"

	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Cmd is the command of an ipvsadm invocation, numbered as ipvsadm numbers
// them (their order indexes the option table).
type Cmd int

// Commands.
const (
	CmdNone        Cmd = iota
	CmdAdd             // -A
	CmdEdit            // -E
	CmdDel             // -D
	CmdFlush           // -C
	CmdList            // -L, -l
	CmdAddDest         // -a
	CmdDelDest         // -d
	CmdEditDest        // -e
	CmdTimeout         // --set
	CmdStartDaemon     // --start-daemon
	CmdStopDaemon      // --stop-daemon
	CmdRestore         // -R
	CmdSave            // -S
	CmdZero            // -Z
	CmdHelp            // -h
	CmdVersion         // -v
)

// cmdNames are ipvsadm's names for the commands, used in its messages.
var cmdNames = [...]string{"", "add-service", "edit-service", "delete-service", "flush", "list",
	"add-server", "delete-server", "edit-server", "set", "start-daemon", "stop-daemon",
	"restore", "save", "zero", "help", "version"}

func (c Cmd) String() string {
	if c >= 0 && int(c) < len(cmdNames) {
		return cmdNames[c]
	}
	return fmt.Sprintf("cmd(%d)", int(c))
}

// Format selects what a listing shows, as ipvsadm's FMT_* flags.
type Format uint

// Listing formats.
const (
	FmtNumeric        Format = 1 << iota // -n
	FmtRule                              // -S: rules instead of a table
	FmtStats                             // --stats
	FmtRate                              // --rate
	FmtThresholds                        // --thresholds
	FmtPersistentConn                    // --persistent-conn
	FmtNoSort                            // --nosort
	FmtExact                             // --exact
	FmtTunInfo                           // --tun-info
)

// ListKind is what -L lists.
type ListKind int

// What -L lists.
const (
	ListAll     ListKind = iota // every service
	ListService                 // -L -t/-u/-f: one service
	ListConns                   // -L -c
	ListTimeout                 // -L --timeout
	ListDaemon                  // -L --daemon
)

// Request is one parsed ipvsadm command line.
type Request struct {
	Cmd Cmd
	// Change is the table command of -A -E -D -C -a -e -d -Z --set; nil for
	// the others.
	Change *ipvs.Command
	// Service is the virtual service named on the line (-t -u --sctp-service
	// -f), with HasService telling whether one was.
	Service    ipvs.Service
	HasService bool
	Format     Format
	List       ListKind
	// DaemonState is "master" or "backup" for --start-daemon/--stop-daemon.
	DaemonState string
	// Daemon is --start-daemon's settings (zero values: the kernel's
	// defaults).
	Daemon wire.SyncDaemon
}

// Error is a command line ipvsadm refuses: Msg is its message (printed on
// stderr with a newline) and Code its exit status.
type Error struct {
	Msg  string
	Code int
}

func (e *Error) Error() string { return e.Msg }

// Exit statuses, as ipvsadm's.
const (
	ExitOK      = 0
	ExitFailure = 1   // a listing that failed
	ExitUsage   = 2   // fail(2, ...): a bad command line
	ExitKernel  = 255 // -1: refused by the table, or popt's errors
)
