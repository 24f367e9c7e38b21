package check

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// This file holds the real servers the tests check, all on loopback.

// prerequisite skips the test, or fails it in CI where every
// prerequisite must be there.
func prerequisite(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatal("CI prerequisite missing: " + msg)
	}
	t.Skip(msg)
}

func addrPort(t *testing.T, a net.Addr) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// webServer is an HTTP(S) server whose answers a test controls.
type webServer struct {
	sni atomic.Value // the TLS server name of the last request
	*httptest.Server
	status atomic.Int64
	body   atomic.Value // string
	hang   atomic.Bool  // accept but never answer
	host   atomic.Value // last Host header
	proto  atomic.Value // last request protocol
}

func newWebServer(t *testing.T, tlsOn bool) *webServer {
	w := &webServer{}
	w.status.Store(200)
	w.body.Store("hello\n")
	stop := make(chan struct{})
	h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.host.Store(r.Host)
		w.proto.Store(r.Proto)
		if r.TLS != nil {
			w.sni.Store(r.TLS.ServerName)
		}
		if w.hang.Load() {
			select {
			case <-stop:
			case <-r.Context().Done():
			}
			return
		}
		rw.WriteHeader(int(w.status.Load()))
		io.WriteString(rw, w.body.Load().(string))
	})
	w.Server = httptest.NewUnstartedServer(h)
	w.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake errors are expected
	if tlsOn {
		w.StartTLS()
	} else {
		w.Start()
	}
	t.Cleanup(func() { close(stop); w.Server.Close() })
	return w
}

func (w *webServer) addr(t *testing.T) netip.AddrPort { return addrPort(t, w.Listener.Addr()) }

// dnsServer answers queries on UDP with a test-chosen RCODE, or not at
// all.
type dnsServer struct {
	conn   net.PacketConn
	rcode  atomic.Int64
	silent atomic.Bool
	last   atomic.Value // last question, "name type"
}

func newDNSServer(t *testing.T, network, addr string) *dnsServer {
	pc, err := net.ListenPacket(network, addr)
	if err != nil {
		prerequisite(t, "cannot listen on %s %s: %v", network, addr, err)
	}
	s := &dnsServer{conn: pc}
	var wg sync.WaitGroup
	wg.Add(1)
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	go func() {
		defer wg.Done()
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			var m dnsmessage.Message
			if m.Unpack(buf[:n]) != nil || len(m.Questions) != 1 {
				continue
			}
			q := m.Questions[0]
			s.last.Store(q.Name.String() + " " + q.Type.String())
			if s.silent.Load() {
				continue
			}
			m.Response, m.RCode = true, dnsmessage.RCode(s.rcode.Load())
			if m.RCode == dnsmessage.RCodeSuccess && q.Type == dnsmessage.TypeA {
				m.Answers = []dnsmessage.Resource{{
					Header: dnsmessage.ResourceHeader{Name: q.Name, Type: q.Type, Class: q.Class, TTL: 60},
					Body:   &dnsmessage.AResource{A: [4]byte{198, 18, 0, 1}},
				}}
			}
			out, err := m.Pack()
			if err == nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	return s
}

// smtpServer is a tiny SMTP server: 220 greeting, 250 to HELO, 221 to
// QUIT; greet sets the greeting line.
type smtpServer struct {
	ln    net.Listener
	greet atomic.Value // string
	helo  atomic.Value // last HELO argument
}

func newSMTPServer(t *testing.T) *smtpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln}
	s.greet.Store("220 mx.test ESMTP ready")
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(5 * time.Second))
				fmt.Fprintf(c, "%s\r\n", s.greet.Load())
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					cmd, arg, _ := strings.Cut(strings.TrimSpace(line), " ")
					switch strings.ToUpper(cmd) {
					case "HELO", "EHLO":
						s.helo.Store(arg)
						io.WriteString(c, "250-mx.test\r\n250 OK\r\n")
					case "QUIT":
						io.WriteString(c, "221 bye\r\n")
						return
					default:
						io.WriteString(c, "502 not implemented\r\n")
					}
				}
			}()
		}
	}()
	return s
}

// udpEcho echoes datagrams, with prefix before each when set.
func newUDPEcho(t *testing.T, prefix string) net.PacketConn {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(prefix), buf[:n]...), from)
		}
	}()
	return pc
}

// freeUDPPort is a loopback UDP port nobody listens on.
func freeUDPPort(t *testing.T) netip.AddrPort {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := addrPort(t, pc.LocalAddr())
	pc.Close()
	return ap
}

// tcpServer is a TCP listener that can be stopped and started again on
// the same port.
type tcpServer struct {
	t    *testing.T
	addr netip.AddrPort
	mu   sync.Mutex
	ln   net.Listener
}

func newTCPServer(t *testing.T) *tcpServer {
	s := &tcpServer{t: t}
	s.start("127.0.0.1:0")
	s.addr = addrPort(t, s.ln.Addr())
	t.Cleanup(s.stop)
	return s
}

func (s *tcpServer) start(addr string) {
	s.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger briefly after a stop
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("listen %s: %v", addr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
}

func (s *tcpServer) restart() { s.start(s.addr.String()) }

func (s *tcpServer) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
