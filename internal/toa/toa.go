// Package toa gives a real server behind a FullNAT director the client's
// address, which the director carries in the TOA TCP option ("TCP option
// address", as Alibaba's LVS FULLNAT and DPVS send it):
//
//	IPv4: kind 254, length 8:  2-byte port, 4-byte address
//	IPv6: kind 254, length 20: 2-byte port, 16-byte address
//
// (port and address in network byte order). The GVS director puts it into
// the SYN and into the ACK that completes the handshake.
//
// Go cannot read the TCP options of an accepted socket, so a Reader
// attaches a small XDP program (bpf/toa_reader.c) to the real server's
// interfaces: it records the option of every TCP packet that carries one
// by the connection's addresses and ports, and ClientAddr looks an
// accepted connection up there. Parse reads the option from raw TCP
// header bytes.
package toa

import (
	"encoding/binary"
	"net/netip"
)

// Kind is the TOA option's kind; Len4 and Len6 are its lengths.
const (
	Kind = 254
	Len4 = 8
	Len6 = 20
)

// Parse returns the client address of the TOA option in a TCP header
// (with its options; the data offset says how long it is), and whether
// there is one.
func Parse(tcp []byte) (netip.AddrPort, bool) {
	if len(tcp) < 20 {
		return netip.AddrPort{}, false
	}
	hl := int(tcp[12]>>4) * 4
	if hl < 20 || hl > len(tcp) {
		return netip.AddrPort{}, false
	}
	opts := tcp[20:hl]
	for i := 0; i < len(opts); {
		switch opts[i] {
		case 0: // end of options
			return netip.AddrPort{}, false
		case 1: // no-operation
			i++
			continue
		}
		if i+1 >= len(opts) {
			return netip.AddrPort{}, false
		}
		l := int(opts[i+1])
		if l < 2 || i+l > len(opts) {
			return netip.AddrPort{}, false
		}
		if o := opts[i : i+l]; o[0] == Kind {
			switch l {
			case Len4:
				return netip.AddrPortFrom(netip.AddrFrom4([4]byte(o[4:8])), binary.BigEndian.Uint16(o[2:])), true
			case Len6:
				return netip.AddrPortFrom(netip.AddrFrom16([16]byte(o[4:20])), binary.BigEndian.Uint16(o[2:])), true
			}
		}
		i += l
	}
	return netip.AddrPort{}, false
}

// Option is the TOA option carrying client: Len4 bytes for an IPv4
// client, Len6 for IPv6 (an IPv4-mapped IPv6 address stays one, as
// DPVS's NAT64 sends it).
func Option(client netip.AddrPort) []byte {
	a := client.Addr()
	b := []byte{Kind, Len4, byte(client.Port() >> 8), byte(client.Port())}
	if a.Is4() {
		v := a.As4()
		return append(b, v[:]...)
	}
	b[1] = Len6
	v := a.As16()
	return append(b, v[:]...)
}
