package check

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// spec returns a spec of type t with short timers for tests.
func spec(t Type) Spec {
	s := defaultSpec(t)
	s.ConnectTimeout = 300 * time.Millisecond
	s.DelayLoop = 100 * time.Millisecond
	s.DelayBeforeRetry = 50 * time.Millisecond
	s.Warmup = 0
	if t == MISC {
		s.MiscTimeout = 5 * time.Second // not the short delay_loop: scripts start slowly on a loaded machine
	}
	return s
}

// probe runs one check of s against rs and returns its error text ("" on
// success) and weight.
func probe(t *testing.T, s Spec, rs netip.AddrPort) (string, int) {
	t.Helper()
	c, err := NewChecker(s, rs, nil)
	if err != nil {
		t.Fatalf("NewChecker: %v", err)
	}
	w, err := c.Probe(context.Background())
	if err != nil {
		return err.Error(), w
	}
	return "", w
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestTCPCheck(t *testing.T) {
	srv := newTCPServer(t)
	closed := newTCPServer(t)
	closed.stop()
	tests := []struct {
		name    string
		rs      netip.AddrPort
		connect netip.AddrPort
		wantErr string
	}{
		{name: "listening", rs: srv.addr},
		{name: "refused", rs: closed.addr, wantErr: "connection refused"},
		{name: "connect_port overrides", rs: closed.addr, connect: netip.AddrPortFrom(netip.Addr{}, srv.addr.Port())},
		{name: "connect_ip and port", rs: netip.MustParseAddrPort("198.18.0.1:1"), connect: srv.addr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec(TCP)
			s.Connect = tt.connect
			got, _ := probe(t, s, tt.rs)
			if !strings.Contains(got, tt.wantErr) || (tt.wantErr == "") != (got == "") {
				t.Errorf("error %q, want %q", got, tt.wantErr)
			}
		})
	}
}

func TestHTTPCheck(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		typ := HTTP
		if tlsOn {
			typ = SSL
		}
		t.Run(string(typ), func(t *testing.T) {
			srv := newWebServer(t, tlsOn)
			tests := []struct {
				name    string
				status  int
				body    string
				url     URL
				proto   string
				hang    bool
				wantErr string
			}{
				{name: "200 in 2xx", status: 200, body: "ok", url: URL{Path: "/", Status: ok2xx}},
				{name: "204 in 2xx", status: 204, url: URL{Path: "/", Status: ok2xx}},
				{name: "500 refused", status: 500, body: "x", url: URL{Path: "/", Status: ok2xx}, wantErr: "status code 500 not accepted"},
				{name: "301 in range", status: 301, url: URL{Path: "/", Status: StatusCodes{{200, 299}, {300, 302}}}},
				{name: "404 outside ranges", status: 404, url: URL{Path: "/", Status: StatusCodes{{200, 299}, {300, 302}}}, wantErr: "404"},
				{name: "digest matches", status: 200, body: "healthy\n", url: URL{Path: "/health", Status: ok2xx, Digest: md5hex("healthy\n")}},
				{name: "digest upper case", status: 200, body: "healthy\n", url: URL{Path: "/health", Status: ok2xx, Digest: strings.ToUpper(md5hex("healthy\n"))}},
				{name: "digest differs", status: 200, body: "sick\n", url: URL{Path: "/health", Status: ok2xx, Digest: md5hex("healthy\n")}, wantErr: "MD5 digest " + md5hex("sick\n")},
				{name: "HTTP/1.1", status: 200, url: URL{Path: "/", Status: ok2xx}, proto: "1.1"},
				{name: "1.0C", status: 200, url: URL{Path: "/", Status: ok2xx}, proto: "1.0C"},
				{name: "virtualhost", status: 200, url: URL{Path: "/", Status: ok2xx, VirtualHost: "www.example.test"}},
				{name: "regex matches", status: 200, body: "<h1>status: OK</h1>", url: URL{Path: "/", Status: ok2xx, Regex: `status: (OK|GOOD)`}},
				{name: "regex does not match", status: 200, body: "status: FAILED", url: URL{Path: "/", Status: ok2xx, Regex: `status: (OK|GOOD)`}, wantErr: `body does not match regex "status: (OK|GOOD)"`},
				{name: "regex_no_match passes", status: 200, body: "all fine", url: URL{Path: "/", Status: ok2xx, Regex: `(?i)error`, RegexNoMatch: true}},
				{name: "regex_no_match fails", status: 200, body: "Internal ERROR", url: URL{Path: "/", Status: ok2xx, Regex: `(?i)error`, RegexNoMatch: true}, wantErr: "body matches regex"},
				{name: "regex after min offset", status: 200, body: "OK......OK", url: URL{Path: "/", Status: ok2xx, Regex: `OK`, RegexMinOffset: 1}},
				{name: "regex before min offset", status: 200, body: "OK........", url: URL{Path: "/", Status: ok2xx, Regex: `OK`, RegexMinOffset: 1}, wantErr: "does not match"},
				{name: "regex at max offset", status: 200, body: "...OK", url: URL{Path: "/", Status: ok2xx, Regex: `OK`, RegexEnd: 4}},
				{name: "regex beyond max offset", status: 200, body: "....OK", url: URL{Path: "/", Status: ok2xx, Regex: `OK`, RegexEnd: 4}, wantErr: "does not match"},
				{name: "regex and wrong status", status: 500, body: "OK", url: URL{Path: "/", Status: ok2xx, Regex: `OK`}, wantErr: "status code 500"},
				{name: "hanging server times out", hang: true, url: URL{Path: "/", Status: ok2xx}, wantErr: "timeout"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					srv.status.Store(int64(tt.status))
					srv.body.Store(tt.body)
					srv.hang.Store(tt.hang)
					s := spec(typ)
					s.URLs = []URL{tt.url}
					if tt.proto != "" {
						s.HTTPProtocol = tt.proto
					}
					s.EnableSNI = true
					got, _ := probe(t, s, srv.addr(t))
					if !strings.Contains(got, tt.wantErr) || (tt.wantErr == "") != (got == "") {
						t.Fatalf("error %q, want %q", got, tt.wantErr)
					}
					if tt.hang {
						return
					}
					wantProto := "HTTP/1.0"
					if tt.proto == "1.1" {
						wantProto = "HTTP/1.1"
					}
					if p := srv.proto.Load(); p != wantProto {
						t.Errorf("server saw %v, want %s", p, wantProto)
					}
					wantHost := srv.addr(t).String()
					if tt.url.VirtualHost != "" {
						wantHost = tt.url.VirtualHost
					}
					if h := srv.host.Load(); h != wantHost {
						t.Errorf("server saw Host %v, want %s", h, wantHost)
					}
				})
			}
		})
	}
}

func TestSSLCheckVerify(t *testing.T) {
	srv := newWebServer(t, true)
	s := spec(SSL)
	s.URLs = []URL{{Path: "/", Status: ok2xx}}
	s.Verify = true
	s.ConnectTimeout = 10 * time.Second // the handshake fails at once; a slow one (-race) must not time out first
	got, _ := probe(t, s, srv.addr(t))
	if !strings.Contains(got, "certificate") {
		t.Errorf("verify against a self-signed certificate: error %q, want a certificate error", got)
	}
	// HTTP_GET on a TLS port fails: the answer is not HTTP.
	s = spec(HTTP)
	s.URLs = []URL{{Path: "/", Status: ok2xx}}
	if got, _ := probe(t, s, srv.addr(t)); got == "" {
		t.Error("HTTP_GET to a TLS server passed")
	}
}

func TestMultipleURLsMustAllPass(t *testing.T) {
	srv := newWebServer(t, false)
	srv.body.Store("same")
	s := spec(HTTP)
	s.URLs = []URL{{Path: "/a", Status: ok2xx, Digest: md5hex("same")}, {Path: "/b", Status: ok2xx, Digest: md5hex("other")}}
	got, _ := probe(t, s, srv.addr(t))
	if !strings.HasPrefix(got, "url /b: MD5 digest") {
		t.Errorf("error %q, want the second url's digest error", got)
	}
}

func TestDNSCheck(t *testing.T) {
	srv := newDNSServer(t, "udp", "127.0.0.1:0")
	rs := addrPort(t, srv.conn.LocalAddr())
	tests := []struct {
		name    string
		typ     string
		qname   string
		rcode   dnsmessage.RCode
		silent  bool
		wantQ   string
		wantErr string
	}{
		{name: "default SOA of root", wantQ: ". TypeSOA"},
		{name: "A record", typ: "A", qname: "www.example.test", wantQ: "www.example.test. TypeA"},
		{name: "AAAA lower case", typ: "aaaa", qname: "example.test.", wantQ: "example.test. TypeAAAA"},
		{name: "SERVFAIL", typ: "A", qname: "x.test", rcode: dnsmessage.RCodeServerFailure, wantErr: "RCodeServerFailure"},
		{name: "NXDOMAIN", typ: "A", qname: "x.test", rcode: dnsmessage.RCodeNameError, wantErr: "RCodeNameError"},
		{name: "no answer", typ: "A", qname: "x.test", silent: true, wantErr: "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.rcode.Store(int64(tt.rcode))
			srv.silent.Store(tt.silent)
			s := spec(DNS)
			if tt.typ != "" {
				s.DNSType = tt.typ
			}
			if tt.qname != "" {
				s.DNSName = tt.qname
			}
			got, _ := probe(t, s, rs)
			if !strings.Contains(got, tt.wantErr) || (tt.wantErr == "") != (got == "") {
				t.Fatalf("error %q, want %q", got, tt.wantErr)
			}
			if tt.wantQ != "" && srv.last.Load() != tt.wantQ {
				t.Errorf("server saw %v, want %q", srv.last.Load(), tt.wantQ)
			}
		})
	}
}

func TestSMTPCheck(t *testing.T) {
	srv := newSMTPServer(t)
	rs := addrPort(t, srv.ln.Addr())
	tests := []struct {
		name    string
		greet   string
		helo    string
		wantErr string
	}{
		{name: "220 250 221", greet: "220 mx.test ready", helo: "lb1.example.test"},
		{name: "multi-line greeting", greet: "220-mx.test\r\n220 ready", helo: "lb1"},
		{name: "554 refused", greet: "554 go away", helo: "lb1", wantErr: `SMTP greeting: got "554 go away", want 220`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.greet.Store(tt.greet)
			s := spec(SMTP)
			s.HeloName = tt.helo
			got, _ := probe(t, s, rs)
			if !strings.Contains(got, tt.wantErr) || (tt.wantErr == "") != (got == "") {
				t.Fatalf("error %q, want %q", got, tt.wantErr)
			}
			if tt.wantErr == "" && srv.helo.Load() != tt.helo {
				t.Errorf("server saw HELO %v, want %s", srv.helo.Load(), tt.helo)
			}
		})
	}
}

func TestUDPCheck(t *testing.T) {
	echo := addrPort(t, newUDPEcho(t, "").LocalAddr())
	prefixed := addrPort(t, newUDPEcho(t, "OK ").LocalAddr())
	closed := freeUDPPort(t)
	tests := []struct {
		name    string
		rs      netip.AddrPort
		payload string
		require bool
		reply   string
		mask    []byte
		min     int
		max     int
		wantErr string
	}{
		{name: "echo, reply not required", rs: echo, payload: "ping"},
		{name: "echo, reply required", rs: echo, payload: "ping", require: true},
		{name: "reply matches", rs: prefixed, payload: "ping", require: true, reply: "OK "},
		{name: "reply differs", rs: echo, payload: "ping", require: true, reply: "OK ", wantErr: "does not match"},
		{name: "reply matches in the mask's bits", rs: prefixed, payload: "ping", require: true, reply: "OX ", mask: []byte{0xff, 0x00}},
		{name: "reply differs in the mask's bits", rs: prefixed, payload: "ping", require: true, reply: "XK ", mask: []byte{0xff, 0x00}, wantErr: "does not match"},
		{name: "reply within the lengths", rs: echo, payload: "ping", require: true, min: 4, max: 4},
		{name: "reply too short", rs: echo, payload: "ping", require: true, min: 5, max: 255, wantErr: "reply of 4 bytes"},
		{name: "reply too long", rs: echo, payload: "ping", require: true, max: 3, wantErr: "reply of 4 bytes"},
		{name: "port unreachable", rs: closed, payload: "ping", wantErr: "port unreachable"},
		{name: "port unreachable, reply required", rs: closed, payload: "ping", require: true, wantErr: "port unreachable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec(UDP)
			s.Payload = []byte(tt.payload)
			s.RequireReply = tt.require
			s.Reply = []byte(tt.reply)
			s.ReplyMask, s.MinReplyLength, s.MaxReplyLength = tt.mask, tt.min, tt.max
			got, _ := probe(t, s, tt.rs)
			if !strings.Contains(got, tt.wantErr) || (tt.wantErr == "") != (got == "") {
				t.Fatalf("error %q, want %q", got, tt.wantErr)
			}
		})
	}
}

func TestMiscCheck(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	tests := []struct {
		name       string
		path       string
		dynamic    bool
		wantErr    string
		wantWeight int
	}{
		{name: "exit 0", path: "true", wantWeight: -1},
		{name: "exit 1", path: "false", wantErr: "exited with status 1", wantWeight: -1},
		{name: "exit 3 without misc_dynamic", path: "sh -c 'exit 3'", wantErr: "exited with status 3", wantWeight: -1},
		{name: "dynamic exit 0 keeps the weight", path: "true", dynamic: true, wantWeight: -1},
		{name: "dynamic exit 1 is down", path: "sh -c 'exit 1'", dynamic: true, wantErr: "status 1", wantWeight: -1},
		{name: "dynamic exit 2 is weight 0", path: "sh -c 'exit 2'", dynamic: true, wantWeight: 0},
		{name: "dynamic exit 7 is weight 5", path: "sh -c 'exit 7'", dynamic: true, wantWeight: 5},
		{name: "dynamic exit 255 is weight 253", path: "sh -c 'exit 255'", dynamic: true, wantWeight: 253},
		{name: "arguments with quotes", path: `sh -c "touch '` + marker + `'"`, wantWeight: -1},
		{name: "missing script", path: filepath.Join(dir, "nope.sh"), wantErr: "no such file", wantWeight: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := spec(MISC)
			s.MiscPath = tt.path
			s.MiscDynamic = tt.dynamic
			got, w := probe(t, s, netip.MustParseAddrPort("127.0.0.1:80"))
			if !strings.Contains(got, tt.wantErr) || (tt.wantErr == "") != (got == "") {
				t.Fatalf("error %q, want %q", got, tt.wantErr)
			}
			if w != tt.wantWeight {
				t.Errorf("weight %d, want %d", w, tt.wantWeight)
			}
		})
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("quoted script did not run: %v", err)
	}
}

// TestMiscCheckTimeout: misc_timeout ends a script that would run on
// for 1000 s, and the attempt fails as timed out.
func TestMiscCheckTimeout(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	s := spec(MISC)
	s.MiscPath = `sh -c "echo $$ >` + pidFile + `; exec sleep 1000"`
	s.MiscTimeout = 200 * time.Millisecond
	c, err := NewChecker(s, netip.MustParseAddrPort("127.0.0.1:80"), nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := c.Probe(context.Background()); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Fatalf("error %v, want the script timed out", err)
		}
	case <-time.After(30 * time.Second): // a hang, not a timing bound
		if b, err := os.ReadFile(pidFile); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		<-done
		t.Fatal("misc_timeout did not end the script")
	}
}

func TestPingCheck(t *testing.T) {
	for _, target := range []string{"127.0.0.1", "::1"} {
		t.Run(target, func(t *testing.T) {
			addr := netip.MustParseAddr(target)
			c, _, err := listenICMP(addr.Is6(), "")
			if err != nil {
				prerequisite(t, "ICMP sockets not permitted: %v", err)
			}
			c.Close()
			s := spec(PING)
			if got, _ := probe(t, s, netip.AddrPortFrom(addr, 0)); got != "" {
				if addr.Is6() && strings.Contains(got, "address not available") {
					prerequisite(t, "no IPv6 loopback: %s", got)
				}
				t.Fatalf("ping %s: %s", target, got)
			}
		})
	}
}
