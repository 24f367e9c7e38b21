package check

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

var pingSeq atomic.Uint32

// listenICMP opens an ICMP socket: unprivileged ("udp4", allowed by
// net.ipv4.ping_group_range) when it can, raw otherwise (needs
// CAP_NET_RAW). It reports whether the socket is unprivileged.
func listenICMP(v6 bool, bind string) (*icmp.PacketConn, bool, error) {
	nets := [2]string{"udp4", "ip4:icmp"}
	if bind == "" {
		bind = "0.0.0.0"
	}
	if v6 {
		nets = [2]string{"udp6", "ip6:ipv6-icmp"}
		if bind == "0.0.0.0" {
			bind = "::"
		}
	}
	c, err := icmp.ListenPacket(nets[0], bind)
	if err == nil {
		return c, true, nil
	}
	c, err2 := icmp.ListenPacket(nets[1], bind)
	if err2 == nil {
		return c, false, nil
	}
	return nil, false, fmt.Errorf("cannot open an ICMP socket (%v; raw: %v): allow ping sockets with sysctl net.ipv4.ping_group_range or grant CAP_NET_RAW", err, err2)
}

// probePing sends one ICMP echo request and waits for its reply.
func (c *Checker) probePing(ctx context.Context) error {
	addr := c.target.Addr().Unmap()
	v6 := addr.Is6()
	bind := ""
	if c.spec.BindTo.IsValid() {
		bind = c.spec.BindTo.String()
	}
	conn, unpriv, err := listenICMP(v6, bind)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(deadline(ctx, c.spec.ConnectTimeout))
	go func() { // end the read when ctx is canceled early
		<-ctx.Done()
		conn.SetDeadline(time.Unix(1, 0))
	}()

	data := make([]byte, 16)
	rand.Read(data)
	seq := int(pingSeq.Add(1) & 0xffff)
	id := os.Getpid() & 0xffff
	var typ, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	proto := 1
	if v6 {
		typ, reply, proto = ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, 58
	}
	msg, err := (&icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: data}}).Marshal(nil)
	if err != nil {
		return err
	}
	var dst net.Addr = &net.IPAddr{IP: addr.AsSlice()}
	if unpriv {
		dst = &net.UDPAddr{IP: addr.AsSlice()}
	}
	if _, err := conn.WriteTo(msg, dst); err != nil {
		return fmt.Errorf("sending ICMP echo: %w", err)
	}
	buf := make([]byte, 1500)
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return fmt.Errorf("no ICMP echo reply from %s", addr)
			}
			return err
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != reply {
			continue
		}
		echo, ok := m.Body.(*icmp.Echo)
		// An unprivileged socket's ID is rewritten by the kernel; the
		// sequence and data identify our reply.
		if !ok || echo.Seq != seq || !bytes.Equal(echo.Data, data) || (!unpriv && echo.ID != id) {
			continue
		}
		return nil
	}
}
