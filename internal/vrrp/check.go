package vrrp

import (
	"errors"
	"net/netip"
	"slices"
	"sync/atomic"
)

// DropReason says why a received packet was not accepted as an advert.
type DropReason uint8

// Drop reasons, in the order the checks run (keepalived's vrrp_in_chk).
const (
	DropNone       DropReason = iota // accepted
	DropShort                        // shorter than a VRRP header
	DropTTL                          // TTL / hop limit is not 255
	DropVersion                      // version differs from the instance's
	DropType                         // type is not ADVERTISEMENT
	DropVRID                         // another virtual router
	DropAuthType                     // v2 auth type unknown or not ours
	DropAuth                         // v2 password differs
	DropInterval                     // v2 advert interval differs from ours
	DropAddrCount                    // address count differs from our VIP count
	DropLength                       // length does not match the address count
	DropChecksum                     // bad checksum
	DropAddrList                     // one of our VIPs is missing from the advert
	DropOwn                          // our own advert looped back
	DropUnicastSrc                   // unicast advert from an address not in unicast_peer (check_unicast_src)
	DropAHReplay                     // AH sequence number not above the last one seen (a replay)
	numDropReasons
)

var dropNames = [numDropReasons]string{
	DropNone:       "none",
	DropShort:      "too_short",
	DropTTL:        "bad_ttl",
	DropVersion:    "bad_version",
	DropType:       "bad_type",
	DropVRID:       "vrid_mismatch",
	DropAuthType:   "auth_type_mismatch",
	DropAuth:       "auth_failure",
	DropInterval:   "interval_mismatch",
	DropAddrCount:  "addr_count_mismatch",
	DropLength:     "bad_length",
	DropChecksum:   "bad_checksum",
	DropAddrList:   "addr_list_mismatch",
	DropOwn:        "own_advert",
	DropUnicastSrc: "unicast_src_not_peer",
	DropAHReplay:   "ah_replay",
}

func (r DropReason) String() string {
	if r < numDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// DropCounters counts dropped packets by reason; safe for concurrent use.
type DropCounters struct {
	n [numDropReasons]atomic.Uint64
}

// Add counts one packet dropped for r.
func (c *DropCounters) Add(r DropReason) {
	if r < numDropReasons {
		c.n[r].Add(1)
	}
}

// Get returns how many packets were dropped for r.
func (c *DropCounters) Get(r DropReason) uint64 {
	if r < numDropReasons {
		return c.n[r].Load()
	}
	return 0
}

// Map returns the non-zero counters keyed by reason name.
func (c *DropCounters) Map() map[string]uint64 {
	m := map[string]uint64{}
	for r := DropShort; r < numDropReasons; r++ {
		if v := c.n[r].Load(); v > 0 {
			m[r.String()] = v
		}
	}
	return m
}

// Received is a packet read from the network, IP header already removed.
type Received struct {
	Src, Dst netip.Addr
	// TTL is the IPv4 TTL or IPv6 hop limit, -1 when unknown.
	TTL     int
	Payload []byte
	// ChecksumDone says the kernel already verified the checksum (IPv6
	// raw sockets with IPV6_CHECKSUM), as keepalived relies on.
	ChecksumDone bool
	// IPHeader is the IPv4 header as received, options included; with
	// auth_type AH, Payload is the AH header and the advert, and the AH
	// ICV covers this header. Empty when the Conn does not keep it.
	IPHeader []byte
}

// Validator checks received packets against an instance's configuration.
type Validator struct {
	Version  uint8
	VRID     uint8
	IPv6     bool
	AuthType AuthType
	AuthData [authLen]byte
	// Interval is the v2 advert interval in seconds; ignored for v3.
	Interval uint16
	VIPs     []netip.Addr
	// Unicast disables the TTL check, as keepalived does with unicast peers.
	Unicast bool
	// Own lists our source addresses: packets from them are our own.
	Own []netip.Addr
	// Peers, when not empty, are the only sources accepted: keepalived's
	// check_unicast_src / vrrp_check_unicast_src for unicast instances.
	Peers []netip.Addr
	// AHSeq is the instance's AH sequence counter (AuthType AH): adverts
	// whose sequence number is not above it are dropped as replays, and
	// accepted ones move it. Nil skips the replay check.
	AHSeq *AHCounter
}

// Check parses and validates r. It returns the advert, or the reason the
// packet is dropped. It never panics on any input.
func (v *Validator) Check(r Received) (*Advert, DropReason) {
	b := r.Payload
	if len(b) < hdrLen {
		return nil, DropShort
	}
	if slices.Contains(v.Own, r.Src) {
		return nil, DropOwn
	}
	if !v.Unicast && r.TTL >= 0 && r.TTL != TTL {
		return nil, DropTTL
	}
	if len(v.Peers) > 0 && !slices.Contains(v.Peers, r.Src) {
		return nil, DropUnicastSrc
	}
	if v.AuthType == AuthAH && v.Version == 2 && !v.IPv6 {
		// the AH header comes first, and nothing in the packet can be
		// trusted before its ICV is checked
		if len(r.IPHeader) < ipv4HdrLen || r.IPHeader[9] != IPProtoAH {
			return nil, DropAuthType // a plain advert to an AH instance
		}
		if len(b) < ahLen+hdrLen {
			return nil, DropShort
		}
		inner, info, err := OpenAH(r.IPHeader, b, v.AuthData, v.Unicast)
		switch {
		case errors.Is(err, ErrAHNext):
			return nil, DropAuthType // AH around something other than VRRP
		case err != nil:
			return nil, DropAuth
		}
		if v.AHSeq != nil && !v.AHSeq.Accept(info.Seq) {
			return nil, DropAHReplay
		}
		b = inner
	} else if len(r.IPHeader) >= ipv4HdrLen && r.IPHeader[9] == IPProtoAH {
		return nil, DropAuthType // an AH packet to an instance without AH
	}
	if b[0]>>4 != v.Version {
		return nil, DropVersion
	}
	if b[0]&0x0f != TypeAdv {
		return nil, DropType
	}
	if b[1] != v.VRID {
		return nil, DropVRID
	}
	if v.Version == 2 {
		if AuthType(b[4]) != v.AuthType {
			return nil, DropAuthType
		}
		if uint16(b[5]) != v.Interval {
			return nil, DropInterval
		}
	}
	n := int(b[3])
	if n != len(v.VIPs) {
		return nil, DropAddrCount
	}
	alen := 4
	if v.IPv6 {
		alen = 16
	}
	want := hdrLen + n*alen
	if v.Version == 2 {
		want += authLen
	}
	if len(b) != want {
		return nil, DropLength
	}
	if v.Version == 2 && v.AuthType == AuthPass && [authLen]byte(b[want-authLen:]) != v.AuthData {
		return nil, DropAuth
	}
	if !r.ChecksumDone && !Verify(v.Version, r.Src, r.Dst, b) {
		// keepalived before 2.0.11 summed unicast v3 adverts as if sent
		// to the multicast group; accept those too, as keepalived does.
		if !(v.Unicast && v.Version == 3 && r.Src.Is4() && Verify(3, r.Src, Group4, b)) {
			return nil, DropChecksum
		}
	}
	a, err := Unmarshal(b, v.IPv6)
	if err != nil {
		return nil, DropLength
	}
	for _, vip := range v.VIPs {
		if !slices.Contains(a.Addrs, vip) {
			return nil, DropAddrList
		}
	}
	return a, DropNone
}
