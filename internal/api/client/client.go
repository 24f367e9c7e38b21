// Package client is the admin API's client, what gvsadm talks to gvsd
// with: the routes of internal/api/wire over gvsd's unix socket.
//
// It speaks the little HTTP/1.1 the API needs (one request per connection,
// a body delimited by Content-Length or by the end of the connection)
// with net/textproto rather than net/http: net/http would bring TLS, HTTP/2
// and a server into gvsadm, more than half its size, for a local socket.
package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// ErrNotRunning means nothing answers on the admin socket.
var ErrNotRunning = errors.New("gvsd is not running")

// Client talks to gvsd's admin socket.
type Client struct {
	socket string
}

// New returns a client for the socket at path.
func New(path string) *Client { return &Client{socket: path} }

// Socket is the path the client talks to.
func (c *Client) Socket() string { return c.socket }

// Exec sends commands, applied in order; it stops at the first one refused
// and returns it as a *wire.CommandError.
func (c *Client) Exec(ctx context.Context, cmds []ipvs.Command) error {
	body, err := json.Marshal(cmds)
	if err != nil {
		return err
	}
	return c.noContent(ctx, "POST", "/v1/commands", body)
}

// ExecEach sends commands to be applied in order as ipvsadm -R applies
// its lines: a command the daemon refuses changes nothing and the next
// ones still run. It returns the refused commands (Index is the position
// in cmds), in order.
func (c *Client) ExecEach(ctx context.Context, cmds []ipvs.Command) ([]wire.CommandError, error) {
	body, err := json.Marshal(cmds)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, "POST", "/v1/commands?on_error=continue", body)
	if err != nil {
		return nil, err
	}
	if resp.code != 200 {
		ce := &wire.CommandError{}
		if json.Unmarshal(resp.body, ce) != nil || ce.Msg == "" {
			return nil, fmt.Errorf("gvsd answered %s for /v1/commands", resp.status)
		}
		return nil, ce
	}
	var v wire.Refused
	if err := json.Unmarshal(resp.body, &v); err != nil {
		return nil, fmt.Errorf("reading gvsd's answer: %w", err)
	}
	return v.Refused, nil
}

// Services lists the services with their counters, decoding them as
// they arrive (ipvs.ReadServiceStatuses: the whole table is about 1.3 KB
// of JSON a service).
func (c *Client) Services(ctx context.Context) ([]ipvs.ServiceStatus, error) {
	var v []ipvs.ServiceStatus
	err := c.stream(ctx, "/v1/services", func(body io.Reader) (err error) {
		v, err = ipvs.ReadServiceStatuses(body)
		return err
	})
	return v, err
}

// Service returns the one service key names with its counters, false
// when gvsd has no such service. gvsd reads only that service's counters.
func (c *Client) Service(ctx context.Context, key ipvs.ServiceKey) (ipvs.ServiceStatus, bool, error) {
	var v []ipvs.ServiceStatus
	if err := c.get(ctx, "/v1/services?"+url.Values{"service": {key.String()}}.Encode(), &v); err != nil {
		return ipvs.ServiceStatus{}, false, err
	}
	if len(v) == 0 {
		return ipvs.ServiceStatus{}, false, nil
	}
	return v[0], true, nil
}

// Conns lists the connection table.
func (c *Client) Conns(ctx context.Context) ([]ipvs.Conn, error) {
	var v []ipvs.Conn
	return v, c.get(ctx, "/v1/conns", &v)
}

// Timeouts returns the connection timeouts.
func (c *Client) Timeouts(ctx context.Context) (ipvs.Timeouts, error) {
	var v ipvs.Timeouts
	return v, c.get(ctx, "/v1/timeouts", &v)
}

// Info describes the daemon.
func (c *Client) Info(ctx context.Context) (wire.Info, error) {
	var v wire.Info
	return v, c.get(ctx, "/v1/info", &v)
}

// State fetches a keepalived state view, GET /v1/state/NAME, into v:
// NAME "checkers" is a []wire.Checker, "virtual-servers" a
// []wire.VirtualServer, "vrrp" a []wire.VRRPInstance (or a
// json.RawMessage of them).
func (c *Client) State(ctx context.Context, name string, v any) error {
	return c.get(ctx, "/v1/state/"+name, v)
}

// StartDaemon starts a sync daemon; a refusal is a *wire.CommandError.
func (c *Client) StartDaemon(ctx context.Context, cfg wire.SyncDaemon) error {
	body, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	return c.noContent(ctx, "POST", "/v1/daemons", body)
}

// StopDaemon stops the master or backup sync daemon.
func (c *Client) StopDaemon(ctx context.Context, state string) error {
	return c.noContent(ctx, "DELETE", "/v1/daemons/"+state, nil)
}

// Daemons lists the running sync daemons, master first. A gvsd that
// serves no sync daemon routes runs none.
func (c *Client) Daemons(ctx context.Context) ([]wire.SyncDaemonStatus, error) {
	resp, err := c.do(ctx, "GET", "/v1/daemons", nil)
	if err != nil {
		return nil, err
	}
	switch resp.code {
	case 404:
		return nil, nil
	case 200:
	default:
		return nil, fmt.Errorf("gvsd answered %s for /v1/daemons", resp.status)
	}
	var v []wire.SyncDaemonStatus
	return v, json.Unmarshal(resp.body, &v)
}

func (c *Client) get(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	if resp.code != 200 {
		return answerError(resp, path)
	}
	return json.Unmarshal(resp.body, v)
}

// stream GETs path and hands read the body of a 200 answer as it
// arrives; any other answer is an error.
func (c *Client) stream(ctx context.Context, path string, read func(body io.Reader) error) error {
	resp, err := c.doStream(ctx, "GET", path, nil, read)
	if err != nil {
		return err
	}
	if resp.code != 200 {
		return answerError(resp, path)
	}
	return nil
}

// answerError is the error of an answer other than 200 to a GET of path.
func answerError(resp *response, path string) error {
	ce := &wire.CommandError{}
	if json.Unmarshal(resp.body, ce) == nil && ce.Msg != "" {
		return fmt.Errorf("gvsd answered %s for %s: %s", resp.status, path, ce.Msg)
	}
	return fmt.Errorf("gvsd answered %s for %s", resp.status, path)
}

func (c *Client) noContent(ctx context.Context, method, path string, body []byte) error {
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	if resp.code == 204 {
		return nil
	}
	ce := &wire.CommandError{}
	if err := json.Unmarshal(resp.body, ce); err != nil || ce.Msg == "" {
		return &wire.CommandError{Msg: "gvsd answered " + resp.status + " for " + path}
	}
	return ce
}

// response is an answer: its status ("409 Conflict"), code and body.
type response struct {
	status string
	code   int
	body   []byte
}

// do sends one request on a new connection and reads the answer.
func (c *Client) do(ctx context.Context, method, path string, body []byte) (*response, error) {
	return c.doStream(ctx, method, path, body, nil)
}

// doStream is do, handing the body of a 200 answer to read as it
// arrives instead of reading it into the response, when read is not nil.
func (c *Client) doStream(ctx context.Context, method, path string, body []byte, read func(io.Reader) error) (*response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (no daemon on %s)", ErrNotRunning, c.socket)
		}
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	resp, err := roundTrip(conn, method, path, body, read)
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp, nil
}

func roundTrip(conn io.ReadWriter, method, path string, body []byte, read func(io.Reader) error) (*response, error) {
	var req bytes.Buffer
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: gvsd\r\nConnection: close\r\n", method, path)
	if body != nil {
		fmt.Fprintf(&req, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	req.WriteString("\r\n")
	req.Write(body)
	if _, err := conn.Write(req.Bytes()); err != nil {
		return nil, err
	}

	r := textproto.NewReader(bufio.NewReader(conn))
	line, err := r.ReadLine()
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	proto, status, ok := strings.Cut(line, " ")
	code, cerr := strconv.Atoi(strings.SplitN(status, " ", 2)[0])
	if !ok || !strings.HasPrefix(proto, "HTTP/1.") || cerr != nil {
		return nil, fmt.Errorf("malformed answer %q", line)
	}
	header, err := r.ReadMIMEHeader()
	if err != nil {
		return nil, fmt.Errorf("reading the answer's header: %w", err)
	}
	if te := header.Get("Transfer-Encoding"); te != "" {
		return nil, fmt.Errorf("unexpected Transfer-Encoding %q", te)
	}
	resp := &response{status: status, code: code}
	if code == 204 || code == 304 || code < 200 || method == "HEAD" {
		return resp, nil
	}
	var bodyReader io.Reader = r.R // Connection: close ends the body
	n := int64(-1)
	if cl := header.Get("Content-Length"); cl != "" {
		n, err = strconv.ParseInt(cl, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("malformed Content-Length %q", cl)
		}
		bodyReader = &exactReader{r: r.R, left: n}
	}
	if read != nil && code == 200 {
		return resp, read(bodyReader)
	}
	if n >= 0 {
		resp.body = make([]byte, n)
		_, err = io.ReadFull(r.R, resp.body)
		return resp, err
	}
	resp.body, err = io.ReadAll(bodyReader)
	return resp, err
}

// exactReader reads the left bytes of a body of known length; the
// connection ending before them is io.ErrUnexpectedEOF.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), e.left)]
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
