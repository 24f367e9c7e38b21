package ipvsadm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gvs-lb/gvs/internal/api/client"
	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Client is the part of gvsd's admin API gvsadm uses; *client.Client is one.
type Client interface {
	Exec(ctx context.Context, cmds []ipvs.Command) error
	Services(ctx context.Context) ([]ipvs.ServiceStatus, error)
	Service(ctx context.Context, key ipvs.ServiceKey) (ipvs.ServiceStatus, bool, error)
	Conns(ctx context.Context) ([]ipvs.Conn, error)
	Timeouts(ctx context.Context) (ipvs.Timeouts, error)
	Info(ctx context.Context) (wire.Info, error)
	Socket() string
}

// Run is gvsadm's main: it parses args (args[0] is the program name), talks
// to gvsd through c, writes what ipvsadm would write and returns the exit
// status.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, c Client) int {
	if len(args) > 1 && args[1] == "realserver" {
		return RunRealServer(args[2:], stdin, stdout, stderr)
	}
	if dc, ok := c.(DaemonClient); ok && len(args) > 1 && args[1] == "daemons" {
		return RunState(ctx, args[1], args[2:], stdout, stderr, daemonsState{dc, c.Socket()})
	}
	if sc, ok := c.(StateClient); ok && len(args) > 1 && stateCommands[args[1]] != nil {
		return RunState(ctx, args[1], args[2:], stdout, stderr, sc)
	}
	r := &runner{ctx: ctx, prog: ProgName(args), stdin: stdin, stdout: stdout, stderr: stderr, c: c}
	return r.run(args, false)
}

type runner struct {
	ctx            context.Context
	prog           string
	stdin          io.Reader
	stdout, stderr io.Writer
	c              Client
}

func (r *runner) run(args []string, restoring bool) int {
	req, err := Parse(args)
	if err != nil {
		return r.fail(err)
	}
	switch req.Cmd {
	case CmdHelp:
		WriteHelp(r.stdout, r.prog)
		return ExitOK
	case CmdVersion:
		WriteVersion(r.stdout, r.prog)
		return ExitOK
	case CmdRestore:
		if restoring {
			return r.fail(tryHelp(r.prog))
		}
		return r.restore()
	case CmdStartDaemon, CmdStopDaemon:
		return r.daemon(req)
	case CmdList, CmdSave:
		return r.list(req)
	}
	if err := r.c.Exec(r.ctx, []ipvs.Command{*req.Change}); err != nil {
		return r.fail(err)
	}
	return ExitOK
}

// fail prints an error as ipvsadm would and returns the exit status.
func (r *runner) fail(err error) int {
	var ue *Error
	var ce *wire.CommandError
	switch {
	case errors.As(err, &ue):
		fmt.Fprintln(r.stderr, ue.Msg)
		return ue.Code
	case errors.As(err, &ce):
		fmt.Fprintln(r.stderr, ce.Msg)
		return ExitKernel
	case errors.Is(err, client.ErrNotRunning):
		fmt.Fprintf(r.stderr, "%s: gvsd is not running: nothing answers on %s\n"+
			"Start it with `gvsd --engine proxy --socket %s`, or set GVS_SOCKET to the socket of a running gvsd.\n",
			r.prog, r.c.Socket(), r.c.Socket())
		return ExitUsage
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		fmt.Fprintf(r.stderr, "%s: %v\n", r.prog, err)
		return ExitFailure
	}
	fmt.Fprintf(r.stderr, "%s: talking to gvsd on %s: %v\n", r.prog, r.c.Socket(), err)
	return ExitFailure
}

func (r *runner) list(req *Request) int {
	switch req.List {
	case ListTimeout:
		t, err := r.c.Timeouts(r.ctx)
		if err != nil {
			return r.fail(err)
		}
		WriteTimeouts(r.stdout, t)
		return ExitOK
	case ListDaemon:
		dc, ok := r.c.(DaemonClient)
		if !ok {
			return ExitOK
		}
		ds, err := dc.Daemons(r.ctx)
		if err != nil {
			return r.fail(err)
		}
		WriteDaemons(r.stdout, ds)
		return ExitOK
	case ListConns:
		conns, err := r.c.Conns(r.ctx)
		if err != nil {
			return r.fail(err)
		}
		WriteConns(r.stdout, conns, req.Format)
		return ExitOK
	}
	if req.List == ListService {
		// gvsd reads that one service's counters, not the table's.
		s, ok, err := r.c.Service(r.ctx, req.Service.ServiceKey)
		if err != nil {
			return r.fail(err)
		}
		if !ok {
			fmt.Fprintln(r.stderr, ipvs.ErrNoService)
			return ExitFailure
		}
		WriteService(r.stdout, s, req.Format)
		return ExitOK
	}
	svcs, err := r.c.Services(r.ctx)
	if err != nil {
		return r.fail(err)
	}
	version, size := "1.2.1", 4096
	if req.Format&FmtRule == 0 {
		info, err := r.c.Info(r.ctx)
		if err != nil {
			return r.fail(err)
		}
		version, size = info.Version, info.ConnTabSize
	}
	WriteTable(r.stdout, version, size, svcs, req.Format)
	return ExitOK
}

// BatchClient is a Client that sends many changes in one request, applied
// as ipvsadm -R applies lines: a refused change is skipped and the next
// ones still run. *client.Client is one.
type BatchClient interface {
	Client
	ExecEach(ctx context.Context, cmds []ipvs.Command) ([]wire.CommandError, error)
}

// restoreBatch bounds the changes of a restore sent in one request (a
// variable for the tests).
var restoreBatch = 16384

// restore reads rules from stdin, one command line per line, and runs each
// as ipvsadm -R does: a refused change is reported and the next line runs;
// a line that does not parse ends the restore. The exit status is the last
// line's. Unlike ipvsadm, blank lines and lines starting with '#' are
// skipped. Consecutive changes go to gvsd as one request (of at most
// restoreBatch) when the client can send batches; a line that is not a
// change (a listing) runs after the changes before it are applied.
func (r *runner) restore() int {
	sc := bufio.NewScanner(r.stdin)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	result := ExitOK
	var pending []ipvs.Command
	// apply applies cmds, prints the refused ones' errors in order and
	// sets result to the last one's status. It returns false when gvsd
	// could not be asked, result then being the failure's.
	apply := func(cmds []ipvs.Command) bool {
		bc, ok := r.c.(BatchClient)
		if !ok {
			for _, c := range cmds {
				result = ExitOK
				if err := r.c.Exec(r.ctx, []ipvs.Command{c}); err != nil {
					var ce *wire.CommandError
					if !errors.As(err, &ce) {
						result = r.fail(err)
						return false
					}
					result = r.fail(err)
				}
			}
			return true
		}
		refused, err := bc.ExecEach(r.ctx, cmds)
		if err != nil {
			result = r.fail(err)
			return false
		}
		result = ExitOK
		for i := range refused {
			result = r.fail(&refused[i])
			if refused[i].Index != len(cmds)-1 {
				result = ExitOK
			}
		}
		return true
	}
	// A full batch is applied while the next lines are parsed: inflight
	// reports how the batch in flight went. Nothing else prints, nor
	// reads result, until it has (settle).
	var inflight chan bool
	settle := func() bool {
		if inflight == nil {
			return true
		}
		ok := <-inflight
		inflight = nil
		return ok
	}
	// flush applies the pending changes after the batch in flight.
	flush := func() bool {
		if !settle() {
			return false
		}
		if len(pending) == 0 {
			return true
		}
		cmds := pending
		pending = pending[:0]
		return apply(cmds)
	}
	send := func() bool {
		if !settle() {
			return false
		}
		cmds := pending
		pending = make([]ipvs.Command, 0, restoreBatch)
		done := make(chan bool, 1)
		inflight = done
		go func() { done <- apply(cmds) }()
		return true
	}
	for sc.Scan() {
		words, err := SplitLine(sc.Text())
		if err != nil {
			if !flush() {
				return result
			}
			fmt.Fprintf(r.stderr, "%s: %v\n", r.prog, err)
			return ExitUsage
		}
		if len(words) == 0 || strings.HasPrefix(words[0], "#") {
			continue
		}
		req, err := Parse(append([]string{r.prog}, words...))
		if err == nil && req.Cmd == CmdRestore {
			err = tryHelp(r.prog)
		}
		if err != nil {
			if !flush() {
				return result
			}
			return r.fail(err)
		}
		if req.Change != nil {
			pending = append(pending, *req.Change)
			if len(pending) >= restoreBatch && !send() {
				return result
			}
			continue
		}
		if !flush() {
			return result
		}
		result = r.run(append([]string{r.prog}, words...), true)
	}
	if !flush() {
		return result
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(r.stderr, "%s: reading rules: %v\n", r.prog, err)
		return ExitFailure
	}
	return result
}

// SplitLine splits a rule line into words at blanks; double or single
// quotes group a word, as ipvsadm's config_stream does.
func SplitLine(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote, inWord = c, true
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", line)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
