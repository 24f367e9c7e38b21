package ipvs

import "net/netip"

// Stats are cumulative counters, as ipvsadm --stats prints them.
type Stats struct {
	Conns    uint64 `json:"conns"`
	InPkts   uint64 `json:"inpkts"`
	OutPkts  uint64 `json:"outpkts"`
	InBytes  uint64 `json:"inbytes"`
	OutBytes uint64 `json:"outbytes"`
}

// Add adds o to s.
func (s *Stats) Add(o Stats) {
	s.Conns += o.Conns
	s.InPkts += o.InPkts
	s.OutPkts += o.OutPkts
	s.InBytes += o.InBytes
	s.OutBytes += o.OutBytes
}

// Rates are per-second rates from the estimator, as ipvsadm --rate prints.
type Rates struct {
	CPS    uint64 `json:"cps"`
	InPPS  uint64 `json:"inpps"`
	OutPPS uint64 `json:"outpps"`
	InBPS  uint64 `json:"inbps"`
	OutBPS uint64 `json:"outbps"`
}

// DestStatus is a real server with its live counters.
type DestStatus struct {
	Dest
	ActiveConns  uint32 `json:"active_conns"`
	InactConns   uint32 `json:"inact_conns"`
	PersistConns uint32 `json:"persist_conns"`
	Stats        Stats  `json:"stats"`
	Rates        Rates  `json:"rates"`
}

// ServiceStatus is a service with its live counters, its real servers in
// the kernel's order.
type ServiceStatus struct {
	Service
	Stats Stats        `json:"stats"`
	Rates Rates        `json:"rates"`
	Dests []DestStatus `json:"dests"`
}

// Conn is one connection entry, as ipvsadm -Lnc lists it. A persistence
// template has State "NONE" and client port 0.
type Conn struct {
	Proto   Protocol       `json:"proto"`
	Client  netip.AddrPort `json:"client"`
	Virtual netip.AddrPort `json:"virtual"`
	Dest    netip.AddrPort `json:"dest"`
	State   string         `json:"state"`
	Expires int64          `json:"expires_ms"` // milliseconds until it expires
	FWMark  uint32         `json:"fwmark,omitempty"`
}
