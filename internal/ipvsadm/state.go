package ipvsadm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/gvs-lb/gvs/internal/api/client"
	"github.com/gvs-lb/gvs/internal/api/wire"
)

// StateClient fetches gvsd's extra views (GET /v1/state/NAME).
type StateClient interface {
	State(ctx context.Context, name string, v any) error
	Socket() string
}

// stateCommands are gvsadm's keepalived views: what keepalived's data dump
// shows, from the running gvsd.
var stateCommands = map[string]func(w io.Writer, raw json.RawMessage) error{
	"checkers":        writeCheckers,
	"virtual-servers": writeVirtualServers,
	"vrrp":            writeVRRP,
	"daemons":         writeDaemons, // from the sync daemon listing (daemonsState), not /v1/state
	"engine":          writeEngine,
}

// RunState is `gvsadm checkers|virtual-servers|vrrp|daemons|engine [--json]`.
func RunState(ctx context.Context, name string, args []string, stdout, stderr io.Writer, c StateClient) int {
	asJSON := len(args) == 1 && args[0] == "--json"
	if len(args) > 0 && !asJSON {
		fmt.Fprintf(stderr, "usage: gvsadm %s [--json]\n", name)
		return ExitUsage
	}
	var raw json.RawMessage
	if err := c.State(ctx, name, &raw); err != nil {
		if errors.Is(err, client.ErrNotRunning) {
			fmt.Fprintf(stderr, "gvsadm: gvsd is not running (no daemon on %s); start it with gvsd -f keepalived.conf --socket %s, or set GVS_SOCKET\n", c.Socket(), c.Socket())
			return ExitUsage
		}
		fmt.Fprintln(stderr, "gvsadm:", err)
		return ExitFailure
	}
	if asJSON {
		stdout.Write(append(raw, '\n'))
		return ExitOK
	}
	if err := stateCommands[name](stdout, raw); err != nil {
		fmt.Fprintln(stderr, "gvsadm:", err)
		return ExitFailure
	}
	return ExitOK
}

func table(w io.Writer, header string, rows func(tw io.Writer)) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	rows(tw)
	return tw.Flush()
}

func writeCheckers(w io.Writer, raw json.RawMessage) error {
	var st []wire.Checker
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	return table(w, "Service\tReal server\tChecker\tTarget\tState\tChecks\tFailures\tLast error", func(tw io.Writer) {
		for _, s := range st {
			state := s.State
			if !s.Enabled {
				state += " (suspended)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", s.Service, s.RealServer, s.Type, s.Target, state, s.Checks, s.Failures, s.LastError)
		}
	})
}

func writeVirtualServers(w io.Writer, raw json.RawMessage) error {
	var st []wire.VirtualServer
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	for _, v := range st {
		quorum := "down"
		if v.QuorumUp {
			quorum = "up"
		}
		fmt.Fprintf(w, "%s  quorum %d %s, live weight %d\n", v.Service, v.Quorum, quorum, v.LiveWeight)
		servers := v.RealServers
		if v.SorryServer != nil {
			servers = append(servers, *v.SorryServer)
		}
		err := table(w, "  -> Real server\tAlive\tIn pool\tWeight", func(tw io.Writer) {
			for i, r := range servers {
				name := r.Addr.String()
				if v.SorryServer != nil && i == len(servers)-1 {
					name += " (sorry)"
				}
				fmt.Fprintf(tw, "  -> %s\t%s\t%s\t%d\n", name, yesNo(r.Alive), yesNo(r.InPool), r.PoolWeight)
			}
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func writeVRRP(w io.Writer, raw json.RawMessage) error {
	var st []wire.VRRPInstance
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	return table(w, "Instance\tInterface\tVRID\tVersion\tState\tPriority\tEffective\tMaster\tSent\tReceived\tDropped\tVIPs", func(tw io.Writer) {
		for _, s := range st {
			var dropped uint64
			for _, n := range s.Drops {
				dropped += n
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%d\t%d\t%s\t%d\t%d\t%d\t%s\n", s.Name, s.Interface, s.VRID, s.Version, s.State,
				s.Priority, s.EffectivePriority, s.MasterAddr, s.AdvertsSent, s.AdvertsReceived, dropped, strings.Join(s.VIPs, ","))
		}
	})
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// writeEngine is the "engine" view: the engine's bounds and what they
// turned away (TCP connections refused, UDP flows evicted and refused,
// loops refused), and which services listen; on the xdp engine,
// writeXDP's.
func writeEngine(w io.Writer, raw json.RawMessage) error {
	var st wire.Engine
	if err := json.Unmarshal(raw, &st); err != nil {
		return err
	}
	if st.XDP != nil {
		return writeXDP(w, st.XDP)
	}
	fmt.Fprintf(w, "Engine %s: descriptor limit %d, UDP flows %d of %d (at most %d per service) on %d sockets, loops refused %d\n",
		st.Engine, st.FDLimit, st.UDPFlows, st.UDPFlowLimit, st.UDPFlowLimitPerService, st.UDPSockets, st.LoopsRefused)
	if st.TCPConnLimit > 0 {
		fmt.Fprintf(w, "TCP connections %d of %d (at most %d per service), refused %d\n",
			st.TCPConns, st.TCPConnLimit, st.TCPConnLimitPerService, st.TCPRefused)
	}
	if len(st.Services) == 0 {
		return nil
	}
	return table(w, "Service\tListening\tConns\tFlows\tSockets\tEvicted\tRefused", func(tw io.Writer) {
		for _, s := range st.Services {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\n", s.Service, yesNo(s.Listening), s.TCPConns, s.Flows, s.Sockets, s.Evicted, s.Refused)
		}
	})
}

// writeXDP is the xdp engine's view: the interfaces and their XDP mode,
// how full each map is, and the packets of every reason that counted
// some, with what the reason means.
func writeXDP(w io.Writer, x *wire.XDPEngine) error {
	var ifs []string
	for _, i := range x.Interfaces {
		ifs = append(ifs, fmt.Sprintf("%s (%s)", i.Name, i.Mode))
	}
	fmt.Fprintf(w, "Engine xdp on %s", strings.Join(ifs, ", "))
	if x.PinPath != "" {
		fmt.Fprintf(w, ", pinned in %s", x.PinPath)
	}
	fmt.Fprintln(w)
	err := table(w, "Map\tUsed\tLimit\tFull", func(tw io.Writer) {
		for _, m := range []struct {
			name string
			b    wire.Bound
		}{
			{"Virtual services", x.Services},
			{"Real servers", x.RealServers},
			{"IPv4 connection entries", x.ConnEntries4},
			{"IPv6 connection entries", x.ConnEntries6},
		} {
			full := 0
			if m.b.Limit > 0 {
				full = m.b.Used * 100 / m.b.Limit
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d%%\n", m.name, m.b.Used, m.b.Limit, full)
		}
	})
	if err != nil {
		return err
	}
	var counted []wire.PacketReason
	for _, p := range x.Packets {
		if p.Packets > 0 {
			counted = append(counted, p)
		}
	}
	if len(counted) == 0 {
		_, err := fmt.Fprintln(w, "No packet dropped or left to the kernel")
		return err
	}
	return table(w, "Reason\tPackets\tMeaning", func(tw io.Writer) {
		for _, p := range counted {
			fmt.Fprintf(tw, "%s\t%d\t%s\n", p.Reason, p.Packets, p.Meaning)
		}
	})
}
