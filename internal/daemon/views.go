package daemon

import (
	"github.com/gvs-lb/gvs/internal/api"
	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/check"
	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvssync"
	"github.com/gvs-lb/gvs/internal/vrrp"
)

// The admin API's types are its own (internal/api/wire); this file turns
// the runtime packages' state into them, so that neither side's structs
// leak into the other.

var _ api.State = (*keepalived)(nil)

// Checkers is the "checkers" view: every health checker, in configuration
// order.
func (k *keepalived) Checkers() []wire.Checker {
	out := []wire.Checker{}
	for _, s := range k.checkerStatus() {
		out = append(out, checkerView(s))
	}
	return out
}

// VirtualServers is the "virtual-servers" view.
func (k *keepalived) VirtualServers() []wire.VirtualServer {
	out := []wire.VirtualServer{}
	for _, s := range k.virtualServerStatus() {
		out = append(out, virtualServerView(s))
	}
	return out
}

// VRRPInstances is the "vrrp" view, by instance name.
func (k *keepalived) VRRPInstances() []wire.VRRPInstance {
	out := []wire.VRRPInstance{}
	for _, s := range k.vrrpStatus() {
		out = append(out, vrrpView(s))
	}
	return out
}

func checkerView(s check.Status) wire.Checker {
	return wire.Checker{
		Service:    s.Service,
		RealServer: s.RealServer,
		Type:       string(s.Type),
		Target:     s.Target,
		State:      s.State,
		Enabled:    s.Enabled,
		HasRun:     s.HasRun,
		Alpha:      s.Alpha,
		Retry:      s.Retry,
		RetryIt:    s.RetryIt,
		DelayLoop:  s.DelayLoop,
		Checks:     s.Checks,
		Failures:   s.Failures,
		LastError:  s.LastError,
		LastCheck:  s.LastCheck,
		LastChange: s.LastChange,
		Weight:     s.Weight,
		Delta:      s.Delta,
	}
}

func virtualServerView(s check.VirtualStatus) wire.VirtualServer {
	v := wire.VirtualServer{
		Service:     s.Service,
		QuorumUp:    s.QuorumUp,
		Quorum:      s.Quorum,
		Hysteresis:  s.Hysteresis,
		LiveWeight:  s.LiveWeight,
		RealServers: []wire.PoolServer{},
	}
	if s.SorryServer != nil {
		sorry := poolServerView(*s.SorryServer)
		v.SorryServer = &sorry
	}
	for _, rs := range s.RealServers {
		v.RealServers = append(v.RealServers, poolServerView(rs))
	}
	return v
}

func poolServerView(s check.RealServerStatus) wire.PoolServer {
	return wire.PoolServer{
		Addr:           s.Addr,
		Alive:          s.Alive,
		InPool:         s.InPool,
		Weight:         s.Weight,
		PoolWeight:     s.PoolWeight,
		FailedCheckers: s.FailedCheckers,
	}
}

func vrrpView(s vrrp.Status) wire.VRRPInstance {
	return wire.VRRPInstance{
		Name:                 s.Name,
		Interface:            s.Interface,
		VRID:                 s.VRID,
		Version:              s.Version,
		State:                s.State.String(),
		Priority:             s.Priority,
		EffectivePriority:    s.EffectivePriority,
		MasterAddr:           s.MasterAddr,
		VIPs:                 s.VIPs,
		AdvertsSent:          s.AdvertsSent,
		AdvertsReceived:      s.AdvertsReceived,
		PriorityZeroSent:     s.PriorityZeroSent,
		PriorityZeroReceived: s.PriorityZeroReceived,
		BecomeMaster:         s.BecomeMaster,
		ReleaseMaster:        s.ReleaseMaster,
		Drops:                s.Drops,
	}
}

// SyncDaemons serves m's connection sync daemons on the admin API.
func SyncDaemons(m *ipvssync.Manager) api.Daemons { return syncDaemons{m} }

type syncDaemons struct{ m *ipvssync.Manager }

func (d syncDaemons) Start(cfg wire.SyncDaemon) error { return d.m.Start(ipvssync.Config(cfg)) }

func (d syncDaemons) Stop(state string) error { return d.m.Stop(state) }

func (d syncDaemons) Daemons() []wire.SyncDaemonStatus { return d.convert(d.m.Daemons()) }

func (syncDaemons) convert(ds []ipvssync.Status) []wire.SyncDaemonStatus {
	var out []wire.SyncDaemonStatus
	for _, s := range ds {
		out = append(out, wire.SyncDaemonStatus{
			SyncDaemon: wire.SyncDaemon(s.Config),
			Sent:       s.Sent,
			Messages:   s.Messages,
			Installed:  s.Installed,
			Skipped:    s.Skipped,
			Dropped:    s.Dropped,
			Errors:     s.Errors,
		})
	}
	return out
}

// engineView is the "engine" view of an engine's own bounds and counters.
func engineView(st engine.State) wire.Engine {
	out := wire.Engine{
		Engine:                 st.Engine,
		FDLimit:                st.FDLimit,
		TCPConnLimit:           st.TCPConnLimit,
		TCPConnLimitPerService: st.TCPConnLimitPerService,
		TCPConns:               st.TCPConns,
		TCPRefused:             st.TCPRefused,
		UDPFlowLimit:           st.UDPFlowLimit,
		UDPFlowLimitPerService: st.UDPFlowLimitPerService,
		UDPFlows:               st.UDPFlows,
		UDPSockets:             st.UDPSockets,
		LoopsRefused:           st.LoopsRefused,
		Services:               []wire.EngineService{},
	}
	for _, s := range st.Services {
		out.Services = append(out.Services, wire.EngineService(s))
	}
	if x := st.XDP; x != nil {
		v := &wire.XDPEngine{
			Interfaces:   []wire.XDPInterface{},
			PinPath:      x.PinPath,
			Services:     wire.Bound(x.Services),
			RealServers:  wire.Bound(x.RealServers),
			ConnEntries4: wire.Bound(x.ConnEntries4),
			ConnEntries6: wire.Bound(x.ConnEntries6),
			Packets:      []wire.PacketReason{},
		}
		for _, i := range x.Interfaces {
			v.Interfaces = append(v.Interfaces, wire.XDPInterface(i))
		}
		for _, p := range x.Packets {
			v.Packets = append(v.Packets, wire.PacketReason(p))
		}
		out.XDP = v
	}
	return out
}
