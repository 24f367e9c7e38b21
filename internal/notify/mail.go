// Package notify sends keepalived's smtp_alert mails: one message per state
// change (a real server up or down, a quorum gained or lost, a VRRP
// transition) through the configured SMTP server.
package notify

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/smtp"
	"strings"
	"time"
)

// Mailer sends alerts as keepalived's global_defs configure them.
type Mailer struct {
	Server   string        // smtp_server host:port (port 25 when missing)
	Timeout  time.Duration // smtp_connect_timeout, 30 s by default
	From     string        // notification_email_from
	To       []string      // notification_email
	RouterID string        // router_id, prefixed to the subject
	Log      *slog.Logger
	// Helo is the name given in HELO; the host name by default.
	Helo string
}

// Alert is one state change to tell about.
type Alert struct {
	Subject string
	Body    string
}

// Send mails one alert. It returns an error saying which step failed; the
// caller logs it (an alert that cannot be sent never stops anything).
func (m *Mailer) Send(ctx context.Context, a Alert) error {
	if m.Server == "" || len(m.To) == 0 {
		return nil
	}
	addr := m.Server
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "25")
	}
	timeout := m.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("smtp_server %s: %w", addr, err)
	}
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp_server %s: greeting: %w", addr, err)
	}
	defer c.Close()
	if err := m.deliver(c, a); err != nil {
		return fmt.Errorf("smtp_server %s: %w", addr, err)
	}
	return c.Quit()
}

func (m *Mailer) deliver(c *smtp.Client, a Alert) error {
	helo := m.Helo
	if helo == "" {
		helo = "localhost"
	}
	if err := c.Hello(helo); err != nil {
		return fmt.Errorf("HELO: %w", err)
	}
	if err := c.Mail(m.From); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, to := range m.To {
		if err := c.Rcpt(to); err != nil {
			return fmt.Errorf("RCPT TO %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(m.message(a)); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	return w.Close()
}

func (m *Mailer) message(a Alert) []byte {
	var b bytes.Buffer
	subject := a.Subject
	if m.RouterID != "" {
		subject = "[" + m.RouterID + "] " + subject
	}
	fmt.Fprintf(&b, "From: %s\r\n", m.From)
	fmt.Fprintf(&b, "To: %s\r\n", strings.Join(m.To, ", "))
	fmt.Fprintf(&b, "Date: %s\r\n", time.Now().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Subject: %s\r\n", subject)
	b.WriteString("X-Mailer: gvsd\r\n\r\n")
	b.WriteString(strings.ReplaceAll(a.Body, "\n", "\r\n"))
	b.WriteString("\r\n")
	return b.Bytes()
}

// Go sends the alert in the background and logs a failure.
func (m *Mailer) Go(ctx context.Context, a Alert) {
	go func() {
		if err := m.Send(ctx, a); err != nil && m.Log != nil {
			m.Log.Warn("smtp alert not sent", "subject", a.Subject, "error", err)
		}
	}()
}

// RealServerAlert is keepalived's mail for a real server changing state.
func RealServerAlert(rs, vs string, up bool, reason string) Alert {
	state := "DOWN"
	if up {
		state = "UP"
	}
	body := "=> CHECK succeed on service <="
	if !up {
		body = fmt.Sprintf("=> CHECK failed on service : %s <=", reason)
	}
	return Alert{Subject: fmt.Sprintf("Realserver %s of virtual server %s - %s", rs, vs, state), Body: body}
}

// VRRPAlert is keepalived's mail for a VRRP instance changing state.
func VRRPAlert(instance, state string) Alert {
	return Alert{
		Subject: fmt.Sprintf("Entering %s state", state),
		Body:    fmt.Sprintf("=> VRRP Instance %s is now %s <=", instance, state),
	}
}
