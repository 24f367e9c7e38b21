// Package check runs keepalived's real-server health checkers (TCP_CHECK,
// HTTP_GET, SSL_GET, MISC_CHECK, DNS_CHECK, SMTP_CHECK, UDP_CHECK,
// PING_CHECK) with keepalived's timers, retries and pool semantics
// (inhibit_on_failure, quorum, sorry_server, notify scripts).
package check

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"github.com/gvs-lb/gvs/internal/script"
	"net/netip"
	"regexp"
	"time"
)

// Type is a checker kind, named as keepalived.conf names its block.
type Type string

// Checker kinds.
const (
	TCP  Type = "TCP_CHECK"
	HTTP Type = "HTTP_GET"
	SSL  Type = "SSL_GET"
	MISC Type = "MISC_CHECK"
	DNS  Type = "DNS_CHECK"
	SMTP Type = "SMTP_CHECK"
	UDP  Type = "UDP_CHECK"
	PING Type = "PING_CHECK"
	FILE Type = "FILE_CHECK"
)

// Types lists every checker kind.
var Types = []Type{TCP, HTTP, SSL, MISC, DNS, SMTP, UDP, PING, FILE}

// Spec is one checker block of a real server, every value resolved:
// internal/plan compiles it from keepalived.conf with keepalived's
// defaults; the checker runs it as it is.
type Spec struct {
	Type Type `json:"type"`

	// Connect is the address probed (connect_ip, connect_port); an invalid
	// address or a zero port means the real server's.
	Connect netip.AddrPort `json:"connect,omitzero"`
	// BindTo and BindPort choose the probe's source (bindto, bind_port).
	BindTo   netip.Addr `json:"bindto,omitzero"`
	BindPort uint16     `json:"bind_port,omitempty"`
	// BindIf sends the probe out of that interface (bind_if,
	// SO_BINDTODEVICE) and FWMark marks its packets (fwmark, SO_MARK):
	// Linux only.
	BindIf string `json:"bind_if,omitempty"`
	FWMark uint32 `json:"fwmark,omitempty"`

	ConnectTimeout   time.Duration `json:"connect_timeout"`
	Retry            int           `json:"retry"`
	DelayBeforeRetry time.Duration `json:"delay_before_retry"`
	DelayLoop        time.Duration `json:"delay_loop"` // none for FILE_CHECK, which reads its file when it changes
	// Warmup bounds the random delay before the first check; keepalived's
	// default is the delay_loop. Zero checks at once.
	Warmup time.Duration `json:"warmup"`
	// Alpha starts the checker DOWN: the real server joins the pool only
	// after a successful check.
	Alpha bool `json:"alpha,omitempty"`
	// LogAllFailures logs every failed check, not only those that change
	// the state (log_all_failures).
	LogAllFailures bool `json:"log_all_failures,omitempty"`

	// HTTP_GET and SSL_GET.
	URLs         []URL  `json:"urls,omitempty"`
	HTTPProtocol string `json:"http_protocol,omitempty"` // "1.0", "1.0C" or "1.1"
	VirtualHost  string `json:"virtualhost,omitempty"`   // default Host for every url
	EnableSNI    bool   `json:"enable_sni,omitempty"`
	// SNIName is the TLS server name sent (sni_name; default the
	// virtualhost); setting it sends SNI.
	SNIName string `json:"sni_name,omitempty"`
	// Verify checks the server certificate; keepalived does not.
	Verify bool `json:"verify,omitempty"`

	// MISC_CHECK.
	MiscPath    string        `json:"misc_path,omitempty"`
	MiscTimeout time.Duration `json:"misc_timeout,omitempty"`
	MiscDynamic bool          `json:"misc_dynamic,omitempty"`
	// MiscRunAs is the user the script runs as (nil: gvsd's own).
	MiscRunAs *script.Credential `json:"misc_run_as,omitempty"`

	// DNS_CHECK.
	DNSType string `json:"dns_type,omitempty"` // A, NS, CNAME, SOA, MX, TXT or AAAA
	DNSName string `json:"dns_name,omitempty"`

	// SMTP_CHECK.
	HeloName string `json:"helo_name,omitempty"`

	// UDP_CHECK.
	Payload      []byte `json:"payload,omitempty"`
	RequireReply bool   `json:"require_reply,omitempty"`
	// Reply, when set with RequireReply, is what the reply must start
	// with, in the bits ReplyMask sets (require_reply's X nibbles are
	// wildcards; a mask shorter than Reply leaves the rest compared).
	Reply     []byte `json:"reply,omitempty"`
	ReplyMask []byte `json:"reply_mask,omitempty"`
	// MinReplyLength and MaxReplyLength bound a reply's length
	// (min_reply_length, max_reply_length; keepalived's default 0-255).
	MinReplyLength int `json:"min_reply_length,omitempty"`
	MaxReplyLength int `json:"max_reply_length,omitempty"`

	// FILE_CHECK: the track file's path, and the weight (with reverse)
	// that turns its number into the real server's weight change; with
	// FileWeight 0 a non-zero number takes the server down.
	TrackFile   string `json:"track_file,omitempty"`
	FileWeight  int    `json:"file_weight,omitempty"`
	FileReverse bool   `json:"file_reverse,omitempty"`
}

// URL is one url block of HTTP_GET or SSL_GET.
type URL struct {
	Path string `json:"path"`
	// Digest is the hex MD5 of the expected body; empty skips the check.
	Digest string `json:"digest,omitempty"`
	// Status is the accepted status codes; empty means 200-299.
	Status      StatusCodes `json:"status_code,omitempty"`
	VirtualHost string      `json:"virtualhost,omitempty"`
	// Regex, in Go's regexp (RE2) syntax, must match the body, or must
	// not with RegexNoMatch. A match counts only when it starts at or
	// after RegexMinOffset and, when RegexEnd is not 0, before RegexEnd
	// (keepalived's regex_max_offset + 1).
	Regex          string `json:"regex,omitempty"`
	RegexNoMatch   bool   `json:"regex_no_match,omitempty"`
	RegexMinOffset int    `json:"regex_min_offset,omitempty"`
	RegexEnd       int    `json:"regex_end,omitempty"`
}

// matchBody applies the url's regex to body: nil when it passes.
func (u *URL) matchBody(re *regexp.Regexp, body []byte) error {
	if re == nil {
		return nil
	}
	found := false
	if u.RegexMinOffset <= len(body) {
		loc := re.FindIndex(body[u.RegexMinOffset:])
		found = loc != nil && (u.RegexEnd == 0 || u.RegexMinOffset+loc[0] < u.RegexEnd)
	}
	switch {
	case found && u.RegexNoMatch:
		return fmt.Errorf("body matches regex %q (regex_no_match)", u.Regex)
	case !found && !u.RegexNoMatch:
		return fmt.Errorf("body does not match regex %q", u.Regex)
	}
	return nil
}

// StatusCodes is a set of HTTP status code ranges, inclusive.
type StatusCodes [][2]int

// Match reports whether code is accepted. The set is the finished one
// (internal/plan fills keepalived's default, 200-299); an empty set
// accepts nothing, and Validate refuses it.
func (s StatusCodes) Match(code int) bool {
	for _, r := range s {
		if code >= r[0] && code <= r[1] {
			return true
		}
	}
	return false
}

// Validate checks a spec before it runs.
func (s *Spec) Validate() error {
	switch s.Type {
	case TCP, HTTP, SSL, MISC, DNS, SMTP, UDP, PING, FILE:
	default:
		return fmt.Errorf("unknown checker %q (want one of %v)", s.Type, Types)
	}
	if s.DelayLoop <= 0 && s.Type != FILE { // a FILE_CHECK reads its file when it changes
		return fmt.Errorf("%s: delay_loop must be positive", s.Type)
	}
	if s.Type != MISC && s.Type != FILE && s.ConnectTimeout <= 0 {
		return fmt.Errorf("%s: connect_timeout must be positive", s.Type)
	}
	if s.Retry < 0 || s.DelayBeforeRetry < 0 || s.Warmup < 0 {
		return fmt.Errorf("%s: retry, delay_before_retry and warmup must not be negative", s.Type)
	}
	switch s.Type {
	case HTTP, SSL:
		if len(s.URLs) == 0 {
			return fmt.Errorf("%s: no url block (add url { path / })", s.Type)
		}
		switch s.HTTPProtocol {
		case "1.0", "1.0C", "1.1":
		default:
			return fmt.Errorf("%s: unknown http_protocol %q (want 1.0, 1.0C or 1.1)", s.Type, s.HTTPProtocol)
		}
		for _, u := range s.URLs {
			if len(u.Status) == 0 {
				return fmt.Errorf("%s: url %s: no status codes to accept", s.Type, u.Path)
			}
			if u.Digest != "" {
				if b, err := hex.DecodeString(u.Digest); err != nil || len(b) != md5.Size {
					return fmt.Errorf("%s: url %s: digest %q is not a hex MD5 sum", s.Type, u.Path, u.Digest)
				}
			}
			if u.Regex != "" {
				if _, err := regexp.Compile(u.Regex); err != nil {
					return fmt.Errorf("%s: url %s: regex %q: %w", s.Type, u.Path, u.Regex, err)
				}
			}
		}
	case MISC:
		if len(splitCommand(s.MiscPath)) == 0 {
			return fmt.Errorf("MISC_CHECK: no misc_path")
		}
		if s.MiscTimeout <= 0 {
			return fmt.Errorf("MISC_CHECK: misc_timeout must be positive")
		}
	case DNS:
		if _, err := dnsType(s.DNSType); err != nil {
			return err
		}
		if s.DNSName == "" {
			return fmt.Errorf("DNS_CHECK: no name to query")
		}
	case SMTP:
		if s.HeloName == "" {
			return fmt.Errorf("SMTP_CHECK: no helo_name")
		}
	case FILE:
		if s.TrackFile == "" {
			return fmt.Errorf("FILE_CHECK: no track file")
		}
	}
	return nil
}

// target is the address a checker probes for a real server.
func (s *Spec) target(rs netip.AddrPort) netip.AddrPort {
	addr, port := rs.Addr(), rs.Port()
	if s.Connect.Addr().IsValid() {
		addr = s.Connect.Addr()
	}
	if s.Connect.Port() != 0 {
		port = s.Connect.Port()
	}
	return netip.AddrPortFrom(addr, port)
}

// retriesWhileDown reports whether failed checks of a checker already DOWN
// are retried before the next delay_loop: keepalived's MISC_CHECK and
// DNS_CHECK retry only while UP, the others always.
func (s *Spec) retriesWhileDown() bool { return s.Type != MISC && s.Type != DNS }
