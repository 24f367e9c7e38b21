// Package vrrp implements the Virtual Router Redundancy Protocol, version 2
// (RFC 3768) and version 3 (RFC 5798) for IPv4 and IPv6, interoperable with
// keepalived: the advert codec (with keepalived's IPsec AH authentication
// for VRRPv2), a pure state machine, raw-socket I/O, VIPs
// through netlink, gratuitous ARP / unsolicited NA, tracking and notify
// scripts.
package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Protocol numbers and well-known addresses of VRRP.
const (
	IPProto  = 112 // IP protocol number of VRRP
	TTL      = 255 // required TTL / hop limit of an advert
	TypeAdv  = 1   // the only VRRP packet type: ADVERTISEMENT
	authLen  = 8   // v2 authentication data length
	hdrLen   = 8   // fixed VRRP header length (v2 and v3)
	maxAddrs = 255 // Count IPvX Addr is one byte
)

// Multicast groups adverts are sent to.
var (
	Group4 = netip.MustParseAddr("224.0.0.18")
	Group6 = netip.MustParseAddr("ff02::12")
)

// AuthType is the VRRPv2 authentication type.
type AuthType uint8

// VRRPv2 authentication types. AH is keepalived's IPsec AH with
// HMAC-MD5-96 around the advert, IPv4 only (see ah.go).
const (
	AuthNone AuthType = 0
	AuthPass AuthType = 1
	AuthAH   AuthType = 2
)

func (a AuthType) String() string {
	switch a {
	case AuthNone:
		return "NONE"
	case AuthPass:
		return "PASS"
	case AuthAH:
		return "AH"
	}
	return fmt.Sprintf("auth(%d)", uint8(a))
}

// Advert is one VRRP advertisement.
type Advert struct {
	Version  uint8 // 2 or 3
	Type     uint8 // TypeAdv
	VRID     uint8
	Priority uint8
	// Interval is the advert interval field: whole seconds (8 bits) in v2,
	// centiseconds (12 bits, Max Adver Int) in v3.
	Interval uint16
	// Reserved holds v3's 4 reserved bits, kept for exact round trips.
	Reserved uint8
	Checksum uint16
	AuthType AuthType // v2 only
	AuthData [authLen]byte
	Addrs    []netip.Addr
}

// IntervalDuration is the advert interval as a duration.
func (a *Advert) IntervalDuration() time.Duration {
	if a.Version == 2 {
		return time.Duration(a.Interval) * time.Second
	}
	return time.Duration(a.Interval) * 10 * time.Millisecond
}

// PassAuthData returns the 8 bytes keepalived puts in a v2 PASS advert: the
// first 8 characters of the password, zero padded.
func PassAuthData(pass string) [authLen]byte {
	var d [authLen]byte
	copy(d[:], pass)
	return d
}

// Len is the length of the marshalled advert.
func (a *Advert) Len() int {
	n := hdrLen
	for _, ad := range a.Addrs {
		if ad.Is4() {
			n += 4
		} else {
			n += 16
		}
	}
	if a.Version == 2 {
		n += authLen
	}
	return n
}

// Codec errors.
var (
	ErrShort   = errors.New("vrrp: packet too short")
	ErrVersion = errors.New("vrrp: version is neither 2 nor 3")
)

// Unmarshal parses an advert from b (the VRRP message, without IP header).
// is6 says whether the addresses are IPv6 (known from the IP layer). Bytes
// after the advert are ignored; the checksum is not verified (see Verify).
func Unmarshal(b []byte, is6 bool) (*Advert, error) {
	if len(b) < hdrLen {
		return nil, ErrShort
	}
	a := &Advert{
		Version:  b[0] >> 4,
		Type:     b[0] & 0x0f,
		VRID:     b[1],
		Priority: b[2],
		Checksum: binary.BigEndian.Uint16(b[6:8]),
	}
	n := int(b[3])
	switch a.Version {
	case 2:
		if is6 {
			return nil, fmt.Errorf("vrrp: version 2 advert over IPv6 (VRRPv2 is IPv4 only)")
		}
		a.AuthType = AuthType(b[4])
		a.Interval = uint16(b[5])
	case 3:
		a.Reserved = b[4] >> 4
		a.Interval = binary.BigEndian.Uint16(b[4:6]) & 0x0fff
	default:
		return nil, ErrVersion
	}
	alen := 4
	if is6 {
		alen = 16
	}
	need := hdrLen + n*alen
	if a.Version == 2 {
		need += authLen
	}
	if len(b) < need {
		return nil, fmt.Errorf("%w: %d bytes, %d addresses need %d", ErrShort, len(b), n, need)
	}
	if n > 0 {
		a.Addrs = make([]netip.Addr, n)
	}
	off := hdrLen
	for i := range n {
		if is6 {
			a.Addrs[i] = netip.AddrFrom16([16]byte(b[off : off+16]))
		} else {
			a.Addrs[i] = netip.AddrFrom4([4]byte(b[off : off+4]))
		}
		off += alen
	}
	if a.Version == 2 {
		copy(a.AuthData[:], b[off:off+authLen])
	}
	return a, nil
}

// AppendRaw appends the advert with its Checksum field as it is.
func (a *Advert) AppendRaw(b []byte) ([]byte, error) {
	if len(a.Addrs) > maxAddrs {
		return nil, fmt.Errorf("vrrp: %d addresses, at most %d fit an advert", len(a.Addrs), maxAddrs)
	}
	if a.Version != 2 && a.Version != 3 {
		return nil, ErrVersion
	}
	var is6 bool
	for i, ad := range a.Addrs {
		if i == 0 {
			is6 = ad.Is6()
		} else if ad.Is6() != is6 {
			return nil, fmt.Errorf("vrrp: advert mixes IPv4 and IPv6 addresses (%s)", ad)
		}
	}
	b = append(b, a.Version<<4|a.Type&0x0f, a.VRID, a.Priority, uint8(len(a.Addrs)))
	if a.Version == 2 {
		if a.Interval > 0xff {
			return nil, fmt.Errorf("vrrp: v2 advert interval %d s does not fit 8 bits", a.Interval)
		}
		b = append(b, uint8(a.AuthType), uint8(a.Interval))
	} else {
		if a.Interval > 0x0fff {
			return nil, fmt.Errorf("vrrp: v3 advert interval %d cs does not fit 12 bits", a.Interval)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(a.Reserved&0x0f)<<12|a.Interval)
	}
	b = binary.BigEndian.AppendUint16(b, a.Checksum)
	for _, ad := range a.Addrs {
		b = append(b, ad.AsSlice()...)
	}
	if a.Version == 2 {
		b = append(b, a.AuthData[:]...)
	}
	return b, nil
}

// Marshal encodes the advert and fills in its checksum. src and dst are the
// IP source and destination, used by v3's pseudo-header; v2 ignores them.
func (a *Advert) Marshal(src, dst netip.Addr) ([]byte, error) {
	a.Checksum = 0
	b, err := a.AppendRaw(make([]byte, 0, a.Len()))
	if err != nil {
		return nil, err
	}
	a.Checksum = Checksum(a.Version, src, dst, b)
	binary.BigEndian.PutUint16(b[6:8], a.Checksum)
	return b, nil
}

// Checksum computes the checksum of the VRRP message b as keepalived does:
// v2 over the VRRP message only, v3 with the IPv4 or IPv6 pseudo-header of
// src and dst. The checksum field in b must be zero; a message whose field
// is set sums to zero when it is right (see Verify).
func Checksum(version uint8, src, dst netip.Addr, b []byte) uint16 {
	var sum uint32
	if version == 3 {
		sum = pseudoSum(src, dst, len(b))
	}
	return ^fold(addSum(sum, b))
}

// Verify reports whether the checksum of the VRRP message b is right.
func Verify(version uint8, src, dst netip.Addr, b []byte) bool {
	return Checksum(version, src, dst, b) == 0
}

func pseudoSum(src, dst netip.Addr, n int) uint32 {
	var sum uint32
	sum = addSum(sum, src.AsSlice())
	sum = addSum(sum, dst.AsSlice())
	if src.Is4() {
		// zero, protocol, 16-bit length
		sum += IPProto + uint32(n)
	} else {
		// 32-bit length, 24 zero bits, next header
		sum += uint32(n>>16) + uint32(n&0xffff) + IPProto
	}
	return sum
}

func addSum(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
