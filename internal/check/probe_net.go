package check

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// dial connects to the target from bindto/bind_port, out of bind_if and
// with fwmark when set.
func (c *Checker) dial(ctx context.Context, network string) (net.Conn, error) {
	d := net.Dialer{Control: socketOptions(c.spec.BindIf, c.spec.FWMark)}
	if c.spec.BindTo.IsValid() || c.spec.BindPort != 0 {
		ap := netip.AddrPortFrom(c.spec.BindTo, c.spec.BindPort)
		if network == "udp" {
			d.LocalAddr = net.UDPAddrFromAddrPort(ap)
		} else {
			d.LocalAddr = net.TCPAddrFromAddrPort(ap)
		}
	}
	conn, err := d.DialContext(ctx, network, c.target.String())
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	return conn, nil
}

// probeTCP passes when a TCP connection is established.
func (c *Checker) probeTCP(ctx context.Context) error {
	conn, err := c.dial(ctx, "tcp")
	if err != nil {
		return err
	}
	return conn.Close()
}

// probeHTTP fetches every url and checks its status code and digest; all
// must pass.
func (c *Checker) probeHTTP(ctx context.Context) error {
	for i, u := range c.spec.URLs {
		if err := c.fetch(ctx, u, c.regexes[i]); err != nil {
			return fmt.Errorf("url %s: %w", u.Path, err)
		}
	}
	return nil
}

func (c *Checker) fetch(ctx context.Context, u URL, re *regexp.Regexp) error {
	conn, err := c.dial(ctx, "tcp")
	if err != nil {
		return err
	}
	defer conn.Close()
	host := u.VirtualHost
	if host == "" {
		host = c.spec.VirtualHost
	}
	if c.spec.Type == SSL {
		cfg := &tls.Config{InsecureSkipVerify: !c.spec.Verify}
		if c.spec.EnableSNI && host != "" {
			cfg.ServerName = host
		}
		if c.spec.SNIName != "" {
			cfg.ServerName = c.spec.SNIName
		}
		if c.spec.Verify && cfg.ServerName == "" {
			cfg.ServerName = c.target.Addr().String()
			if host != "" {
				cfg.ServerName = host
			}
		}
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	hostHeader := host
	if hostHeader == "" {
		hostHeader = c.target.String()
		if c.target.Addr().Is6() {
			hostHeader = "[" + c.target.Addr().String() + "]:" + strconv.Itoa(int(c.target.Port()))
		}
	}
	path := u.Path
	if path == "" {
		path = "/"
	}
	proto := "HTTP/1.0"
	var extra string
	switch c.spec.HTTPProtocol {
	case "1.0C":
		extra = "Connection: close\r\n"
	case "1.1":
		proto = "HTTP/1.1"
		extra = "Connection: close\r\n"
	}
	req := fmt.Sprintf("GET %s %s\r\nUser-Agent: KeepAliveClient\r\nHost: %s\r\n%s\r\n", path, proto, hostHeader, extra)
	if _, err := io.WriteString(conn, req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	defer resp.Body.Close()
	h := md5.New()
	var body bytes.Buffer
	var w io.Writer = h
	if re != nil {
		w = io.MultiWriter(h, &body)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	if !u.Status.Match(resp.StatusCode) {
		return fmt.Errorf("HTTP status code %d not accepted", resp.StatusCode)
	}
	if u.Digest != "" {
		if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, u.Digest) {
			return fmt.Errorf("MD5 digest %s, want %s", got, strings.ToLower(u.Digest))
		}
	}
	return u.matchBody(re, body.Bytes())
}

// probeSMTP passes when the server greets with 220, answers HELO with 250
// and QUIT with 221.
func (c *Checker) probeSMTP(ctx context.Context) error {
	conn, err := c.dial(ctx, "tcp")
	if err != nil {
		return err
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	helo := c.spec.HeloName
	if err := smtpExpect(r, 220, "greeting"); err != nil {
		return err
	}
	if _, err := fmt.Fprintf(conn, "HELO %s\r\n", helo); err != nil {
		return err
	}
	if err := smtpExpect(r, 250, "HELO"); err != nil {
		return err
	}
	if _, err := io.WriteString(conn, "QUIT\r\n"); err != nil {
		return err
	}
	return smtpExpect(r, 221, "QUIT")
}

// smtpExpect reads one (possibly multi-line) SMTP reply.
func smtpExpect(r *bufio.Reader, want int, what string) error {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("SMTP %s: %w", what, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 3 {
			return fmt.Errorf("SMTP %s: bad reply %q", what, line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			return fmt.Errorf("SMTP %s: bad reply %q", what, line)
		}
		if len(line) > 3 && line[3] == '-' {
			continue
		}
		if code != want {
			return fmt.Errorf("SMTP %s: got %q, want %d", what, line, want)
		}
		return nil
	}
}

// probeUDP sends the payload. Without require_reply it fails only on an
// ICMP error (port unreachable); with it a reply must come, of a length
// within min_reply_length..max_reply_length, starting with Reply (in the
// bits of ReplyMask) when set.
func (c *Checker) probeUDP(ctx context.Context) error {
	conn, err := c.dial(ctx, "udp")
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.Write(c.spec.Payload); err != nil {
		return err
	}
	buf := make([]byte, 65536)
	n, err := conn.Read(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && !c.spec.RequireReply {
			return nil
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("port unreachable")
		}
		return err
	}
	if !c.spec.RequireReply {
		return nil
	}
	if n < c.spec.MinReplyLength || c.spec.MaxReplyLength > 0 && n > c.spec.MaxReplyLength {
		return fmt.Errorf("reply of %d bytes, want %d to %d", n, c.spec.MinReplyLength, c.spec.MaxReplyLength)
	}
	if !replyMatches(buf[:n], c.spec.Reply, c.spec.ReplyMask) {
		return fmt.Errorf("reply %x does not match %x", buf[:min(n, 64)], c.spec.Reply)
	}
	return nil
}

// replyMatches reports whether got starts with want in the bits mask
// sets (all bits past the mask's end).
func replyMatches(got, want, mask []byte) bool {
	if len(got) < len(want) {
		return false
	}
	for i, w := range want {
		m := byte(0xff)
		if i < len(mask) {
			m = mask[i]
		}
		if got[i]&m != w&m {
			return false
		}
	}
	return true
}

// deadline is ctx's deadline or now+d.
func deadline(ctx context.Context, d time.Duration) time.Time {
	if dl, ok := ctx.Deadline(); ok {
		return dl
	}
	return time.Now().Add(d)
}
