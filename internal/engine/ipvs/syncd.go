package ipvs

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"

	"github.com/gvs-lb/gvs/internal/ipvssync"
)

// The kernel's sync daemons (ipvsadm --start-daemon): on this engine the
// kernel's own master and backup threads synchronize connections.

var _ ipvssync.Kernel = (*Engine)(nil)

const (
	stateMaster = 1 // IP_VS_STATE_MASTER
	stateBackup = 2 // IP_VS_STATE_BACKUP
)

func kernelState(state string) (uint32, error) {
	switch state {
	case ipvssync.Master:
		return stateMaster, nil
	case ipvssync.Backup:
		return stateBackup, nil
	}
	return 0, fmt.Errorf("sync daemon state %q: want master or backup", state)
}

// StartSyncDaemon starts the kernel's master or backup daemon.
func (e *Engine) StartSyncDaemon(cfg ipvssync.Config) error {
	st, err := kernelState(cfg.State)
	if err != nil {
		return err
	}
	err = e.g.exec(cmdNewDaemon, func(ae *netlink.AttributeEncoder) {
		ae.Nested(cmdAttrDaemon, func(ae *netlink.AttributeEncoder) error {
			ae.Uint32(daemonAttrState, st)
			ae.String(daemonAttrMcastIfn, cfg.Interface)
			ae.Uint32(daemonAttrSyncID, uint32(cfg.SyncID))
			if cfg.MaxLen != 0 {
				ae.Uint16(daemonAttrSyncMaxlen, uint16(cfg.MaxLen))
			}
			if g := cfg.Group.Unmap(); g.Is4() {
				ae.Bytes(daemonAttrMcastGroup, g.AsSlice())
			} else if g.Is6() {
				ae.Bytes(daemonAttrMcastGroup6, g.AsSlice())
			}
			if cfg.Port != 0 {
				ae.Uint16(daemonAttrMcastPort, cfg.Port)
			}
			if cfg.TTL != 0 {
				ae.Uint8(daemonAttrMcastTTL, cfg.TTL)
			}
			return nil
		})
	})
	switch {
	case errors.Is(err, syscall.EEXIST):
		return ipvssync.ErrRunning
	case errors.Is(err, syscall.ENODEV):
		return ipvssync.ErrNoDevice
	}
	return err
}

// StopSyncDaemon stops the kernel's master or backup daemon.
func (e *Engine) StopSyncDaemon(state string) error {
	st, err := kernelState(state)
	if err != nil {
		return err
	}
	err = e.g.exec(cmdDelDaemon, func(ae *netlink.AttributeEncoder) {
		ae.Nested(cmdAttrDaemon, func(ae *netlink.AttributeEncoder) error {
			ae.Uint32(daemonAttrState, st)
			return nil
		})
	})
	if errors.Is(err, syscall.ESRCH) {
		return ipvssync.ErrNotRunning
	}
	return err
}

// SyncDaemons lists the kernel's running daemons, master first.
func (e *Engine) SyncDaemons() ([]ipvssync.Config, error) {
	msgs, err := e.g.c.Execute(genetlink.Message{Header: genetlink.Header{Command: cmdGetDaemon, Version: genlVersion}},
		e.g.family.ID, netlink.Request|netlink.Dump)
	if err != nil {
		return nil, err
	}
	var out []ipvssync.Config
	for _, m := range msgs {
		ad, err := netlink.NewAttributeDecoder(m.Data)
		if err != nil {
			return out, err
		}
		for ad.Next() {
			if ad.Type() != cmdAttrDaemon {
				continue
			}
			var c ipvssync.Config
			ad.Nested(func(nd *netlink.AttributeDecoder) error {
				for nd.Next() {
					switch nd.Type() {
					case daemonAttrState:
						if nd.Uint32() == stateMaster {
							c.State = ipvssync.Master
						} else {
							c.State = ipvssync.Backup
						}
					case daemonAttrMcastIfn:
						c.Interface = nd.String()
					case daemonAttrSyncID:
						c.SyncID = uint8(nd.Uint32())
					case daemonAttrSyncMaxlen:
						c.MaxLen = int(nd.Uint16())
					case daemonAttrMcastGroup, daemonAttrMcastGroup6:
						c.Group, _ = netip.AddrFromSlice(nd.Bytes())
					case daemonAttrMcastPort:
						c.Port = nd.Uint16()
					case daemonAttrMcastTTL:
						c.TTL = nd.Uint8()
					}
				}
				return nil
			})
			out = append(out, c)
		}
		if err := ad.Err(); err != nil {
			return out, err
		}
	}
	if len(out) == 2 && out[0].State == ipvssync.Backup {
		out[0], out[1] = out[1], out[0]
	}
	return out, nil
}
