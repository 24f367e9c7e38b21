package proxy

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// readProxyHeader is what a real server does: parse a PROXY v1 or v2
// header (proxy-protocol.txt) and return the source and destination.
// It is written from the spec, apart from the encoder.
func readProxyHeader(br *bufio.Reader) (src, dst netip.AddrPort, err error) {
	first, err := br.Peek(12)
	if err != nil {
		return src, dst, err
	}
	if bytes.Equal(first, []byte("\r\n\r\n\x00\r\nQUIT\n")) {
		return readProxyV2(br)
	}
	line, err := br.ReadString('\n')
	if err != nil {
		return src, dst, err
	}
	if len(line) > 107 || !strings.HasSuffix(line, "\r\n") {
		return src, dst, fmt.Errorf("%w: v1 line %q", errBadHeader, line)
	}
	f := strings.Split(strings.TrimSuffix(line, "\r\n"), " ")
	if len(f) != 6 || f[0] != "PROXY" || (f[1] != "TCP4" && f[1] != "TCP6") {
		return src, dst, fmt.Errorf("%w: v1 line %q", errBadHeader, line)
	}
	sa, err1 := netip.ParseAddr(f[2])
	da, err2 := netip.ParseAddr(f[3])
	sp, err3 := strconv.ParseUint(f[4], 10, 16)
	dp, err4 := strconv.ParseUint(f[5], 10, 16)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || sa.Is4() != (f[1] == "TCP4") || da.Is4() != sa.Is4() {
		return src, dst, fmt.Errorf("%w: v1 line %q", errBadHeader, line)
	}
	return netip.AddrPortFrom(sa, uint16(sp)), netip.AddrPortFrom(da, uint16(dp)), nil
}

func readProxyV2(br *bufio.Reader) (src, dst netip.AddrPort, err error) {
	var hdr [16]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return src, dst, err
	}
	if hdr[12] != 0x21 {
		return src, dst, fmt.Errorf("%w: version/command %#x", errBadHeader, hdr[12])
	}
	body := make([]byte, binary.BigEndian.Uint16(hdr[14:]))
	if _, err := io.ReadFull(br, body); err != nil {
		return src, dst, err
	}
	switch hdr[13] {
	case 0x11, 0x12: // TCP or UDP over IPv4
		if len(body) < 12 {
			return src, dst, errBadHeader
		}
		s := netip.AddrFrom4([4]byte(body[0:4]))
		d := netip.AddrFrom4([4]byte(body[4:8]))
		return netip.AddrPortFrom(s, binary.BigEndian.Uint16(body[8:])), netip.AddrPortFrom(d, binary.BigEndian.Uint16(body[10:])), nil
	case 0x21, 0x22:
		if len(body) < 36 {
			return src, dst, errBadHeader
		}
		s := netip.AddrFrom16([16]byte(body[0:16]))
		d := netip.AddrFrom16([16]byte(body[16:32]))
		return netip.AddrPortFrom(s, binary.BigEndian.Uint16(body[32:])), netip.AddrPortFrom(d, binary.BigEndian.Uint16(body[34:])), nil
	}
	return src, dst, fmt.Errorf("%w: family %#x", errBadHeader, hdr[13])
}

func TestProxyHeaderBytes(t *testing.T) {
	c4 := netip.MustParseAddrPort("198.18.0.10:40000")
	v4 := netip.MustParseAddrPort("198.18.0.1:80")
	c6 := netip.MustParseAddrPort("[2001:db8::10]:40000")
	v6 := netip.MustParseAddrPort("[2001:db8::1]:443")
	tests := []struct {
		name     string
		src, dst netip.AddrPort
		v2       bool
		datagram bool
		want     string // v1 text, or v2 hex
	}{
		{name: "v1 TCP4", src: c4, dst: v4, want: "PROXY TCP4 198.18.0.10 198.18.0.1 40000 80\r\n"},
		{name: "v1 TCP6", src: c6, dst: v6, want: "PROXY TCP6 2001:db8::10 2001:db8::1 40000 443\r\n"},
		{name: "v1 mapped IPv4 is TCP4", src: netip.MustParseAddrPort("[::ffff:198.18.0.10]:1"), dst: v4, want: "PROXY TCP4 198.18.0.10 198.18.0.1 1 80\r\n"},
		{name: "v1 mixed families", src: c6, dst: v4, want: "PROXY UNKNOWN\r\n"},
		{name: "v2 TCP4", src: c4, dst: v4, v2: true,
			want: "0d0a0d0a000d0a515549540a" + "21" + "11" + "000c" + "c612000a" + "c6120001" + "9c40" + "0050"},
		{name: "v2 UDP4", src: c4, dst: v4, v2: true, datagram: true,
			want: "0d0a0d0a000d0a515549540a" + "21" + "12" + "000c" + "c612000a" + "c6120001" + "9c40" + "0050"},
		{name: "v2 TCP6", src: c6, dst: v6, v2: true,
			want: "0d0a0d0a000d0a515549540a" + "21" + "21" + "0024" +
				"20010db8000000000000000000000010" + "20010db8000000000000000000000001" + "9c40" + "01bb"},
		{name: "v2 mixed families", src: c6, dst: v4, v2: true, want: "0d0a0d0a000d0a515549540a" + "21" + "00" + "0000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []byte
			if tt.v2 {
				got = appendProxyV2(nil, tt.src, tt.dst, tt.datagram)
				if h := hex.EncodeToString(got); h != tt.want {
					t.Fatalf("header\n got %s\nwant %s", h, tt.want)
				}
			} else {
				got = appendProxyV1(nil, tt.src, tt.dst)
				if string(got) != tt.want {
					t.Fatalf("header %q, want %q", got, tt.want)
				}
			}
			if len(got) > maxProxyHeader {
				t.Fatalf("header of %d bytes is longer than maxProxyHeader", len(got))
			}
			if strings.Contains(tt.name, "mixed") {
				return
			}
			src, dst, err := readProxyHeader(bufio.NewReader(bytes.NewReader(got)))
			if err != nil || src != netip.AddrPortFrom(tt.src.Addr().Unmap(), tt.src.Port()) || dst != tt.dst {
				t.Fatalf("parsed %v %v, %v; want %v %v", src, dst, err, tt.src, tt.dst)
			}
		})
	}
}

func TestProxyProtocolToRealServer(t *testing.T) {
	tests := []struct {
		name    string
		version int
		addr    netip.Addr
	}{
		{name: "v1 IPv4", version: 1, addr: lo4},
		{name: "v2 IPv4", version: 2, addr: lo4},
		{name: "v1 IPv6", version: 1, addr: netip.IPv6Loopback()},
		{name: "v2 IPv6", version: 2, addr: netip.IPv6Loopback()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.addr.Is6() {
				needIPv6(t)
			}
			e := newEngine(t, Options{})
			rs := startTCP(t, tt.addr, "rs1", withProxyHeader)
			svc := vs(t, ipvs.TCP, tt.addr, "rr")
			svc.ProxyProtocol = tt.version
			newTable(t, e).exec(addSvc(svc), addDest(svc, rs.addr, 1))

			c := mustDial(t, svc.AddrPort())
			local := c.LocalAddr().String()
			want := "rs1 " + local + " " + svc.AddrPort().String()
			if c.server != want {
				t.Fatalf("real server saw %q, want %q", c.server, want)
			}
			c.echo(t, "data after the header\n")
			c.finish(t)
		})
	}
}
