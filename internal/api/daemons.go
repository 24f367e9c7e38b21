package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/gvs-lb/gvs/internal/api/wire"
)

// Daemons runs the connection sync daemons (ipvsadm --start-daemon,
// --stop-daemon, -L --daemon).
type Daemons interface {
	Start(cfg wire.SyncDaemon) error
	Stop(state string) error
	Daemons() []wire.SyncDaemonStatus // master first
}

// ServeDaemons adds the sync daemon routes: GET /v1/daemons,
// POST /v1/daemons (a Config starts one), DELETE /v1/daemons/{state}.
// Refusals answer 409 with a wire.CommandError carrying ipvsadm's wording.
func (s *Server) ServeDaemons(d Daemons) {
	s.mux.HandleFunc("GET /v1/daemons", func(w http.ResponseWriter, _ *http.Request) { reply(w, d.Daemons()) })
	s.mux.HandleFunc("POST /v1/daemons", s.change(func(w http.ResponseWriter, r *http.Request) {
		var cfg wire.SyncDaemon
		if err := decodeStrict(http.MaxBytesReader(w, r.Body, 1<<16), &cfg); err != nil {
			badRequest(w, err)
			return
		}
		s.daemonResult(w, d.Start(cfg))
	}))
	s.mux.HandleFunc("DELETE /v1/daemons/{state}", s.change(func(w http.ResponseWriter, r *http.Request) {
		s.daemonResult(w, d.Stop(r.PathValue("state")))
	}))
}

func (s *Server) daemonResult(w http.ResponseWriter, err error) {
	if err != nil {
		s.log.Info("sync daemon command refused", "error", err)
		w.WriteHeader(http.StatusConflict)
		reply(w, &wire.CommandError{Msg: err.Error()})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// StartDaemon starts a sync daemon; a refusal is a *wire.CommandError.
func (c *Client) StartDaemon(ctx context.Context, cfg wire.SyncDaemon) error {
	body, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	return c.noContent(ctx, http.MethodPost, "/v1/daemons", body)
}

// StopDaemon stops the master or backup sync daemon.
func (c *Client) StopDaemon(ctx context.Context, state string) error {
	return c.noContent(ctx, http.MethodDelete, "/v1/daemons/"+state, nil)
}

// Daemons lists the running sync daemons, master first. A gvsd that
// serves no sync daemon routes runs none.
func (c *Client) Daemons(ctx context.Context) ([]wire.SyncDaemonStatus, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/daemons", nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusNotFound:
		return nil, nil
	case http.StatusOK:
	default:
		return nil, fmt.Errorf("gvsd answered %s for /v1/daemons", resp.Status)
	}
	var v []wire.SyncDaemonStatus
	return v, json.NewDecoder(resp.Body).Decode(&v)
}

func (c *Client) noContent(ctx context.Context, method, path string, body []byte) error {
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return nil
	}
	ce := &wire.CommandError{}
	if err := json.NewDecoder(resp.Body).Decode(ce); err != nil || ce.Msg == "" {
		return &wire.CommandError{Msg: "gvsd answered " + resp.Status + " for " + path}
	}
	return ce
}
