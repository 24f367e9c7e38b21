package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Server serves a Backend on a unix socket.
type Server struct {
	backend Backend
	log     *slog.Logger
	mux     *http.ServeMux
	http    *http.Server
	refusal atomic.Pointer[string] // why changes are refused; nil while they are taken
}

// NewServer returns a server for b, and for st (which may be nil) under
// GET /v1/state/{checkers,virtual-servers,vrrp}.
func NewServer(b Backend, log *slog.Logger, st State) *Server {
	s := &Server{backend: b, log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST /v1/commands", s.change(s.commands))
	s.mux.HandleFunc("GET /v1/services", s.services)
	s.mux.HandleFunc("GET /v1/conns", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, b.Conns()) })
	s.mux.HandleFunc("GET /v1/timeouts", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, b.Timeouts()) })
	s.mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, b.Info()) })
	if st != nil {
		s.mux.HandleFunc("GET /v1/state/checkers", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, st.Checkers()) })
		s.mux.HandleFunc("GET /v1/state/virtual-servers", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, st.VirtualServers()) })
		s.mux.HandleFunc("GET /v1/state/vrrp", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, st.VRRPInstances()) })
	}
	s.http = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: DefaultTimeouts.ReadHeader,
		ReadTimeout:       DefaultTimeouts.Read,
		IdleTimeout:       DefaultTimeouts.Idle,
	}
	return s
}

// RefuseChanges makes the server read-only: from now on every request
// that would change something is answered 503 with a wire.CommandError saying
// reason, while the views keep answering (gvsd shutting down still shows
// what is draining).
func (s *Server) RefuseChanges(reason string) { s.refusal.Store(&reason) }

// change wraps the handler of a request that changes something.
func (s *Server) change(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if reason := s.refusal.Load(); reason != nil {
			reply(w, http.StatusServiceUnavailable, &wire.CommandError{Msg: *reason + ": it takes no more changes (read-only until it exits)"})
			return
		}
		h(w, r)
	}
}

// Timeouts bound how long a client may hold a connection to the admin
// socket without finishing a request, so that a stalled or forgotten
// connection does not stay open for as long as gvsd runs.
type Timeouts struct {
	ReadHeader time.Duration // from accepting a connection to the end of the request's headers
	Read       time.Duration // from accepting a connection to the end of the request's body
	Idle       time.Duration // a kept-alive connection waiting for its next request
}

// DefaultTimeouts are generous for gvsadm -R restoring a large table.
var DefaultTimeouts = Timeouts{ReadHeader: 5 * time.Second, Read: 60 * time.Second, Idle: 30 * time.Second}

// SetTimeouts replaces DefaultTimeouts; call it before Listen.
func (s *Server) SetTimeouts(t Timeouts) {
	s.http.ReadHeaderTimeout, s.http.ReadTimeout, s.http.IdleTimeout = t.ReadHeader, t.Read, t.Idle
}

// Listen creates the socket (and its directory), replacing a stale one, and
// serves until ctx ends.
func (s *Server) Listen(ctx context.Context, path string) error {
	l, err := listenPrivate(path)
	if err != nil {
		return fmt.Errorf("admin socket %s: %w", path, err)
	}
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.http.Shutdown(shut)
	}()
	err = s.http.Serve(l)
	os.Remove(path)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// listenPrivate binds a unix socket at path that only its owner can
// connect to, from its first moment whatever the process umask: it binds
// in a new directory of mode 0700 beside path, sets the socket's mode to
// 0600 there, and renames it into place (replacing a stale socket).
// Changing the umask instead would change it for the whole process.
func listenPrivate(path string) (*net.UnixListener, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return nil, errors.New("another gvsd is already listening there (stop it, or pass --socket)")
	}
	private, err := os.MkdirTemp(dir, ".gvsd")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(private)
	bound := filepath.Join(private, "s")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: bound, Net: "unix"})
	if err != nil {
		if len(bound) >= len(syscall.RawSockaddrUnix{}.Path) {
			return nil, fmt.Errorf("the path is too long to bind (it must stay under %d bytes with %d more for a private directory): %w",
				len(syscall.RawSockaddrUnix{}.Path), len(bound)-len(path), err)
		}
		return nil, err
	}
	l.SetUnlinkOnClose(false) // the listener's name is bound, which the rename moves
	if err := os.Chmod(bound, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	if err := os.Rename(bound, path); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// Handler exposes the routes, for tests.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) commands(w http.ResponseWriter, r *http.Request) {
	cmds, err := decodeCommands(http.MaxBytesReader(w, r.Body, 64<<20))
	if err != nil {
		badRequest(w, err)
		return
	}
	if r.URL.Query().Get("on_error") == "continue" {
		reply(w, http.StatusOK, wire.Refused{Refused: s.execEach(cmds)})
		return
	}
	if err := s.backend.Exec(cmds); err != nil {
		var ce *wire.CommandError
		if !errors.As(err, &ce) {
			ce = &wire.CommandError{Msg: err.Error()}
		}
		s.log.Info("command refused", "index", ce.Index, "error", ce.Msg)
		reply(w, http.StatusConflict, ce)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// commandIn is an ipvs.Command as a request carries it: its service's
// netmask may be left out.
type commandIn struct {
	ipvs.Command
	Service *serviceIn `json:"service,omitempty"`
}

// serviceIn is an ipvs.Service whose "netmask" may be left out: such a
// service gets the full mask (one client per persistence template), as
// ipvsadm does when -M is not given; a netmask of 0 is the /0 mask, not
// "unset".
type serviceIn struct {
	ipvs.Service
	Netmask *int `json:"netmask"`
}

// decodeCommands reads a request's JSON array of commands, strictly (see
// decodeStrict), decoding each command once as it is read. An error in a
// command says which one.
func decodeCommands(r io.Reader) ([]ipvs.Command, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	fail := func(err error) error { return errors.New(strings.TrimPrefix(err.Error(), "json: ")) }
	tok, err := dec.Token()
	if err != nil {
		return nil, fail(err)
	}
	var cmds []ipvs.Command
	switch tok {
	case nil: // null: no commands
	case json.Delim('['):
		for i := 0; dec.More(); i++ {
			var in commandIn
			if err := dec.Decode(&in); err != nil {
				var syntax *json.SyntaxError
				var tooLarge *http.MaxBytesError
				if errors.As(err, &syntax) || errors.As(err, &tooLarge) || errors.Is(err, io.ErrUnexpectedEOF) {
					return nil, fail(err)
				}
				return nil, fmt.Errorf("command %d: %w", i, fail(err))
			}
			c := in.Command
			if in.Service != nil {
				c.Service = &in.Service.Service
				c.Service.Netmask = ipvs.FullNetmask(c.Service.IPv6())
				if in.Service.Netmask != nil {
					c.Service.Netmask = *in.Service.Netmask
				}
			}
			cmds = append(cmds, c)
		}
		if _, err := dec.Token(); err != nil { // the closing ]
			return nil, fail(err)
		}
	default:
		return nil, errors.New("the body is not a JSON array of commands")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return cmds, nil
}

// services answers GET /v1/services: every service, or with
// ?service=KEY (as ipvs.ServiceKey.String writes it: "TCP 198.18.0.10:80",
// "FWM 5 IPv6") only that one, so that a monitor polling one service of
// many costs one service's counters. The answer is a list either way,
// empty when the service does not exist.
func (s *Server) services(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		badRequest(w, fmt.Errorf("query: %w", err))
		return
	}
	for name := range q {
		if name != "service" {
			badRequest(w, fmt.Errorf("unknown query parameter %q (the one known is \"service\")", name))
			return
		}
	}
	keys, ok := q["service"]
	if !ok {
		replyServices(w, s.backend.Services())
		return
	}
	if len(keys) != 1 {
		badRequest(w, errors.New("service given more than once"))
		return
	}
	key, err := ipvs.ParseServiceKey(keys[0])
	if err != nil {
		badRequest(w, err)
		return
	}
	out := []ipvs.ServiceStatus{}
	if st, ok := s.backend.Service(key); ok {
		out = append(out, st)
	}
	replyServices(w, out)
}

// servicesChunk is how much of the services' JSON replyServices writes at
// a time.
const servicesChunk = 64 << 10

// replyServices answers 200 with svcs as JSON (the bytes encoding/json
// writes), encoded by ipvs.ServiceStatus.AppendJSON service by service
// as it is sent: the whole table is about 1.3 KB a service, 13 MB at
// 10,000, that gvsd would otherwise build as one value and keep until it
// is sent. An answer that fits in one chunk has its Content-Length; a
// longer one is delimited by the end of the connection (a
// "Transfer-Encoding: identity" answer, never chunked), which
// internal/api/client reads.
func replyServices(w http.ResponseWriter, svcs []ipvs.ServiceStatus) {
	// About 1.3 KB a service with 4 real servers: one service's answer
	// (a monitor's poll) needs no chunk's worth.
	b := make([]byte, 0, min(servicesChunk+4<<10, 1<<10+len(svcs)*2<<10))
	if svcs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
	}
	started := false
	for i := range svcs {
		if i > 0 {
			b = append(b, ',')
		}
		b = svcs[i].AppendJSON(b)
		if len(b) >= servicesChunk {
			if !started {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Transfer-Encoding", "identity")
				w.WriteHeader(http.StatusOK)
				started = true
			}
			if _, err := w.Write(b); err != nil {
				return // the client went away
			}
			b = b[:0]
		}
	}
	if svcs != nil {
		b = append(b, ']')
	}
	b = append(b, '\n')
	if !started {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(http.StatusOK)
	}
	w.Write(b)
}

// decodeStrict decodes the one JSON value r holds into v. A field v does
// not have (a misspelt "weigth" would otherwise leave the weight at 0) and
// anything after the value are errors.
func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// badRequest answers 400 with a wire.CommandError saying what is wrong with the
// request.
func badRequest(w http.ResponseWriter, err error) {
	reply(w, http.StatusBadRequest, &wire.CommandError{Msg: "bad request: " + err.Error()})
}

// reply answers code with v as JSON, with its Content-Length (never
// chunked, which the client does not read).
func reply(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}

// execEach applies every command it can and returns the refused ones.
func (s *Server) execEach(cmds []ipvs.Command) []wire.CommandError {
	refused := []wire.CommandError{}
	add := func(i int, err error) {
		s.log.Info("command refused", "index", i, "error", err.Error())
		refused = append(refused, wire.CommandError{Index: i, Msg: err.Error()})
	}
	if b, ok := s.backend.(EachBackend); ok {
		for i, err := range b.ExecEach(cmds) {
			if err != nil {
				add(i, err)
			}
		}
		return refused
	}
	for i, c := range cmds {
		if err := s.backend.Exec([]ipvs.Command{c}); err != nil {
			add(i, err)
		}
	}
	return refused
}
