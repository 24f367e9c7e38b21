package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Server serves a Backend on a unix socket.
type Server struct {
	backend Backend
	log     *slog.Logger
	mux     *http.ServeMux
	http    *http.Server
}

// NewServer returns a server for b. Extra views are served as
// GET /v1/state/{name}.
func NewServer(b Backend, log *slog.Logger, extras map[string]Extra) *Server {
	s := &Server{backend: b, log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST /v1/commands", s.commands)
	s.mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, _ *http.Request) { reply(w, b.Services()) })
	s.mux.HandleFunc("GET /v1/conns", func(w http.ResponseWriter, _ *http.Request) { reply(w, b.Conns()) })
	s.mux.HandleFunc("GET /v1/timeouts", func(w http.ResponseWriter, _ *http.Request) { reply(w, b.Timeouts()) })
	s.mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, _ *http.Request) { reply(w, b.Info()) })
	for name, view := range extras {
		s.mux.HandleFunc("GET /v1/state/"+name, func(w http.ResponseWriter, _ *http.Request) { reply(w, view()) })
	}
	s.http = &http.Server{Handler: s.mux, ReadHeaderTimeout: 5 * time.Second}
	return s
}

// Listen creates the socket (and its directory), replacing a stale one, and
// serves until ctx ends.
func (s *Server) Listen(ctx context.Context, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return fmt.Errorf("admin socket %s: another gvsd is already listening there (stop it, or pass --socket)", path)
	}
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("admin socket: %w", err)
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

// Handler exposes the routes, for tests.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) commands(w http.ResponseWriter, r *http.Request) {
	var cmds []ipvs.Command
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<20)).Decode(&cmds); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		reply(w, &CommandError{Msg: "bad request: " + err.Error()})
		return
	}
	if err := s.backend.Exec(cmds); err != nil {
		var ce *CommandError
		if !errors.As(err, &ce) {
			ce = &CommandError{Msg: err.Error()}
		}
		s.log.Info("command refused", "index", ce.Index, "error", ce.Msg)
		w.WriteHeader(http.StatusConflict)
		reply(w, ce)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}
