package notify

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// smtpServer is a minimal SMTP server on loopback that records the
// conversation of one session.
func smtpServer(t *testing.T, rejectRcpt bool) (string, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		var log strings.Builder
		r := bufio.NewReader(c)
		say := func(s string) { c.Write([]byte(s + "\r\n")) }
		say("220 test ESMTP")
		inData := false
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				got <- log.String()
				return
			}
			log.WriteString(line)
			switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
			case inData && cmd == ".":
				inData = false
				say("250 queued")
			case inData:
			case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
				say("250 test")
			case strings.HasPrefix(cmd, "RCPT") && rejectRcpt:
				say("550 no such user")
			case strings.HasPrefix(cmd, "MAIL"), strings.HasPrefix(cmd, "RCPT"):
				say("250 ok")
			case cmd == "DATA":
				inData = true
				say("354 go on")
			case cmd == "QUIT":
				say("221 bye")
				got <- log.String()
				return
			default:
				say("502 unknown")
			}
		}
	}()
	return ln.Addr().String(), got
}

func TestMailerSendsAlert(t *testing.T) {
	addr, got := smtpServer(t, false)
	m := &Mailer{Server: addr, From: "lvs@example.org", To: []string{"ops@example.org", "oncall@example.org"}, RouterID: "LVS_DEVEL"}
	a := RealServerAlert("[198.18.1.11]:80", "[198.18.0.10]:80", false, "connection error")
	if err := m.Send(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	conv := <-got
	for _, want := range []string{
		"MAIL FROM:<lvs@example.org>",
		"RCPT TO:<ops@example.org>",
		"RCPT TO:<oncall@example.org>",
		"Subject: [LVS_DEVEL] Realserver [198.18.1.11]:80 of virtual server [198.18.0.10]:80 - DOWN",
		"=> CHECK failed on service : connection error <=",
		"QUIT",
	} {
		if !strings.Contains(conv, want) {
			t.Errorf("conversation lacks %q:\n%s", want, conv)
		}
	}
}

func TestMailerReportsRefusal(t *testing.T) {
	addr, _ := smtpServer(t, true)
	m := &Mailer{Server: addr, From: "lvs@example.org", To: []string{"nobody@example.org"}}
	err := m.Send(context.Background(), VRRPAlert("VI_1", "MASTER"))
	if err == nil || !strings.Contains(err.Error(), "RCPT TO nobody@example.org") {
		t.Fatalf("a refused recipient gave %v; want an error naming the RCPT step", err)
	}
}

func TestMailerUnreachableServer(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	m := &Mailer{Server: addr, From: "a@example.org", To: []string{"b@example.org"}, Timeout: time.Second}
	if err := m.Send(context.Background(), VRRPAlert("VI_1", "BACKUP")); err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("unreachable server gave %v; want an error naming %s", err, addr)
	}
}
