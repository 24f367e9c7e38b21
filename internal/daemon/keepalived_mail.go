package daemon

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"

	"github.com/gvs-lb/gvs/internal/check"
	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/notify"
	"github.com/gvs-lb/gvs/internal/vrrp"
)

// mailer decides which state changes are mailed (smtp_alert, as keepalived
// resolves it) and sends them.
type mailer struct {
	m *notify.Mailer // nil when there is no smtp_server or no recipient
	g config.Global
}

func newMailer(cfg *config.Config, log *slog.Logger) *mailer {
	g := cfg.Global
	ml := &mailer{g: g}
	if g.SMTPServer == "" || len(g.NotificationEmail) == 0 {
		return ml
	}
	host, _ := os.Hostname()
	port := g.SMTPPort
	if port == 0 {
		port = 25
	}
	ml.m = &notify.Mailer{
		Server:   net.JoinHostPort(g.SMTPServer, strconv.Itoa(int(port))),
		Timeout:  g.SMTPConnectTimeout,
		From:     cmp.Or(g.NotificationEmailFrom, "keepalived@"+cmp.Or(host, "localhost")),
		To:       g.NotificationEmail,
		RouterID: cmp.Or(g.RouterID, host),
		Helo:     cmp.Or(g.SMTPHeloName, host),
		Log:      log,
	}
	return ml
}

// first returns the first setting made, else def.
func first(def bool, opts ...*bool) bool {
	for _, o := range opts {
		if o != nil {
			return *o
		}
	}
	return def
}

// checker reports whether a real server's changes are mailed: its own
// smtp_alert, else its virtual server's, else smtp_alert_checker, else
// the global smtp_alert.
func (ml *mailer) checker(vs *config.VirtualServer, rs *config.RealServer) bool {
	var own *bool
	if rs != nil {
		own = rs.SMTPAlert
	}
	return ml.m != nil && first(false, own, vs.SMTPAlert, ml.g.SMTPAlertChecker, ml.g.SMTPAlert)
}

// vrrp reports whether an instance's (or a sync group's) change to st is
// mailed: its own smtp_alert, else smtp_alert_vrrp, else smtp_alert; never
// a FAULT with no_email_faults.
func (ml *mailer) vrrp(own *bool, st vrrp.State) bool {
	if st == vrrp.StateFault && ml.g.NoEmailFaults {
		return false
	}
	return ml.m != nil && first(false, own, ml.g.SMTPAlertVRRP, ml.g.SMTPAlert)
}

// mailLVSEvent mails a checker event when smtp_alert asks for it. It
// runs in the unit's manager, by the settings the reconciler published.
func (k *keepalived) mailLVSEvent(u *lvsUnit, ev check.Event) {
	al := u.alerts.Load()
	if al == nil || al.mail == nil {
		return
	}
	ml, vs := al.mail, al.vs
	var a notify.Alert
	switch ev.Kind {
	case check.RealServerUp, check.RealServerDown:
		var rs *config.RealServer
		for i := range vs.RealServers {
			r := &vs.RealServers[i]
			if r.Addr == ev.RealServer.Addr() && (r.Port == 0 || r.Port == ev.RealServer.Port()) {
				rs = r
			}
		}
		if !ml.checker(vs, rs) {
			return
		}
		reason := ev.Message
		if ev.Error != "" {
			reason = fmt.Sprintf("%s (%s)", ev.Message, ev.Error)
		}
		a = notify.RealServerAlert(ev.RealServer.String(), ev.Service.String(), ev.Kind == check.RealServerUp, reason)
	case check.QuorumUp, check.QuorumDown:
		if !ml.checker(vs, nil) {
			return
		}
		state := "UP"
		if ev.Kind == check.QuorumDown {
			state = "DOWN"
		}
		a = notify.Alert{Subject: fmt.Sprintf("Virtualserver %s - %s", ev.Service, state), Body: ev.Message}
	default:
		return
	}
	ml.m.Go(k.ctx, a)
}
