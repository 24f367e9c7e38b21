package api

import (
	"net/http"

	"github.com/gvs-lb/gvs/internal/api/wire"
)

// ServeEngine adds GET /v1/state/engine: the engine's bounds and counters,
// from view.
func (s *Server) ServeEngine(view func() wire.Engine) {
	s.mux.HandleFunc("GET /v1/state/engine", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, view()) })
}
