package config

import (
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// CheckerType is a health checker block's keyword.
type CheckerType string

// Checker types.
const (
	TCPCheck  CheckerType = "TCP_CHECK"
	HTTPGet   CheckerType = "HTTP_GET"
	SSLGet    CheckerType = "SSL_GET"
	MiscCheck CheckerType = "MISC_CHECK"
	DNSCheck  CheckerType = "DNS_CHECK"
	SMTPCheck CheckerType = "SMTP_CHECK"
	UDPCheck  CheckerType = "UDP_CHECK"
	PingCheck CheckerType = "PING_CHECK"
	FileCheck CheckerType = "FILE_CHECK"
)

var checkerTypes = map[string]CheckerType{
	"TCP_CHECK": TCPCheck, "HTTP_GET": HTTPGet, "SSL_GET": SSLGet, "MISC_CHECK": MiscCheck,
	"DNS_CHECK": DNSCheck, "SMTP_CHECK": SMTPCheck, "UDP_CHECK": UDPCheck, "PING_CHECK": PingCheck,
	"FILE_CHECK": FileCheck,
}

// Checker is one health checker of a real server, with every timer
// resolved: a checker's own setting, else its real server's, else its
// virtual server's, else keepalived's default for the type.
type Checker struct {
	Pos  Pos         `json:"pos"`
	Type CheckerType `json:"type"`

	// ConnectIP and ConnectPort default to the real server's address and
	// port (SMTP_CHECK: port 25 when the real server has none; DNS_CHECK:
	// 53).
	ConnectIP   netip.Addr `json:"connect_ip,omitzero"`
	ConnectPort uint16     `json:"connect_port,omitempty"`
	BindTo      netip.Addr `json:"bindto,omitzero"`
	BindIf      string     `json:"bind_if,omitempty"`
	BindPort    uint16     `json:"bind_port,omitempty"`
	FWMark      uint32     `json:"fwmark,omitempty"`

	// ConnectTimeout defaults to 5 s.
	ConnectTimeout time.Duration `json:"connect_timeout"`
	// Retry is how many more failures are tolerated before the server
	// goes down: default 1; DNS_CHECK 3; MISC_CHECK 0.
	Retry int `json:"retry"`
	// DelayBeforeRetry defaults to 1 s; 3 s for HTTP_GET and SSL_GET;
	// DelayLoop for DNS_CHECK.
	DelayBeforeRetry time.Duration `json:"delay_before_retry"`
	// DelayLoop is the check interval (default 60 s).
	DelayLoop time.Duration `json:"delay_loop"`
	// Warmup is the maximum random delay before the first check
	// (default DelayLoop; 0 disables it).
	Warmup         time.Duration `json:"warmup"`
	Alpha          bool          `json:"alpha,omitempty"`
	LogAllFailures bool          `json:"log_all_failures,omitempty"`

	HTTP *HTTPCheckConf `json:"http,omitempty"` // HTTP_GET, SSL_GET
	Misc *MiscCheckConf `json:"misc,omitempty"` // MISC_CHECK
	DNS  *DNSCheckConf  `json:"dns,omitempty"`  // DNS_CHECK
	SMTP *SMTPCheckConf `json:"smtp,omitempty"` // SMTP_CHECK
	UDP  *UDPCheckConf  `json:"udp,omitempty"`  // UDP_CHECK
	File *FileCheckConf `json:"file,omitempty"` // FILE_CHECK

	common         common
	logAllFailures *bool
}

// HTTPCheckConf is the HTTP_GET / SSL_GET part of a checker.
type HTTPCheckConf struct {
	// Protocol is "1.0" (default), "1.0C" (1.0 with Connection: close)
	// or "1.1".
	Protocol string `json:"http_protocol"`
	// Virtualhost is the Host header (default the real server's, then
	// the virtual server's virtualhost, then the address).
	Virtualhost  string `json:"virtualhost,omitempty"`
	URLs         []URL  `json:"urls"`
	FastRecovery bool   `json:"fast_recovery,omitempty"`
	EnableSNI    bool   `json:"enable_sni,omitempty"`
	SNIName      string `json:"sni_name,omitempty"`
	TLSCompliant bool   `json:"tls_compliant,omitempty"`
}

// URL is a url block.
type URL struct {
	Path string `json:"path"`
	// Digest is the MD5 of the body in hex (genhash), if checked.
	Digest string `json:"digest,omitempty"`
	// StatusCodes are the accepted status ranges as written; none when
	// the block has no status_code (internal/plan compiles that to
	// keepalived's default, 200-299).
	StatusCodes []StatusRange `json:"status_code"`
	// Virtualhost overrides the checker's.
	Virtualhost string `json:"virtualhost,omitempty"`
	// Regex is the pattern the body must match (must not, with
	// RegexNoMatch), as written: keepalived's PCRE2 syntax, of which GVS
	// runs the RE2 subset (GoRegex gives the Go pattern).
	Regex        string `json:"regex,omitempty"`
	RegexNoMatch bool   `json:"regex_no_match,omitempty"`
	// RegexOptions are the regex_options words, each one of
	// SupportedRegexOptions.
	RegexOptions []string `json:"regex_options,omitempty"`
	// RegexMinOffset and RegexMaxOffset bound where a match may start in
	// the body (RegexMaxOffset -1: anywhere after RegexMinOffset).
	RegexMinOffset int `json:"regex_min_offset,omitempty"`
	RegexMaxOffset int `json:"regex_max_offset,omitempty"`
}

// regexFlags maps the regex_options GVS runs to RE2 flags; "" marks an
// option with nothing to do in RE2 (optimisation switches, UTF modes:
// Go's regexp always matches UTF-8 and needs no JIT).
var regexFlags = map[string]string{
	"caseless": "i", "dotall": "s", "multiline": "m", "ungreedy": "U",
	"utf": "", "ucp": "", "never_utf": "", "never_ucp": "", "no_auto_capture": "",
	"no_auto_possess": "", "no_dotstar_anchor": "", "no_start_optimize": "",
	"never_backslash_c": "", "dollar_endonly": "", "use_offset_limit": "",
}

// SupportedRegexOptions lists the regex_options GVS accepts, sorted.
func SupportedRegexOptions() []string {
	out := make([]string, 0, len(regexFlags))
	for k := range regexFlags {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// GoRegex is the url's regex in Go's regexp syntax, its options turned
// into flags; "" when the url has no regex.
func (u *URL) GoRegex() string {
	if u.Regex == "" {
		return ""
	}
	var flags string
	for _, o := range u.RegexOptions {
		if f := regexFlags[o]; !strings.Contains(flags, f) {
			flags += f
		}
	}
	if flags == "" {
		return u.Regex
	}
	return "(?" + flags + ")" + u.Regex
}

// StatusRange is an inclusive range of HTTP status codes.
type StatusRange struct {
	Min int `json:"min"`
	Max int `json:"max"`
}

// MiscCheckConf is the MISC_CHECK part of a checker.
type MiscCheckConf struct {
	// Path is the command line and the user to run it as.
	Path *Script `json:"misc_path"`
	// Timeout defaults to the checker's DelayLoop.
	Timeout time.Duration `json:"misc_timeout"`
	// Dynamic makes exit codes 2-255 set the weight (code - 2).
	Dynamic bool `json:"misc_dynamic,omitempty"`
}

// DNSCheckConf is the DNS_CHECK part of a checker.
type DNSCheckConf struct {
	// Type is the query type: A, NS, CNAME, SOA (default), MX, TXT, AAAA.
	Type string `json:"type"`
	// Name is the queried name (default ".").
	Name string `json:"name"`
}

// SMTPCheckConf is the SMTP_CHECK part of a checker.
type SMTPCheckConf struct {
	// HeloName defaults to "smtpchecker.keepalived.org", as keepalived.
	HeloName string `json:"helo_name"`
	// Hosts are the deprecated host { } sub-blocks, each one more
	// endpoint checked.
	Hosts []SMTPHost `json:"hosts,omitempty"`
}

// SMTPHost is a deprecated SMTP_CHECK host block.
type SMTPHost struct {
	ConnectIP   netip.Addr `json:"connect_ip,omitzero"`
	ConnectPort uint16     `json:"connect_port,omitempty"`
	BindTo      netip.Addr `json:"bindto,omitzero"`
	BindPort    uint16     `json:"bind_port,omitempty"`
}

// UDPCheckConf is the UDP_CHECK part of a checker.
type UDPCheckConf struct {
	// Payload is sent; empty means a random payload.
	Payload []byte `json:"payload,omitempty"`
	// RequireReply requires an answer; when Reply is set, its bytes
	// must match the answer where ReplyMask has bits set (X nibbles in
	// the configuration are wildcards).
	RequireReply bool   `json:"require_reply,omitempty"`
	Reply        []byte `json:"reply,omitempty"`
	ReplyMask    []byte `json:"reply_mask,omitempty"`
	// MinReplyLength (default 0) and MaxReplyLength (default 255) bound
	// the answer's length.
	MinReplyLength int `json:"min_reply_length"`
	MaxReplyLength int `json:"max_reply_length"`
}

// DefaultSMTPHeloName is keepalived's SMTP_CHECK HELO name.
const DefaultSMTPHeloName = "smtpchecker.keepalived.org"

func checkerConn() table[Checker] {
	return table[Checker]{
		"connect_ip": {min: 1, max: 1, fn: func(d *decoder, n *node, c *Checker) { c.ConnectIP, _ = d.addr(n, 1, "connect_ip") }},
		"connect_port": {min: 1, max: 1, fn: func(d *decoder, n *node, c *Checker) {
			c.ConnectPort, _ = d.port(n, 1, "connect_port")
		}},
		"bindto":    {min: 1, max: 1, fn: func(d *decoder, n *node, c *Checker) { c.BindTo, _ = d.addr(n, 1, "bindto") }},
		"bind_if":   {min: 1, max: 1, fn: func(d *decoder, n *node, c *Checker) { c.BindIf = n.args[1] }},
		"bind_port": {min: 1, max: 1, fn: func(d *decoder, n *node, c *Checker) { c.BindPort, _ = d.port(n, 1, "bind_port") }},
		"fwmark": {min: 1, max: 1, fn: func(d *decoder, n *node, c *Checker) {
			if v, ok := d.uint(n, 1, 0, 1<<32-1); ok {
				c.FWMark = uint32(v)
			}
		}},
	}
}

var checkerTables = map[CheckerType]table[Checker]{}

func init() {
	base := merge(commonTable(func(c *Checker) *common { return &c.common }), table[Checker]{
		"log_all_failures": {max: 1, fn: func(d *decoder, n *node, c *Checker) {
			if v, ok := d.boolArg(n, 1); ok {
				c.logAllFailures = &v
			}
		}},
	})
	delete(base, "inhibit_on_failure")
	withConn := merge(base, checkerConn())
	checkerTables[FileCheck] = fileCheckTable
	checkerTables[TCPCheck] = withConn
	checkerTables[PingCheck] = withConn
	http := merge(withConn, table[Checker]{
		"http_protocol": {min: 1, max: 1, fn: func(d *decoder, n *node, c *Checker) {
			if p, ok := d.oneOf(n, 1, "http_protocol", "1.0", "1.0C", "1.1"); ok {
				c.HTTP.Protocol = p
			}
		}},
		"virtualhost":   {min: 1, max: 1, fn: func(d *decoder, n *node, c *Checker) { c.HTTP.Virtualhost = n.args[1] }},
		"fast_recovery": {max: 1, fn: func(d *decoder, n *node, c *Checker) { c.HTTP.FastRecovery, _ = d.boolArg(n, 1) }},
		"enable_sni":    {max: 1, fn: func(d *decoder, n *node, c *Checker) { c.HTTP.EnableSNI, _ = d.boolArg(n, 1) }},
		"sni_name":      {min: 1, max: 1, fn: func(d *decoder, n *node, c *Checker) { c.HTTP.SNIName = n.args[1] }},
		"tls_compliant": {max: 1, fn: func(d *decoder, n *node, c *Checker) { c.HTTP.TLSCompliant, _ = d.boolArg(n, 1) }},
		"url":           {block: true, fn: (*decoder).url},
	})
	checkerTables[HTTPGet] = http
	checkerTables[SSLGet] = http
	checkerTables[MiscCheck] = merge(base, table[Checker]{
		"misc_path": {min: 1, max: 3, fn: func(d *decoder, n *node, c *Checker) {
			user, group := c.Misc.Path.User, c.Misc.Path.Group
			c.Misc.Path = d.script(n, 1)
			if c.Misc.Path.User == "" {
				c.Misc.Path.User, c.Misc.Path.Group = user, group
			}
		}},
		"misc_timeout": {min: 1, max: 1, fn: func(d *decoder, n *node, c *Checker) {
			if v, ok := d.uint(n, 1, 1, 1<<31-1); ok {
				c.Misc.Timeout = time.Duration(v) * time.Second
			}
		}},
		"misc_dynamic": {max: 1, fn: func(d *decoder, n *node, c *Checker) { c.Misc.Dynamic, _ = d.boolArg(n, 1) }},
		"user": {min: 1, max: 2, fn: func(d *decoder, n *node, c *Checker) {
			c.Misc.Path.User = n.args[1]
			if len(n.args) > 2 {
				c.Misc.Path.Group = strings.TrimPrefix(n.args[2], ":")
			}
		}},
	})
	checkerTables[DNSCheck] = merge(withConn, table[Checker]{
		"type": {min: 1, max: 1, fn: func(d *decoder, n *node, c *Checker) {
			if t, ok := d.oneOf(n, 1, "DNS_CHECK type", "A", "NS", "CNAME", "SOA", "MX", "TXT", "AAAA"); ok {
				c.DNS.Type = t
			}
		}},
		"name": {min: 1, max: 1, fn: func(d *decoder, n *node, c *Checker) { c.DNS.Name = n.args[1] }},
	})
	checkerTables[SMTPCheck] = merge(withConn, table[Checker]{
		"helo_name": {min: 1, max: 1, fn: func(d *decoder, n *node, c *Checker) { c.SMTP.HeloName = n.args[1] }},
		"host": {block: true, fn: func(d *decoder, n *node, c *Checker) {
			d.warnf(n, "SMTP_CHECK host blocks are deprecated: use one SMTP_CHECK per host")
			h := Checker{}
			run(d, "SMTP_CHECK host", n.children, checkerConn(), nil, &h)
			c.SMTP.Hosts = append(c.SMTP.Hosts, SMTPHost{ConnectIP: h.ConnectIP, ConnectPort: h.ConnectPort, BindTo: h.BindTo, BindPort: h.BindPort})
		}},
	})
	checkerTables[UDPCheck] = merge(withConn, table[Checker]{
		"payload": {min: 1, max: -1, fn: func(d *decoder, n *node, c *Checker) {
			c.UDP.Payload, _ = d.hex(n, false)
		}},
		"require_reply": {max: -1, fn: func(d *decoder, n *node, c *Checker) {
			c.UDP.RequireReply = true
			if len(n.args) > 1 {
				c.UDP.Reply, c.UDP.ReplyMask = d.hex(n, true)
			}
		}},
		"min_reply_length": {min: 1, max: 1, fn: func(d *decoder, n *node, c *Checker) {
			if v, ok := d.int(n, 1, 0, 65535); ok {
				c.UDP.MinReplyLength = int(v)
			}
		}},
		"max_reply_length": {min: 1, max: 1, fn: func(d *decoder, n *node, c *Checker) {
			if v, ok := d.int(n, 1, 0, 65535); ok {
				c.UDP.MaxReplyLength = int(v)
			}
		}},
	})
}

// hex reads keepalived's free-form hex strings: each word is read two
// digits at a time, a lone last digit making a byte of its own ("Ab12f 3"
// is AB 12 0F 03). With wild, x or X is a wildcard nibble, cleared in the
// returned mask.
func (d *decoder) hex(n *node, wild bool) ([]byte, []byte) {
	var data, mask []byte
	nibble := func(c byte) (byte, byte, bool) {
		switch {
		case c >= '0' && c <= '9':
			return c - '0', 0xf, true
		case c >= 'a' && c <= 'f':
			return c - 'a' + 10, 0xf, true
		case c >= 'A' && c <= 'F':
			return c - 'A' + 10, 0xf, true
		case wild && (c == 'x' || c == 'X'):
			return 0, 0, true
		}
		return 0, 0, false
	}
	for _, w := range n.args[1:] {
		for i := 0; i < len(w); i += 2 {
			hi, hm, ok := nibble(w[i])
			if !ok {
				d.errorf(n, "%s: %q is not a hex digit in %q", n.kw(), w[i:i+1], w)
				return nil, nil
			}
			if i+1 == len(w) {
				data, mask = append(data, hi), append(mask, hm)
				break
			}
			lo, lm, ok := nibble(w[i+1])
			if !ok {
				d.errorf(n, "%s: %q is not a hex digit in %q", n.kw(), w[i+1:i+2], w)
				return nil, nil
			}
			data, mask = append(data, hi<<4|lo), append(mask, hm<<4|lm)
		}
	}
	return data, mask
}

func (d *decoder) url(n *node, c *Checker) {
	u := URL{}
	var regexAt *node
	maxSet := false
	run(d, "url", n.children, table[URL]{
		"path": {min: 1, max: 1, fn: func(d *decoder, n *node, u *URL) { u.Path = n.args[1] }},
		"digest": {min: 1, max: 1, fn: func(d *decoder, n *node, u *URL) {
			s := strings.ToLower(n.args[1])
			if len(s) != 32 || strings.Trim(s, "0123456789abcdef") != "" {
				d.errorf(n, "digest %q is not an MD5 digest (32 hex digits, as genhash prints)", n.args[1])
				return
			}
			u.Digest = s
		}},
		"status_code": {min: 1, max: -1, fn: func(d *decoder, n *node, u *URL) {
			for _, w := range n.args[1:] {
				lo, hi, isRange := strings.Cut(w, "-")
				a, err1 := strconv.Atoi(lo)
				b, err2 := a, error(nil)
				if isRange {
					b, err2 = strconv.Atoi(hi)
				}
				if err1 != nil || err2 != nil || a < 100 || b > 599 || a > b {
					d.errorf(n, "invalid HTTP status code %q (want codes or ranges like 200-299 between 100 and 599)", w)
					continue
				}
				u.StatusCodes = append(u.StatusCodes, StatusRange{Min: a, Max: b})
			}
		}},
		"virtualhost":    {min: 1, max: 1, fn: func(d *decoder, n *node, u *URL) { u.Virtualhost = n.args[1] }},
		"regex":          {min: 1, max: 1, fn: func(d *decoder, n *node, u *URL) { u.Regex, regexAt = n.args[1], n }},
		"regex_no_match": {fn: func(d *decoder, n *node, u *URL) { u.RegexNoMatch = true }},
		"regex_options": {min: 1, max: -1, fn: func(d *decoder, n *node, u *URL) {
			for _, o := range n.args[1:] {
				if _, ok := regexFlags[o]; !ok {
					d.errorf(n, "regex_options: %q is a PCRE2 option GVS cannot honour with RE2 (want %s)", o, strings.Join(SupportedRegexOptions(), ", "))
					continue
				}
				u.RegexOptions = append(u.RegexOptions, o)
			}
		}},
		// regex_stack sizes PCRE2's JIT stack: RE2 has none to size.
		"regex_stack": {min: 1, max: 2, fn: func(d *decoder, n *node, u *URL) {}},
		"regex_min_offset": {min: 1, max: 1, fn: func(d *decoder, n *node, u *URL) {
			if v, ok := d.int(n, 1, 0, 1<<31-1); ok {
				u.RegexMinOffset = int(v)
			}
		}},
		"regex_max_offset": {min: 1, max: 1, fn: func(d *decoder, n *node, u *URL) {
			if v, ok := d.int(n, 1, 0, 1<<31-1); ok {
				u.RegexMaxOffset, maxSet = int(v), true
			}
		}},
	}, ignored{"tls_compliant": true}, &u)
	if u.Path == "" {
		d.errorf(n, "url has no path")
		return
	}
	if !maxSet {
		u.RegexMaxOffset = -1
	}
	if regexAt != nil {
		if _, err := regexp.Compile(u.GoRegex()); err != nil {
			d.errorf(regexAt, "regex `%s`: %s (GVS runs Go's RE2 syntax: no lookaround, backreferences, possessive quantifiers or recursion)", u.Regex, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
		}
	} else if len(u.RegexOptions) > 0 || maxSet || u.RegexMinOffset > 0 || u.RegexNoMatch {
		d.warnf(n, "url %s: regex_no_match, regex_options and regex offsets have no effect without a regex", u.Path)
	}
	if maxSet && u.RegexMaxOffset < u.RegexMinOffset {
		d.errorf(n, "url %s: regex_max_offset %d is below regex_min_offset %d", u.Path, u.RegexMaxOffset, u.RegexMinOffset)
	}
	c.HTTP.URLs = append(c.HTTP.URLs, u)
}

func (d *decoder) checker(n *node, rs *RealServer) {
	t := checkerTypes[n.kw()]
	c := Checker{Pos: n.pos, Type: t}
	switch t {
	case HTTPGet, SSLGet:
		c.HTTP = &HTTPCheckConf{Protocol: "1.0"}
	case MiscCheck:
		c.Misc = &MiscCheckConf{Path: &Script{}}
	case DNSCheck:
		c.DNS = &DNSCheckConf{Type: "SOA", Name: "."}
	case SMTPCheck:
		c.SMTP = &SMTPCheckConf{HeloName: DefaultSMTPHeloName}
	case UDPCheck:
		c.UDP = &UDPCheckConf{MaxReplyLength: 255}
	case FileCheck:
		c.File = &FileCheckConf{}
	}
	run(d, string(t), n.children, checkerTables[t], nil, &c)
	switch t {
	case HTTPGet, SSLGet:
		if len(c.HTTP.URLs) == 0 {
			d.errorf(n, "%s has no url { path ... } to check", t)
			return
		}
	case MiscCheck:
		if c.Misc.Path.Cmd == "" {
			d.errorf(n, "MISC_CHECK has no misc_path")
			return
		}
	case FileCheck:
		if c.File.TrackFile == "" {
			d.errorf(n, "FILE_CHECK has no track_file")
			return
		}
	case UDPCheck:
		if c.UDP.MinReplyLength > c.UDP.MaxReplyLength {
			d.errorf(n, "UDP_CHECK min_reply_length %d is above max_reply_length %d", c.UDP.MinReplyLength, c.UDP.MaxReplyLength)
		}
	}
	rs.Checkers = append(rs.Checkers, c)
}

// resolveChecker fills a checker's timers and target from its real and
// virtual server and keepalived's per-type defaults.
func (d *decoder) resolveChecker(vs *VirtualServer, rs *RealServer, c *Checker) {
	pick := func(get func(*common) *time.Duration, def time.Duration) time.Duration {
		for _, cm := range []*common{&c.common, &rs.common, &vs.common} {
			if v := get(cm); v != nil {
				return *v
			}
		}
		return def
	}
	if c.Type == FileCheck {
		// the file is read when inotify says it changed, and its state
		// is known at once: no timers, retries or alpha
		return
	}
	c.DelayLoop = pick(func(cm *common) *time.Duration { return cm.delayLoop }, DefaultDelayLoop)
	c.ConnectTimeout = pick(func(cm *common) *time.Duration { return cm.connectTimeout }, DefaultConnectTimeout)
	c.Warmup = pick(func(cm *common) *time.Duration { return cm.warmup }, c.DelayLoop)
	dbr := time.Second
	retry := 1
	switch c.Type {
	case HTTPGet, SSLGet:
		dbr = 3 * time.Second
	case DNSCheck:
		dbr, retry = c.DelayLoop, 3
	case MiscCheck:
		retry = 0
	}
	c.DelayBeforeRetry = pick(func(cm *common) *time.Duration { return cm.delayBeforeRetry }, dbr)
	c.Retry = retry
	for _, cm := range []*common{&c.common, &rs.common, &vs.common} {
		if cm.retry != nil {
			c.Retry = *cm.retry
			break
		}
	}
	c.Alpha = deref(c.common.alpha, rs.Alpha)
	c.LogAllFailures = deref(c.logAllFailures, false)
	if c.Type == MiscCheck {
		if c.Misc.Timeout == 0 {
			c.Misc.Timeout = c.DelayLoop
		}
		return
	}
	if !c.ConnectIP.IsValid() {
		c.ConnectIP = rs.Addr
	}
	if c.ConnectPort == 0 {
		c.ConnectPort = rs.Port
		if c.ConnectPort == 0 && vs.FWMark == 0 && vs.Group == "" {
			c.ConnectPort = vs.Port
		}
		switch {
		case c.ConnectPort != 0:
		case c.Type == SMTPCheck:
			c.ConnectPort = 25
		case c.Type == DNSCheck:
			c.ConnectPort = 53
		}
	}
	if c.HTTP != nil && c.HTTP.Virtualhost == "" {
		c.HTTP.Virtualhost = rs.Virtualhost
	}
	if c.ConnectPort == 0 && (c.Type == TCPCheck || c.Type == HTTPGet || c.Type == SSLGet || c.Type == UDPCheck) {
		d.lx.errorf(c.Pos, "%s of real_server %s has no port to connect to (set connect_port)", c.Type, rs.Addr)
	}
}
