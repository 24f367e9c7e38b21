package ipvs

import (
	"encoding/binary"
	"net/netip"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"

	table "github.com/gvs-lb/gvs/internal/ipvs"
)

// The commands of the kernel's IPVS generic-netlink family that
// github.com/cloudflare/ipvs does not send (linux/ip_vs.h).
const (
	genlVersion   = 1
	cmdNewService = 1
	cmdSetService = 2
	cmdNewDaemon  = 9
	cmdDelDaemon  = 10
	cmdGetDaemon  = 11
	cmdZero       = 16
	cmdFlush      = 17
	cmdAttrSvc    = 1
	cmdAttrDaemon = 3

	svcAttrAF     = 1
	svcAttrProto  = 2
	svcAttrAddr   = 3
	svcAttrPort   = 4
	svcAttrFWMark = 5
	svcAttrSched  = 6
	svcAttrFlags  = 7
	svcAttrTimout = 8
	svcAttrMask   = 9
	svcAttrPEName = 11

	daemonAttrState       = 1
	daemonAttrMcastIfn    = 2
	daemonAttrSyncID      = 3
	daemonAttrSyncMaxlen  = 4
	daemonAttrMcastGroup  = 5
	daemonAttrMcastGroup6 = 6
	daemonAttrMcastPort   = 7
	daemonAttrMcastTTL    = 8
)

// genl sends what the library lacks: a service's persistence engine (so
// services are added and edited here), zero, flush and the sync daemons.
type genl struct {
	c      *genetlink.Conn
	family genetlink.Family
}

func dialGenl() (*genl, error) {
	c, err := genetlink.Dial(nil)
	if err != nil {
		return nil, err
	}
	f, err := c.GetFamily("IPVS")
	if err != nil {
		c.Close()
		return nil, err
	}
	return &genl{c: c, family: f}, nil
}

func (g *genl) exec(cmd uint8, attrs func(ae *netlink.AttributeEncoder)) error {
	ae := netlink.NewAttributeEncoder()
	if attrs != nil {
		attrs(ae)
	}
	data, err := ae.Encode()
	if err != nil {
		return err
	}
	_, err = g.c.Execute(genetlink.Message{Header: genetlink.Header{Command: cmd, Version: genlVersion}, Data: data},
		g.family.ID, netlink.Request|netlink.Acknowledge)
	return err
}

// serviceKey encodes the attributes that name a service.
func serviceKey(k table.ServiceKey) func(ae *netlink.AttributeEncoder) error {
	return func(ae *netlink.AttributeEncoder) error {
		ae.Uint16(svcAttrAF, family(k.Addr))
		if k.IsFWMark() {
			ae.Uint32(svcAttrFWMark, k.FWMark)
			return nil
		}
		ae.Uint16(svcAttrProto, uint16(k.Proto))
		a := k.Addr.Unmap()
		ae.Bytes(svcAttrAddr, a.AsSlice())
		ae.Bytes(svcAttrPort, []byte{byte(k.Port >> 8), byte(k.Port)})
		return nil
	}
}

// serviceAttrs encodes a whole service, as IPVS_CMD_NEW_SERVICE and
// IPVS_CMD_SET_SERVICE take it (ip_vs_genl_parse_service with full_entry).
func serviceAttrs(s *table.Service) func(ae *netlink.AttributeEncoder) error {
	return func(ae *netlink.AttributeEncoder) error {
		if err := serviceKey(s.ServiceKey)(ae); err != nil {
			return err
		}
		ae.String(svcAttrSched, s.Scheduler)
		// struct ip_vs_flags: the flags, then the mask of those to set.
		flags := make([]byte, 8)
		binary.NativeEndian.PutUint32(flags, s.Flags&^table.FlagHashed)
		binary.NativeEndian.PutUint32(flags[4:], ^uint32(0))
		ae.Bytes(svcAttrFlags, flags)
		ae.Uint32(svcAttrTimout, s.Timeout)
		ae.Bytes(svcAttrMask, netmaskAttr(s))
		if s.PE != "" {
			ae.String(svcAttrPEName, s.PE)
		}
		return nil
	}
}

// netmaskAttr is the persistence mask as the kernel reads it: an IPv4
// mask's bytes in network order, an IPv6 prefix length as a host u32.
func netmaskAttr(s *table.Service) []byte {
	b := make([]byte, 4)
	if family(s.Addr) == afInet6 {
		binary.NativeEndian.PutUint32(b, uint32(s.Netmask))
		return b
	}
	binary.BigEndian.PutUint32(b, ^uint32(0)<<(32-s.Netmask)) // Go: a shift by 32 gives 0
	return b
}

// newService adds s to the kernel's table; setService changes the one
// with its key to s.
func (g *genl) newService(s *table.Service) error {
	return g.exec(cmdNewService, func(ae *netlink.AttributeEncoder) { ae.Nested(cmdAttrSvc, serviceAttrs(s)) })
}

func (g *genl) setService(s *table.Service) error {
	return g.exec(cmdSetService, func(ae *netlink.AttributeEncoder) { ae.Nested(cmdAttrSvc, serviceAttrs(s)) })
}

// zero clears the counters of one service, or of all when k is nil.
func (g *genl) zero(k *table.ServiceKey) error {
	return g.exec(cmdZero, func(ae *netlink.AttributeEncoder) {
		if k != nil {
			ae.Nested(cmdAttrSvc, serviceKey(*k))
		}
	})
}

// flush deletes every service of the kernel's table, whoever added it.
func (g *genl) flush() error { return g.exec(cmdFlush, nil) }

func (g *genl) Close() error { return g.c.Close() }

const (
	afInet  = 2
	afInet6 = 10
)

func family(a netip.Addr) uint16 {
	if a.Unmap().Is4() {
		return afInet
	}
	return afInet6
}
