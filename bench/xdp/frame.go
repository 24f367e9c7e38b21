package main

import (
	"encoding/binary"
	"net"
	"net/netip"
)

// frameLen is the length of every benchmark frame: Ethernet, IPv4 and a
// TCP header without options.
const frameLen = 14 + 20 + 20

// frameTemplate is what every frame of a run shares: the Go twin of the
// fields of struct gen_cfg that xdp_gen reads.
type frameTemplate struct {
	dst, src net.HardwareAddr
	saddr    uint32 // flow 0's source address, host order
	daddr    [4]byte
	dport    uint16
}

func newFrameTemplate(t *xdpTopo) frameTemplate {
	return frameTemplate{
		dst:   t.dirMAC0,
		src:   clientMAC,
		saddr: binary.BigEndian.Uint32(netip.MustParseAddr(flowBase).AsSlice()),
		daddr: netip.MustParseAddr(vipAddr).As4(),
		dport: vipPort,
	}
}

// clientMAC is the source MAC of every frame: nobody answers the client,
// so a fixed local address does.
var clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x64}

// flowIndex is the flow of the n-th frame a sender builds, as xdp_gen
// numbers them: established runs cycle over nflows fixed flows, new
// connection runs take a flow never used before, interleaving senders by
// their number (the CPU, for xdp_gen).
func flowIndex(fc flowConfig, n uint64, sender int) uint32 {
	var idx uint32
	if fc.mode == genNew {
		idx = fc.nflows + (uint32(n)<<3 | uint32(sender)&7)
	} else {
		idx = uint32(n % uint64(fc.nflows))
	}
	return idx & (1<<30 - 1)
}

// build writes into b (frameLen bytes) the frame of flow idx with the TCP
// flags, byte for byte what xdp_gen writes: flow idx comes from source
// address saddr + idx/16384, port 1024 + idx%16384, sequence number idx.
func (ft *frameTemplate) build(b []byte, flags uint8, idx uint32) {
	_ = b[frameLen-1]
	copy(b[0:6], ft.dst)
	copy(b[6:12], ft.src)
	binary.BigEndian.PutUint16(b[12:], 0x0800)

	ip := b[14:34]
	ip[0], ip[1] = 0x45, 0
	binary.BigEndian.PutUint16(ip[2:], 40)
	binary.BigEndian.PutUint32(ip[4:], 0x4000) // id 0, DF
	ip[8], ip[9] = 64, 6                       // TTL, TCP
	binary.BigEndian.PutUint16(ip[10:], 0)
	binary.BigEndian.PutUint32(ip[12:], ft.saddr+idx>>14)
	copy(ip[16:20], ft.daddr[:])
	binary.BigEndian.PutUint16(ip[10:], ^fold(sum16(ip, 0)))

	th := b[34:54]
	binary.BigEndian.PutUint16(th[0:], uint16(1024+idx&0x3fff))
	binary.BigEndian.PutUint16(th[2:], ft.dport)
	binary.BigEndian.PutUint32(th[4:], idx)
	var ack uint32
	if flags&tcpACK != 0 {
		ack = 1
	}
	binary.BigEndian.PutUint32(th[8:], ack)
	th[12], th[13] = 5<<4, flags
	binary.BigEndian.PutUint16(th[14:], 65535)
	binary.BigEndian.PutUint32(th[16:], 0) // checksum, urgent pointer
	pseudo := sum16(ip[12:20], 6+20)
	binary.BigEndian.PutUint16(th[16:], ^fold(sum16(th, pseudo)))
}

// sum16 adds b's big-endian 16-bit words to sum.
func sum16(b []byte, sum uint32) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	return sum
}

// fold folds a 32-bit one's complement sum to 16 bits.
func fold(sum uint32) uint16 {
	sum = sum&0xffff + sum>>16
	sum = sum&0xffff + sum>>16
	return uint16(sum)
}
