package ipvssync

import (
	"net/netip"
	"time"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// tracker decides which connections a master sends, in the spirit of the
// kernel's ip_vs_sync_conn_needed: a new connection, one whose state
// changed, and one that saw packets since it was last sent longer than
// refresh ago (so that the backup's copy, which expires on the timeout
// it received, lives as long as the master's). Persistence templates go
// the same way: sent when new or moved to another real server, and again
// while clients keep making connections under them.
type tracker struct {
	refresh time.Duration
	sent    map[connID]sentConn
}

type connID struct {
	proto           ipvs.Protocol
	client, virtual netip.AddrPort
	template        bool
	fwmark          uint32
}

type sentConn struct {
	state string
	dest  netip.AddrPort
	at    time.Time
}

func newTracker(refresh time.Duration) *tracker {
	return &tracker{refresh: refresh, sent: map[connID]sentConn{}}
}

// changes returns what to send now out of the engine's listing, and
// forgets connections no longer listed.
func (t *tracker) changes(now time.Time, conns []engine.SyncConn) []engine.SyncConn {
	var out []engine.SyncConn
	next := make(map[connID]sentConn, len(conns))
	for _, c := range conns {
		if !worthSending(&c) {
			continue
		}
		id := connID{c.Proto, c.Client, c.Virtual, c.Template, c.FWMark}
		s, ok := t.sent[id]
		// Idle less than the time since it was sent: packets passed since.
		busy := c.Idle < now.Sub(s.at)
		if !ok || s.state != c.State || s.dest != c.Dest || busy && now.Sub(s.at) >= t.refresh {
			out = append(out, c)
			s = sentConn{state: c.State, dest: c.Dest, at: now}
		}
		next[id] = s
	}
	t.sent = next
	return out
}
