// Package wire holds the admin API's contract: the requests gvsd's admin
// socket accepts and the answers and state it serves, as JSON. The table's
// own types (commands, services with their counters, connections,
// timeouts) are internal/ipvs's; everything else the API says is defined
// here, so that gvsadm depends on neither the daemon's runtime packages
// nor the data planes, and a change in them cannot change the API
// unnoticed.
//
// The routes (internal/api serves them, its Client calls them):
//
//	POST   /v1/commands          []ipvs.Command, applied in order: 204, or CommandError (400 bad request, 409 refused, 503 shutting down)
//	GET    /v1/services          []ipvs.ServiceStatus; ?service=KEY: only that service, [] when there is none
//	GET    /v1/conns             []ipvs.Conn
//	GET    /v1/timeouts          ipvs.Timeouts
//	GET    /v1/info              Info
//	GET    /v1/state/checkers        []Checker
//	GET    /v1/state/virtual-servers []VirtualServer
//	GET    /v1/state/vrrp            []VRRPInstance
//	GET    /v1/state/engine          Engine (engines that have one: proxy, xdp)
//	GET    /v1/daemons           []SyncDaemonStatus, master first
//	POST   /v1/daemons           SyncDaemon: 204, or CommandError
//	DELETE /v1/daemons/{state}   204, or CommandError
//
// KEY is a service as ipvs.ServiceKey's String writes it, URL-encoded:
// "TCP 198.18.0.10:80", "UDP [2001:db8::1]:53", "FWM 5", "FWM 5 IPv6".
// gvsd then reads the counters of that service alone, not the table's.
//
// Answers carry their Content-Length, except a GET /v1/services longer
// than 64 KiB, which is sent as it is encoded and ends with the
// connection (no chunked encoding, which internal/api/client does not
// read).
//
// Requests are decoded strictly: an unknown field or data after the JSON
// value is a 400, as are an unknown query parameter and a KEY that does
// not parse (the CommandError says what is wrong). The state views are empty arrays, never null, when there
// is nothing to show.
package wire

import (
	"cmp"
	"net/netip"
	"os"
	"time"
)

// DefaultSocketPath is where gvsd listens unless told otherwise.
const DefaultSocketPath = "/run/gvs/gvsd.sock"

// DefaultSocket is $GVS_SOCKET, or DefaultSocketPath.
func DefaultSocket() string { return cmp.Or(os.Getenv("GVS_SOCKET"), DefaultSocketPath) }

// Info describes the running daemon, as ipvsadm's title line needs it.
type Info struct {
	Version     string `json:"version"`       // IPVS version emulated: "1.2.1"
	ConnTabSize int    `json:"conn_tab_size"` // 4096, printed in the title
	Engine      string `json:"engine"`
}

// CommandError is a request the daemon refused. Msg carries ipvsadm's
// wording; Index is the command's position in the batch.
type CommandError struct {
	Index int    `json:"index"`
	Msg   string `json:"error"`
}

func (e *CommandError) Error() string { return e.Msg }

// Refused answers POST /v1/commands?on_error=continue, which applies every
// command it can as ipvsadm -R applies lines: the commands refused (Index
// is the position in the request), in order. The others were applied.
type Refused struct {
	Refused []CommandError `json:"refused"`
}

// Checker is one health checker's state, what keepalived's data dump shows
// of it (GET /v1/state/checkers, in configuration order).
type Checker struct {
	Service    string         `json:"service,omitempty"` // "TCP 198.18.0.100:80"
	RealServer netip.AddrPort `json:"real_server"`
	Type       string         `json:"type"` // TCP_CHECK, HTTP_GET, ...
	Target     netip.AddrPort `json:"target"`
	State      string         `json:"state"` // "UP" or "DOWN"
	Enabled    bool           `json:"enabled"`
	HasRun     bool           `json:"has_run"`
	Alpha      bool           `json:"alpha,omitempty"`
	Retry      int            `json:"retry"`
	RetryIt    int            `json:"retry_it"` // failed attempts of the current failure
	DelayLoop  string         `json:"delay_loop"`
	Checks     uint64         `json:"checks"`
	Failures   uint64         `json:"failures"`
	LastError  string         `json:"last_error,omitempty"`
	LastCheck  time.Time      `json:"last_check,omitzero"`
	LastChange time.Time      `json:"last_change,omitzero"`
	Weight     int            `json:"dynamic_weight,omitempty"` // last misc_dynamic weight, -1 when none
	Delta      int64          `json:"weight_delta,omitempty"`   // FILE_CHECK's weight change
}

// VirtualServer is a virtual server's pool as its checkers made it
// (GET /v1/state/virtual-servers).
type VirtualServer struct {
	Service     string       `json:"service"`
	QuorumUp    bool         `json:"quorum_up"`
	Quorum      int          `json:"quorum"`
	Hysteresis  int          `json:"hysteresis"`
	LiveWeight  int64        `json:"live_weight"`
	SorryServer *PoolServer  `json:"sorry_server,omitempty"`
	RealServers []PoolServer `json:"real_servers"`
}

// PoolServer is a real server's place in its virtual server's pool.
type PoolServer struct {
	Addr           netip.AddrPort `json:"addr"`
	Alive          bool           `json:"alive"`
	InPool         bool           `json:"in_pool"`
	Weight         int32          `json:"weight"`      // effective weight
	PoolWeight     int32          `json:"pool_weight"` // weight in the pool (0 when inhibited)
	FailedCheckers int            `json:"failed_checkers"`
}

// VRRPInstance is a vrrp_instance's state and counters
// (GET /v1/state/vrrp, by name).
type VRRPInstance struct {
	Name                 string            `json:"name"`
	Interface            string            `json:"interface"`
	VRID                 uint8             `json:"vrid"`
	Version              uint8             `json:"version"`
	State                string            `json:"state"` // MASTER, BACKUP, FAULT, INIT or STOP
	Priority             uint8             `json:"priority"`
	EffectivePriority    uint8             `json:"effective_priority"`
	MasterAddr           string            `json:"master_addr,omitempty"`
	VIPs                 []string          `json:"vips"`
	AdvertsSent          uint64            `json:"adverts_sent"`
	AdvertsReceived      uint64            `json:"adverts_received"`
	PriorityZeroSent     uint64            `json:"priority_zero_sent"`
	PriorityZeroReceived uint64            `json:"priority_zero_received"`
	BecomeMaster         uint64            `json:"become_master"`
	ReleaseMaster        uint64            `json:"release_master"`
	Drops                map[string]uint64 `json:"drops"` // by reason
}

// Sync daemon states, as ipvsadm --start-daemon names them.
const (
	SyncMaster = "master"
	SyncBackup = "backup"
)

// SyncDaemon is one connection sync daemon's settings (ipvsadm
// --start-daemon STATE --mcast-interface --syncid --sync-maxlen
// --mcast-group --mcast-port --mcast-ttl). Zero values take the kernel's
// defaults.
type SyncDaemon struct {
	State     string     `json:"state"` // SyncMaster or SyncBackup
	Interface string     `json:"mcast_ifn"`
	SyncID    uint8      `json:"syncid"`
	MaxLen    int        `json:"sync_maxlen,omitempty"`
	Group     netip.Addr `json:"mcast_group,omitzero"`
	Port      uint16     `json:"mcast_port,omitempty"`
	TTL       uint8      `json:"mcast_ttl,omitempty"`
}

// SyncDaemonStatus is a running sync daemon: its settings in effect and
// its counters (GET /v1/daemons).
type SyncDaemonStatus struct {
	SyncDaemon
	Sent      uint64 `json:"sent_conns"`            // master: entries sent
	Messages  uint64 `json:"messages"`              // datagrams sent or received
	Installed uint64 `json:"installed_conns"`       // backup: entries installed
	Skipped   uint64 `json:"skipped_conns"`         // entries skipped: no such service or real server here, or unsupported
	Dropped   uint64 `json:"dropped_messages"`      // backup: malformed or foreign-syncid datagrams
	Errors    uint64 `json:"send_errors,omitempty"` // master: failed sends
}

// Engine is what the running engine bounds and what those bounds turned
// away (GET /v1/state/engine, gvsadm engine).
type Engine struct {
	Engine  string `json:"engine"`
	FDLimit uint64 `json:"fd_limit"` // the process's RLIMIT_NOFILE
	// TCPConnLimit and TCPConnLimitPerService bound the open TCP
	// connections; TCPConns is how many there are, TCPRefused how many
	// were reset at a bound.
	TCPConnLimit           int    `json:"tcp_conn_limit"`
	TCPConnLimitPerService int    `json:"tcp_conn_limit_per_service"`
	TCPConns               int    `json:"tcp_conns"`
	TCPRefused             uint64 `json:"tcp_refused"`
	// UDPFlowLimit and UDPFlowLimitPerService bound the UDP flows and
	// one-packet reply paths; UDPFlows is how many there are, on
	// UDPSockets reply sockets.
	UDPFlowLimit           int `json:"udp_flow_limit"`
	UDPFlowLimitPerService int `json:"udp_flow_limit_per_service"`
	UDPFlows               int `json:"udp_flows"`
	UDPSockets             int `json:"udp_sockets"`
	// LoopsRefused counts connections and flows that came from gvsd
	// itself (a real server leading back to one of its services).
	LoopsRefused uint64          `json:"loops_refused"`
	Services     []EngineService `json:"services"`
	// XDP is the xdp engine's state, absent on the other engines. The
	// fields above are the proxy engine's: zero on the xdp engine.
	XDP *XDPEngine `json:"xdp,omitempty"`
}

// XDPEngine is what the xdp engine is attached to, how full its maps are
// and what its program did not simply forward.
type XDPEngine struct {
	Interfaces []XDPInterface `json:"interfaces"`
	PinPath    string         `json:"pin_path,omitempty"` // gvsd --bpf-pin
	// Services and RealServers are map slots (--xdp-max-services,
	// --xdp-max-real-servers): used by those configured and by removed
	// ones whose connections live on.
	Services    Bound `json:"services"`
	RealServers Bound `json:"real_servers"`
	// ConnEntries4 and ConnEntries6 are the connection tables of each
	// family (--xdp-max-conns): one entry per DR or TUN connection, two
	// per NAT or FullNAT one, as the last expiry pass (every second)
	// counted them.
	ConnEntries4 Bound `json:"conn_entries_ipv4"`
	ConnEntries6 Bound `json:"conn_entries_ipv6"`
	// Packets counts, by reason, the packets the program passed to the
	// kernel, dropped, answered or changed: every reason, zero or not.
	Packets []PacketReason `json:"packets"`
}

// XDPInterface is an interface the xdp program is attached to.
type XDPInterface struct {
	Name string `json:"name"`
	Mode string `json:"mode"` // "native" or "generic"
}

// Bound is a fixed capacity and how much of it is used.
type Bound struct {
	Used  int `json:"used"`
	Limit int `json:"limit"`
}

// PacketReason is the packets counted for one reason.
type PacketReason struct {
	Reason  string `json:"reason"`  // "no-service"
	Meaning string `json:"meaning"` // what it means and what became of the packets
	Packets uint64 `json:"packets"`
}

// EngineService is one service's share of Engine.
type EngineService struct {
	Service   string `json:"service"`   // "UDP 198.18.0.1:53"
	Listening bool   `json:"listening"` // false: no real server can take a new connection, the kernel refuses them
	TCPConns  int    `json:"tcp_conns"` // TCP: open connections
	Flows     int    `json:"flows"`     // UDP: flows and one-packet reply paths
	Sockets   int    `json:"sockets"`   // UDP: reply sockets
	Evicted   uint64 `json:"evicted"`   // UDP: flows ended early to make room
	Refused   uint64 `json:"refused"`   // new UDP flows dropped (no room, no socket, or a loop), TCP connections reset at a bound
}
