package proxy

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// PROXY protocol headers (haproxy's proxy-protocol.txt) that tell a real
// server the client's address and the virtual address it connected to.

// proxyV2Sig is the 12-byte signature that starts a version 2 header.
var proxyV2Sig = [12]byte{0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A}

// maxProxyHeader is the longest header: a version 1 line is at most 107
// bytes, a version 2 header for TCP over IPv6 is 52.
const maxProxyHeader = 108

// appendProxyV1 appends the human-readable header
// "PROXY TCP4 <src> <dst> <sport> <dport>\r\n".
func appendProxyV1(b []byte, src, dst netip.AddrPort) []byte {
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if s.Is4() != d.Is4() {
		return append(b, "PROXY UNKNOWN\r\n"...)
	}
	b = append(b, "PROXY TCP4 "...)
	if s.Is6() {
		b[len(b)-2] = '6'
	}
	b = s.AppendTo(b)
	b = append(b, ' ')
	b = d.AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(src.Port()), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(dst.Port()), 10)
	return append(b, '\r', '\n')
}

// appendProxyV2 appends the binary header with command PROXY for a stream
// (TCP) or datagram (UDP) connection.
func appendProxyV2(b []byte, src, dst netip.AddrPort, datagram bool) []byte {
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	b = append(b, proxyV2Sig[:]...)
	b = append(b, 0x21) // version 2, command PROXY
	proto := byte(0x1)  // STREAM
	if datagram {
		proto = 0x2
	}
	switch {
	case s.Is4() && d.Is4():
		b = append(b, 0x10|proto)
		b = binary.BigEndian.AppendUint16(b, 12)
		a, c := s.As4(), d.As4()
		b = append(b, a[:]...)
		b = append(b, c[:]...)
	case s.Is6() && d.Is6():
		b = append(b, 0x20|proto)
		b = binary.BigEndian.AppendUint16(b, 36)
		a, c := s.As16(), d.As16()
		b = append(b, a[:]...)
		b = append(b, c[:]...)
	default: // mixed families cannot be told: AF_UNSPEC, no addresses
		return append(b, 0x00, 0, 0)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}
