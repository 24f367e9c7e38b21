package xdp

import (
	"encoding/binary"
	"math/bits"
	"net/netip"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Address families as the BPF program stores them.
const (
	afInet  = 2
	afInet6 = 10
)

// addrWords is an address as the BPF maps hold it: the network-order bytes
// in four host words, IPv4 in the first.
func addrWords(a netip.Addr) (w [4]uint32, family uint8) {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		w[0] = binary.LittleEndian.Uint32(b[:])
		return w, afInet
	}
	b := a.As16()
	for i := range w {
		w[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return w, afInet6
}

// wordsAddr is the inverse of addrWords.
func wordsAddr(w [4]uint32, family uint8) netip.Addr {
	if family == afInet {
		var b [4]byte
		binary.LittleEndian.PutUint32(b[:], w[0])
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	for i := range w {
		binary.LittleEndian.PutUint32(b[4*i:], w[i])
	}
	return netip.AddrFrom16(b)
}

// be16 converts a port between host and network order.
func be16(p uint16) uint16 { return bits.ReverseBytes16(p) }

// maskWords is the persistence netmask (a prefix length) as words to AND
// with an address.
func maskWords(bitsLen int, family uint8) [4]uint32 {
	total := 32
	if family == afInet6 {
		total = 128
	}
	if bitsLen < 0 || bitsLen > total { // 0 is the /0 mask (-M 0.0.0.0)
		bitsLen = total
	}
	var b [16]byte
	for i := 0; i < bitsLen; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	var w [4]uint32
	for i := range total / 32 {
		w[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return w
}

func svcKeyOf(k ipvs.ServiceKey) lbSvcKey {
	if k.IsFWMark() {
		return fwmarkSvcKey(k)
	}
	w, fam := addrWords(k.Addr)
	return lbSvcKey{Addr: w, Port: be16(k.Port), Proto: uint8(k.Proto), Family: fam}
}

// stateName is the state as ipvsadm -Lnc prints it.
func stateName(s lbConnState) string {
	switch s {
	case lbConnStateST_ESTABLISHED:
		return "ESTABLISHED"
	case lbConnStateST_SYN_SENT:
		return "SYN_SENT"
	case lbConnStateST_SYN_RECV:
		return "SYN_RECV"
	case lbConnStateST_FIN_WAIT:
		return "FIN_WAIT"
	case lbConnStateST_TIME_WAIT:
		return "TIME_WAIT"
	case lbConnStateST_CLOSE:
		return "CLOSE"
	case lbConnStateST_CLOSE_WAIT:
		return "CLOSE_WAIT"
	case lbConnStateST_LAST_ACK:
		return "LAST_ACK"
	case lbConnStateST_LISTEN:
		return "LISTEN"
	case lbConnStateST_SYNACK:
		return "SYNACK"
	case lbConnStateST_UDP:
		return "UDP"
	}
	return "NONE"
}
