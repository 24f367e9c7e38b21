package ipvs

import (
	"net/netip"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"

	table "github.com/gvs-lb/gvs/internal/ipvs"
)

// The commands of the kernel's IPVS generic-netlink family that
// github.com/cloudflare/ipvs does not send (linux/ip_vs.h).
const (
	genlVersion   = 1
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

	daemonAttrState       = 1
	daemonAttrMcastIfn    = 2
	daemonAttrSyncID      = 3
	daemonAttrSyncMaxlen  = 4
	daemonAttrMcastGroup  = 5
	daemonAttrMcastGroup6 = 6
	daemonAttrMcastPort   = 7
	daemonAttrMcastTTL    = 8
)

// genl sends the IPVS family's commands the library lacks: zero, flush
// and the sync daemons.
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

func family(a netip.Addr) uint16 {
	if a.Unmap().Is4() {
		return 2 // AF_INET
	}
	return 10 // AF_INET6
}
