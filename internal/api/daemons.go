package api

import (
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
	s.mux.HandleFunc("GET /v1/daemons", func(w http.ResponseWriter, _ *http.Request) { reply(w, http.StatusOK, d.Daemons()) })
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
		reply(w, http.StatusConflict, &wire.CommandError{Msg: err.Error()})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
