package check

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

var dnsTypes = map[string]dnsmessage.Type{
	"A":     dnsmessage.TypeA,
	"NS":    dnsmessage.TypeNS,
	"CNAME": dnsmessage.TypeCNAME,
	"SOA":   dnsmessage.TypeSOA,
	"MX":    dnsmessage.TypeMX,
	"TXT":   dnsmessage.TypeTXT,
	"AAAA":  dnsmessage.TypeAAAA,
}

// dnsType maps DNS_CHECK's type keyword to a query type; empty is SOA.
func dnsType(name string) (dnsmessage.Type, error) {
	t, ok := dnsTypes[strings.ToUpper(name)]
	if !ok {
		return 0, fmt.Errorf("DNS_CHECK: unknown type %q (want A, NS, CNAME, SOA, MX, TXT or AAAA)", name)
	}
	return t, nil
}

// probeDNS sends one recursive query over UDP and passes when a response
// with the query's ID comes back with RCODE NOERROR, as keepalived does.
func (c *Checker) probeDNS(ctx context.Context) error {
	qtype, err := dnsType(c.spec.DNSType)
	if err != nil {
		return err
	}
	name := c.spec.DNSName
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	qname, err := dnsmessage.NewName(name)
	if err != nil {
		return fmt.Errorf("DNS_CHECK name %q: %w", c.spec.DNSName, err)
	}
	var idb [2]byte
	rand.Read(idb[:])
	id := binary.BigEndian.Uint16(idb[:])
	q, err := (&dnsmessage.Message{
		Header:    dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: qname, Type: qtype, Class: dnsmessage.ClassINET}},
	}).Pack()
	if err != nil {
		return err
	}
	conn, err := c.dial(ctx, "udp")
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write(q); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return err
		}
		var p dnsmessage.Parser
		h, err := p.Start(buf[:n])
		if err != nil || h.ID != id || !h.Response {
			continue // not our answer: keep waiting until the timeout
		}
		if h.RCode != dnsmessage.RCodeSuccess {
			return fmt.Errorf("DNS response code %s", h.RCode)
		}
		return nil
	}
}
