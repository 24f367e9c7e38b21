package plan

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"

	"github.com/gvs-lb/gvs/internal/ipvssync"
)

// SyncDaemon is lvs_sync_daemon: the connection sync daemon that follows
// a VRRP instance, master while it is MASTER, backup otherwise.
type SyncDaemon struct {
	// Instance names the vrrp_instance it follows.
	Instance string
	// Config is the daemon's configuration without its state; the syncid
	// defaults to the instance's virtual_router_id, as keepalived's.
	Config ipvssync.Config
}

// syncDaemon compiles lvs_sync_daemon, whose instance must be one of
// units'.
func (c *compiler) syncDaemon(units []VRRPUnit) *SyncDaemon {
	g := &c.cfg.Global
	if len(g.LVSSyncDaemon) == 0 {
		return nil
	}
	s, idGiven, err := parseLVSSync(g.LVSSyncDaemon)
	if err != nil {
		c.errorf(g.LVSSyncDaemonPos, "%v", err)
		return nil
	}
	for _, u := range units {
		for _, ic := range u.Instances {
			if ic.Name == s.Instance {
				if !idGiven {
					s.Config.SyncID = ic.VRID
				}
				return s
			}
		}
	}
	if _, ok := c.cfg.Instance(s.Instance); !ok {
		c.errorf(g.LVSSyncDaemonPos, "lvs_sync_daemon: no vrrp_instance named %q", s.Instance)
	}
	return nil
}

// parseLVSSync reads lvs_sync_daemon's words:
//
//	lvs_sync_daemon IFACE VRRP_INSTANCE [id N] [maxlen L] [port P] [ttl T] [group ADDR]
func parseLVSSync(words []string) (*SyncDaemon, bool, error) {
	if len(words) < 2 {
		return nil, false, errors.New("lvs_sync_daemon needs an interface and a VRRP instance: lvs_sync_daemon IFACE VRRP_INSTANCE [id N] [maxlen L] [port P] [ttl T] [group ADDR]")
	}
	s := &SyncDaemon{Instance: words[1], Config: ipvssync.Config{Interface: words[0]}}
	idGiven := false
	for i := 2; i < len(words); i += 2 {
		if i+1 >= len(words) {
			return nil, false, fmt.Errorf("lvs_sync_daemon: %q needs a value", words[i])
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
			s.Config.SyncID, idGiven = uint8(n), true
		case "maxlen":
			n, err = num(1, 65535-20-8)
			s.Config.MaxLen = n
		case "port":
			n, err = num(1, 65535)
			s.Config.Port = uint16(n)
		case "ttl":
			n, err = num(1, 255)
			s.Config.TTL = uint8(n)
		case "group":
			a, perr := netip.ParseAddr(val)
			if perr != nil || !a.IsMulticast() {
				err = fmt.Errorf("lvs_sync_daemon: group %q is not a multicast address", val)
			}
			s.Config.Group = a
		default:
			err = fmt.Errorf("lvs_sync_daemon: unknown option %q (want id, maxlen, port, ttl or group)", key)
		}
		if err != nil {
			return nil, false, err
		}
	}
	return s, idGiven, nil
}
