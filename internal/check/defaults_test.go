package check

import "time"

// ok2xx is keepalived's default status_code, which internal/plan fills in.
var ok2xx = StatusCodes{{200, 299}}

// defaultSpec returns, for tests, keepalived's defaults for a checker kind: a 5s
// connect_timeout, a 60s delay_loop (also the warmup), one retry after 1s
// (3s for HTTP_GET and SSL_GET), three retries after a delay_loop for
// DNS_CHECK, no retry for MISC_CHECK.
func defaultSpec(t Type) Spec {
	s := Spec{
		Type:             t,
		ConnectTimeout:   5 * time.Second,
		DelayLoop:        60 * time.Second,
		Warmup:           60 * time.Second,
		Retry:            1,
		DelayBeforeRetry: time.Second,
	}
	switch t {
	case HTTP, SSL:
		s.DelayBeforeRetry = 3 * time.Second
		s.HTTPProtocol = "1.0"
	case DNS:
		s.Retry = 3
		s.DelayBeforeRetry = s.DelayLoop
		s.DNSType = "SOA"
		s.DNSName = "."
	case MISC:
		s.Retry = 0
		s.MiscTimeout = s.DelayLoop
	case SMTP:
		s.HeloName = "smtpchecker.keepalived.org"
	case FILE:
		// the file's number is the state, read when it changes: no
		// retries, no warmup, no delay_loop
		s.Retry, s.Warmup, s.DelayLoop = 0, 0, 0
	}
	return s
}
