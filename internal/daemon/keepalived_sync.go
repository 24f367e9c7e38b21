package daemon

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/ipvssync"
	"github.com/gvs-lb/gvs/internal/vrrp"
)

// lvsSyncSpec is keepalived.conf's
//
//	lvs_sync_daemon IFACE VRRP_INSTANCE [id N] [maxlen L] [port P] [ttl T] [group ADDR]
//
// The syncid defaults to the instance's virtual_router_id, as keepalived.
type lvsSyncSpec struct {
	instance string
	cfg      ipvssync.Config // State unset
	idGiven  bool
}

func parseLVSSync(words []string) (*lvsSyncSpec, error) {
	if len(words) < 2 {
		return nil, errors.New("lvs_sync_daemon needs an interface and a VRRP instance: lvs_sync_daemon IFACE VRRP_INSTANCE [id N] [maxlen L] [port P] [ttl T] [group ADDR]")
	}
	s := &lvsSyncSpec{instance: words[1], cfg: ipvssync.Config{Interface: words[0]}}
	for i := 2; i < len(words); i += 2 {
		if i+1 >= len(words) {
			return nil, fmt.Errorf("lvs_sync_daemon: %q needs a value", words[i])
		}
		key, val := words[i], words[i+1]
		num := func(lo, hi int) (int, error) {
			n, err := strconv.Atoi(val)
			if err != nil || n < lo || n > hi {
				return 0, fmt.Errorf("lvs_sync_daemon: %s %q: want a number from %d to %d", key, val, lo, hi)
			}
			return n, nil
		}
		var err error
		var n int
		switch key {
		case "id":
			n, err = num(0, 255)
			s.cfg.SyncID, s.idGiven = uint8(n), true
		case "maxlen":
			n, err = num(1, 65535-20-8)
			s.cfg.MaxLen = n
		case "port":
			n, err = num(1, 65535)
			s.cfg.Port = uint16(n)
		case "ttl":
			n, err = num(1, 255)
			s.cfg.TTL = uint8(n)
		case "group":
			a, perr := netip.ParseAddr(val)
			if perr != nil || !a.IsMulticast() {
				err = fmt.Errorf("lvs_sync_daemon: group %q is not a multicast address", val)
			}
			s.cfg.Group = a
		default:
			err = fmt.Errorf("lvs_sync_daemon: unknown option %q (want id, maxlen, port, ttl or group)", key)
		}
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

// runLVSSync keeps the sync daemon of lvs_sync_daemon in step with its
// VRRP instance, as keepalived does: the master daemon while the instance
// is MASTER, the backup daemon otherwise (the backup first stopped before
// the master starts, and the other way round). It looks again at every
// VRRP state change and on every tick, so a reload or a daemon that could
// not start is taken up, and stops what it started when keepalived stops.
func (k *keepalived) runLVSSync(m *ipvssync.Manager, every time.Duration) {
	var running *ipvssync.Config // what this loop started
	stop := func() {
		if running != nil {
			m.Stop(running.State)
			running = nil
		}
	}
	defer stop()
	warned := ""
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		want, err := k.lvsSyncWanted()
		if err != nil && err.Error() != warned {
			k.log.Error("lvs_sync_daemon: " + err.Error())
		}
		warned = ""
		if err != nil {
			warned = err.Error()
		}
		if want == nil || running == nil || *want != *running {
			stop()
			if want != nil {
				if err := m.Start(*want); err != nil {
					if err.Error() != warned {
						k.log.Error("lvs_sync_daemon: starting the "+want.State+" sync daemon: "+err.Error(), "interface", want.Interface)
					}
					warned = err.Error()
				} else {
					running = want
				}
			}
		}
		select {
		case <-k.ctx.Done():
			return
		case <-k.vrrpChanges:
		case <-t.C:
		}
	}
}

// lvsSyncWanted is the daemon lvs_sync_daemon wants now, or nil.
func (k *keepalived) lvsSyncWanted() (*ipvssync.Config, error) {
	k.mu.Lock()
	cfg := k.cfg
	var inst *vrrp.Instance
	var vrid uint8
	for _, u := range k.vrrp {
		for i, in := range u.insts {
			if cfg != nil && in.Name() == lvsSyncInstance(cfg) {
				inst, vrid = in, uint8(u.cfgs[i].VirtualRouterID)
			}
		}
	}
	k.mu.Unlock()
	if cfg == nil || len(cfg.Global.LVSSyncDaemon) == 0 {
		return nil, nil
	}
	spec, err := parseLVSSync(cfg.Global.LVSSyncDaemon)
	if err != nil {
		return nil, err
	}
	if inst == nil {
		return nil, fmt.Errorf("VRRP instance %q is not running (name a vrrp_instance of this file)", spec.instance)
	}
	want := spec.cfg
	if !spec.idGiven {
		want.SyncID = vrid
	}
	want.State = ipvssync.Backup
	if inst.Status().State == vrrp.StateMaster {
		want.State = ipvssync.Master
	}
	return &want, nil
}

func lvsSyncInstance(cfg *config.Config) string {
	if w := cfg.Global.LVSSyncDaemon; len(w) >= 2 {
		return w[1]
	}
	return ""
}
