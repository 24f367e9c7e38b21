package plan

import (
	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/script"
)

// NotifyFIFO is a notify FIFO gvsd writes state changes to, one line
// each: VRRP's (instances and sync groups), the checkers' (real and
// virtual servers), or both.
type NotifyFIFO struct {
	Pos  config.Pos `json:"-"`
	Path string
	// Owner owns the FIFO when gvsd creates it.
	Owner script.Credential
	// Reader is notify_fifo_script (or its vrrp_ / lvs_ kin), started
	// with Path as its last argument before the FIFO is opened.
	Reader    script.Cmd
	VRRP, LVS bool
}

// Equal reports whether f and o are the same FIFO with the same reader.
func (f *NotifyFIFO) Equal(o *NotifyFIFO) bool {
	return f.Path == o.Path && f.Owner == o.Owner && f.Reader.Equal(o.Reader) && f.VRRP == o.VRRP && f.LVS == o.LVS
}

// notifyFIFOs are global_defs' notify FIFOs, folded as keepalived does:
// a vrrp_ or lvs_ FIFO at the global one's path is dropped (its lines
// would come twice), and a vrrp_ and an lvs_ FIFO at one path are one
// FIFO, read by vrrp_notify_fifo_script when both name a reader.
func (c *compiler) notifyFIFOs() []NotifyFIFO {
	g := &c.cfg.Global
	var out []NotifyFIFO
	add := func(path, reader *config.Script, vrrp, lvs bool) {
		if path == nil || path.Cmd == "" || path.Disabled != "" {
			return
		}
		for i := range out {
			f := &out[i]
			if f.Path != path.Cmd {
				continue
			}
			if f.VRRP && f.LVS {
				c.warnf(path.Pos, "notify FIFO %s has been specified for global and %s FIFO - ignoring %[2]s FIFO",
					path.Cmd, map[bool]string{true: "vrrp", false: "LVS"}[vrrp])
				return
			}
			f.VRRP, f.LVS = f.VRRP || vrrp, f.LVS || lvs
			if r := scriptCmd(reader); !r.IsZero() {
				if f.Reader.IsZero() {
					f.Reader = r
				} else {
					c.warnf(reader.Pos, "LVS notify FIFO and vrrp FIFO are the same both with scripts - ignoring LVS FIFO script")
				}
			}
			return
		}
		out = append(out, NotifyFIFO{Pos: path.Pos, Path: path.Cmd, Owner: script.Credential{UID: path.UID, GID: path.GID},
			Reader: scriptCmd(reader), VRRP: vrrp, LVS: lvs})
	}
	add(g.NotifyFIFO, g.NotifyFIFOScript, true, true)
	add(g.VRRPNotifyFIFO, g.VRRPNotifyFIFOScript, true, false)
	add(g.LVSNotifyFIFO, g.LVSNotifyFIFOScript, false, true)
	return out
}
