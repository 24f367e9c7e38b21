// Package ipvssync is IPVS's connection synchronization: the kernel's sync
// message format, version 1 (net/netfilter/ipvs/ip_vs_sync.c), the master
// that multicasts a director's connections and the backup that installs
// them on a standby director, so that connections survive a failover.
//
// It interoperates with the kernel's sync daemons (ipvsadm --start-daemon)
// on the wire: same group (224.0.0.81), port (8848), TTL (1), message
// layout, byte order and syncid filtering.
package ipvssync

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Defaults, as the kernel's.
const (
	DefaultPort = 8848
	DefaultTTL  = 1
)

// DefaultGroup is the kernel's IPv4 sync group. There is no IPv6 default:
// an IPv6 group must be given (--mcast-group).
var DefaultGroup = netip.AddrFrom4([4]byte{224, 0, 0, 81})

// Sizes of the version 1 format.
const (
	headerLen  = 8
	conn4Len   = 24 + 3*4
	conn6Len   = 24 + 3*16
	seqOptLen  = 24 // two struct ip_vs_seq of three be32
	maxEntries = 255
)

// Connection flags (IP_VS_CONN_F_*) carried on the wire.
const (
	FlagMasq     = 0x0000
	FlagLocal    = 0x0001
	FlagTunnel   = 0x0002
	FlagRoute    = 0x0003
	FlagFwdMask  = 0x0007
	FlagSync     = 0x0020
	FlagHashed   = 0x0040
	FlagNoOutput = 0x0080
	FlagInactive = 0x0100
	FlagOutSeq   = 0x0200
	FlagInSeq    = 0x0400
	FlagNoCPort  = 0x0800
	FlagTemplate = 0x1000
	FlagOnePkt   = 0x2000

	// backupMask is what a backup keeps of the flags it receives
	// (IP_VS_CONN_F_BACKUP_MASK).
	backupMask = FlagFwdMask | FlagNoOutput | FlagInactive | FlagOutSeq | FlagInSeq | FlagNoCPort | FlagTemplate
)

// Option types of a connection entry.
const (
	optSeqData = 1
	optPEData  = 2
	optPEName  = 3
	optParam   = 1 << (7 - 1) // set on optional parameters
)

// Conn is one connection entry of a sync message. Addresses are all IPv4
// or all IPv6.
type Conn struct {
	Proto   uint8  // IP protocol number
	Flags   uint32 // IP_VS_CONN_F_*: forwarding method, inactive, template...
	State   uint16 // the protocol's state number (ip_vs_proto_tcp.c's order)
	Client  netip.AddrPort
	Virtual netip.AddrPort
	Dest    netip.AddrPort
	FWMark  uint32
	Timeout uint32 // seconds; 0 means the receiver's timeout for the state
}

// Message is one sync datagram.
type Message struct {
	SyncID uint8
	Conns  []Conn
}

// is6 reports whether c is an IPv6 entry.
func (c *Conn) is6() bool { return c.Client.Addr().Is6() }

func (c *Conn) size() int {
	if c.is6() {
		return conn6Len
	}
	return conn4Len
}

// appendConn appends c in the wire format (no options).
func appendConn(b []byte, c *Conn) []byte {
	var typ byte
	if c.is6() {
		typ = 1
	}
	b = append(b, typ, c.Proto)
	b = binary.BigEndian.AppendUint16(b, uint16(c.size())&0x0fff) // version 0 in the top bits
	b = binary.BigEndian.AppendUint32(b, c.Flags&^FlagHashed)
	b = binary.BigEndian.AppendUint16(b, c.State)
	b = binary.BigEndian.AppendUint16(b, c.Client.Port())
	b = binary.BigEndian.AppendUint16(b, c.Virtual.Port())
	b = binary.BigEndian.AppendUint16(b, c.Dest.Port())
	b = binary.BigEndian.AppendUint32(b, c.FWMark)
	b = binary.BigEndian.AppendUint32(b, c.Timeout)
	for _, a := range []netip.Addr{c.Client.Addr(), c.Virtual.Addr(), c.Dest.Addr()} {
		if typ == 1 {
			s := a.As16()
			b = append(b, s[:]...)
		} else {
			s := a.As4()
			b = append(b, s[:]...)
		}
	}
	return b
}

func newHeader(syncid uint8) []byte {
	return []byte{0, syncid, 0, headerLen, 0, 1, 0, 0}
}

func finish(b []byte, n int) []byte {
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	b[4] = byte(n)
	return b
}

// Pack encodes conns into as few messages as fit maxlen bytes each (the
// UDP payload; at least one entry goes in every message) and 255 entries,
// as the master sends them. Entries whose addresses mix families are
// skipped.
func Pack(syncid uint8, maxlen int, conns []Conn) [][]byte {
	var out [][]byte
	var cur []byte
	n := 0
	for i := range conns {
		c := &conns[i]
		if !c.valid() {
			continue
		}
		if cur != nil && (len(cur)+c.size() > maxlen || n == maxEntries) {
			out = append(out, finish(cur, n))
			cur, n = nil, 0
		}
		if cur == nil {
			cur = newHeader(syncid)
		}
		cur = appendConn(cur, c)
		n++
	}
	if cur != nil {
		out = append(out, finish(cur, n))
	}
	return out
}

func (c *Conn) valid() bool {
	a, v, d := c.Client.Addr(), c.Virtual.Addr(), c.Dest.Addr()
	if !a.IsValid() || !v.IsValid() || !d.IsValid() {
		return false
	}
	four := a.Is4()
	return v.Is4() == four && d.Is4() == four
}

// Errors of Unmarshal that drop a whole message.
var (
	ErrShort   = errors.New("ipvssync: message shorter than its header")
	ErrSize    = errors.New("ipvssync: message size field does not match the datagram")
	ErrVersion = errors.New("ipvssync: not a version 1 message (version 0 is not supported: set net.ipv4.vs.sync_version=1 on kernel masters)")
)

// Unmarshal decodes a version 1 message as the kernel's backup does: a
// malformed header or entry drops the whole message with an error; an entry
// the kernel would skip alone (unknown type or mandatory option) is left
// out and counted in skipped. Options are checked and ignored.
func Unmarshal(b []byte) (m Message, skipped int, err error) {
	if len(b) < 4 {
		return m, 0, ErrShort
	}
	if int(binary.BigEndian.Uint16(b[2:])) != len(b) {
		return m, 0, ErrSize
	}
	m.SyncID = b[1]
	if len(b) < headerLen || b[0] != 0 || b[5] != 1 || b[6] != 0 || b[7] != 0 {
		return m, 0, ErrVersion
	}
	n := int(b[4])
	off := headerLen
	for i := range n {
		if off+conn4Len > len(b) {
			return m, skipped, fmt.Errorf("ipvssync: entry %d runs past the message end", i)
		}
		vs := binary.BigEndian.Uint16(b[off+2:])
		size := int(vs & 0x0fff)
		end := off + size
		if size < conn4Len {
			return m, skipped, fmt.Errorf("ipvssync: entry %d of %d bytes is shorter than an entry", i, size)
		}
		if end > len(b) {
			return m, skipped, fmt.Errorf("ipvssync: entry %d of %d bytes runs past the message end", i, size)
		}
		if vs>>12 != 0 {
			return m, skipped, fmt.Errorf("ipvssync: entry %d has unknown version %d", i, vs>>12)
		}
		c, ok, err := decodeConn(b[off:end])
		if err != nil {
			return m, skipped, fmt.Errorf("ipvssync: entry %d: %w", i, err)
		}
		if ok {
			m.Conns = append(m.Conns, c)
		} else {
			skipped++
		}
		off += (size + 3) &^ 3
	}
	return m, skipped, nil
}

// decodeConn decodes one entry; ok is false for an entry to skip.
func decodeConn(b []byte) (c Conn, ok bool, err error) {
	var alen int
	switch b[0] {
	case 0:
		alen = 4
	case 1:
		alen = 16
	default:
		return c, false, errors.New("unknown entry type")
	}
	fixed := 24 + 3*alen
	if len(b) < fixed {
		return c, false, errors.New("entry shorter than its addresses")
	}
	addr := func(at int) netip.Addr {
		if alen == 4 {
			return netip.AddrFrom4([4]byte(b[at : at+4]))
		}
		return netip.AddrFrom16([16]byte(b[at : at+16]))
	}
	be16 := func(at int) uint16 { return binary.BigEndian.Uint16(b[at:]) }
	c = Conn{
		Proto:   b[1],
		Flags:   binary.BigEndian.Uint32(b[4:]),
		State:   be16(8),
		Client:  netip.AddrPortFrom(addr(24), be16(10)),
		Virtual: netip.AddrPortFrom(addr(24+alen), be16(12)),
		Dest:    netip.AddrPortFrom(addr(24+2*alen), be16(14)),
		FWMark:  binary.BigEndian.Uint32(b[16:]),
		Timeout: binary.BigEndian.Uint32(b[20:]),
	}
	ok = true
	var seen uint32
	for p := fixed; p < len(b); {
		if p+2 > len(b) {
			return c, false, errors.New("truncated option header")
		}
		typ, plen := b[p], int(b[p+1])
		p += 2
		if plen == 0 || p+plen > len(b) {
			return c, false, errors.New("option length out of the entry")
		}
		switch t := typ &^ optParam; t {
		case optSeqData, optPEData, optPEName:
			if t == optSeqData && plen != seqOptLen {
				return c, false, errors.New("sequence option of the wrong length")
			}
			if t == optPEData && plen > 255 || t == optPEName && plen > 16 {
				return c, false, errors.New("persistence engine option too long")
			}
			if seen&(1<<t) != 0 {
				return c, false, errors.New("option found twice")
			}
			seen |= 1 << t
			if t == optPEData {
				ok = false // no persistence engine here (the kernel skips an entry whose engine it lacks)
			}
		default:
			if typ&optParam == 0 {
				ok = false // an unknown mandatory option: skip this entry
			}
		}
		p += plen
	}
	c.Flags = c.Flags&backupMask | FlagSync
	return c, ok, nil
}
