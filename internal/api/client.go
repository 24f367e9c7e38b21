package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"

	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// ErrNotRunning means nothing answers on the admin socket.
var ErrNotRunning = errors.New("gvsd is not running")

// Client talks to gvsd's admin socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{socket: path, http: &http.Client{Transport: tr}}
}

// Socket is the path the client talks to.
func (c *Client) Socket() string { return c.socket }

// Exec sends commands, applied in order; it stops at the first one refused
// and returns it as a *wire.CommandError.
func (c *Client) Exec(ctx context.Context, cmds []ipvs.Command) error {
	body, err := json.Marshal(cmds)
	if err != nil {
		return err
	}
	return c.noContent(ctx, http.MethodPost, "/v1/commands", body)
}

// Services lists the services with their counters.
func (c *Client) Services(ctx context.Context) ([]ipvs.ServiceStatus, error) {
	var v []ipvs.ServiceStatus
	return v, c.get(ctx, "/v1/services", &v)
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

func (c *Client) get(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("gvsd answered %s for %s", resp.Status, path)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (c *Client) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://gvsd"+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%w (no daemon on %s)", ErrNotRunning, c.socket)
		}
		return nil, err
	}
	return resp, nil
}
