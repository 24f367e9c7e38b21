package vrrp

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// keepalived's auth_type AH wraps a VRRPv2 advert over IPv4 in an IPsec
// Authentication Header (RFC 2402) with a fixed key, no IKE and no kernel
// IPsec state:
//
//	IPv4 header, protocol 51 | AH (24 bytes) | VRRPv2 advert (auth type 2,
//	                                           8 zero bytes of auth data)
//
// The AH header: next header 112, payload length 4 (32-bit words minus 2),
// 2 reserved bytes, the SPI (the sender's IPv4 address), a sequence
// number, and the ICV: HMAC-MD5 truncated to 96 bits (RFC 2403), keyed
// with the 8 bytes of auth_pass (zero padded, longer passwords truncated
// as for PASS). The HMAC covers the IP header with TOS, fragment offset
// and header checksum set to zero (and the TTL too when the instance has
// unicast peers: keepalived leaves the TTL in for multicast), the AH
// header with a zero ICV, and the advert.
//
// The sequence number is one counter per instance for what it sends and
// what it accepts, as in keepalived: an advert whose number is not above
// the counter is a replay and dropped, an accepted one moves the counter,
// and the next advert sent continues from it. That is what lets a
// restarted router (counter 0) join: it adopts the master's number before
// it first sends.

// AH constants.
const (
	IPProtoAH  = 51 // IP protocol number of AH
	ahLen      = 24 // AH header with a 96-bit ICV
	ahICVLen   = 12 // HMAC-MD5-96
	ahPayload  = 4  // AH payload length field: 6 words minus 2
	ipv4HdrLen = 20
)

// AH errors, from OpenAH.
var (
	ErrAHShort = errors.New("vrrp: AH packet too short")
	ErrAHICV   = errors.New("vrrp: AH ICV (HMAC-MD5) does not match: wrong auth_pass or a changed packet")
	ErrAHSPI   = errors.New("vrrp: AH SPI is not the source address")
	ErrAHNext  = errors.New("vrrp: AH next header is not VRRP (112)")
)

// AHCounter is an instance's AH sequence number (see above). It is not
// safe for concurrent use: the instance's loop owns it.
type AHCounter struct{ n uint32 }

// Next returns the sequence number of the next advert to send. It stops
// at 2^32-1 instead of wrapping (keepalived's limit; at one advert a
// second that is 136 years away).
func (c *AHCounter) Next() uint32 {
	if c.n < 0xffffffff {
		c.n++
	}
	return c.n
}

// Accept reports whether seq is above the counter and, if so, moves the
// counter to it.
func (c *AHCounter) Accept(seq uint32) bool {
	if seq <= c.n {
		return false
	}
	c.n = seq
	return true
}

// Last is the highest sequence number sent or accepted.
func (c *AHCounter) Last() uint32 { return c.n }

// SealAH returns the whole IPv4 packet keepalived sends for an auth_type
// AH advert: a 20-byte IP header (TOS 0xc0, TTL 255, the IP id, protocol
// 51, checksum left zero for the kernel), the AH header with seq and its
// ICV, then advert (the marshalled VRRPv2 message). key is the auth_pass
// as PassAuthData returns it; unicast says whether the instance has
// unicast peers.
func SealAH(src, dst netip.Addr, id uint16, seq uint32, key [authLen]byte, unicast bool, advert []byte) ([]byte, error) {
	if !src.Is4() || !dst.Is4() {
		return nil, fmt.Errorf("vrrp: AH authentication is for IPv4 only (source %s, destination %s)", src, dst)
	}
	total := ipv4HdrLen + ahLen + len(advert)
	if total > 0xffff {
		return nil, fmt.Errorf("vrrp: AH packet of %d bytes is too long", total)
	}
	p := make([]byte, total)
	p[0] = 4<<4 | ipv4HdrLen/4
	p[1] = 0xc0
	binary.BigEndian.PutUint16(p[2:4], uint16(total))
	binary.BigEndian.PutUint16(p[4:6], id)
	p[8] = TTL
	p[9] = IPProtoAH
	s, d := src.As4(), dst.As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	ah := p[ipv4HdrLen:]
	ah[0] = IPProto
	ah[1] = ahPayload
	copy(ah[4:8], s[:]) // SPI: the sender's address
	binary.BigEndian.PutUint32(ah[8:12], seq)
	copy(ah[ahLen:], advert)
	icv := ahICV(p[:ipv4HdrLen], p[ipv4HdrLen:], key, unicast)
	copy(ah[12:ahLen], icv[:])
	return p, nil
}

// AHInfo is what OpenAH read from a packet's AH header.
type AHInfo struct {
	SPI uint32
	Seq uint32
}

// OpenAH checks the AH header of a received IPv4 packet: ipHdr is its IP
// header as received (options included), payload the rest (AH header and
// advert). It returns the advert inside, or an error when the packet is
// too short, the ICV does not match key, the SPI is not the source
// address or the next header is not VRRP. The sequence number is left to
// the caller (AHCounter.Accept).
func OpenAH(ipHdr, payload []byte, key [authLen]byte, unicast bool) ([]byte, AHInfo, error) {
	if len(ipHdr) < ipv4HdrLen || len(payload) < ahLen {
		return nil, AHInfo{}, ErrAHShort
	}
	info := AHInfo{SPI: binary.BigEndian.Uint32(payload[4:8]), Seq: binary.BigEndian.Uint32(payload[8:12])}
	icv := ahICV(ipHdr, payload, key, unicast)
	if !hmac.Equal(icv[:], payload[12:ahLen]) {
		return nil, info, ErrAHICV
	}
	if !bytes.Equal(payload[4:8], ipHdr[12:16]) {
		return nil, info, ErrAHSPI
	}
	if payload[0] != IPProto {
		return nil, info, ErrAHNext
	}
	return payload[ahLen:], info, nil
}

// ahICV computes the 96-bit ICV of an AH packet: ipHdr the IP header,
// rest the AH header and what follows. Neither is changed.
func ahICV(ipHdr, rest []byte, key [authLen]byte, unicast bool) [ahICVLen]byte {
	h := make([]byte, len(ipHdr))
	copy(h, ipHdr)
	h[1] = 0            // TOS
	h[6], h[7] = 0, 0   // flags and fragment offset
	h[10], h[11] = 0, 0 // header checksum
	if unicast {
		h[8] = 0 // TTL
	}
	var zero [ahICVLen]byte
	mac := hmac.New(md5.New, key[:])
	mac.Write(h)
	mac.Write(rest[:12])
	mac.Write(zero[:])
	mac.Write(rest[ahLen:])
	var icv [ahICVLen]byte
	copy(icv[:], mac.Sum(nil))
	return icv
}
