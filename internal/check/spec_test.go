package check

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// TestStatusCodesMatch: the ranges are taken as they are, inclusive;
// no ranges accept nothing (keepalived's 2xx default is internal/plan's).
func TestStatusCodesMatch(t *testing.T) {
	tests := []struct {
		name    string
		codes   StatusCodes
		match   []int
		nomatch []int
	}{
		{name: "none accepts nothing", nomatch: []int{200, 204, 299, 404}},
		{name: "one code", codes: StatusCodes{{200, 200}}, match: []int{200}, nomatch: []int{201}},
		{name: "range and codes", codes: StatusCodes{{200, 299}, {301, 301}, {302, 302}}, match: []int{200, 250, 299, 301, 302}, nomatch: []int{199, 303, 404}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, c := range tt.match {
				if !tt.codes.Match(c) {
					t.Errorf("%d not matched", c)
				}
			}
			for _, c := range tt.nomatch {
				if tt.codes.Match(c) {
					t.Errorf("%d matched", c)
				}
			}
		})
	}
}

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		name string
		line string
		want []string
	}{
		{name: "words", line: "/bin/check  -p 80", want: []string{"/bin/check", "-p", "80"}},
		{name: "double quotes", line: `sh -c "exit 3"`, want: []string{"sh", "-c", "exit 3"}},
		{name: "single quotes", line: `sh -c 'echo "x y"'`, want: []string{"sh", "-c", `echo "x y"`}},
		{name: "empty quoted word", line: `a "" b`, want: []string{"a", "", "b"}},
		{name: "blank", line: "  ", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := splitCommand(tt.line); !slices.Equal(got, tt.want) {
				t.Errorf("%q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Spec)
		typ     Type
		wantErr string
	}{
		{name: "tcp defaults", typ: TCP},
		{name: "unknown type", typ: "FOO_CHECK", wantErr: `unknown checker "FOO_CHECK"`},
		{name: "http without url", typ: HTTP, wantErr: "no url block"},
		{name: "url without status codes", typ: HTTP, edit: func(s *Spec) { s.URLs = []URL{{Path: "/"}} }, wantErr: "url /: no status codes to accept"},
		{name: "bad protocol", typ: HTTP, edit: func(s *Spec) { s.URLs = []URL{{Path: "/", Status: ok2xx}}; s.HTTPProtocol = "2" }, wantErr: `unknown http_protocol "2"`},
		{name: "bad digest", typ: SSL, edit: func(s *Spec) { s.URLs = []URL{{Path: "/", Status: ok2xx, Digest: "abc"}} }, wantErr: "not a hex MD5 sum"},
		{name: "misc without path", typ: MISC, wantErr: "no misc_path"},
		{name: "dns bad type", typ: DNS, edit: func(s *Spec) { s.DNSType = "WKS" }, wantErr: `unknown type "WKS"`},
		{name: "zero delay_loop", typ: TCP, edit: func(s *Spec) { s.DelayLoop = 0 }, wantErr: "delay_loop must be positive"},
		{name: "negative retry", typ: TCP, edit: func(s *Spec) { s.Retry = -1 }, wantErr: "must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := defaultSpec(tt.typ)
			if tt.edit != nil {
				tt.edit(&s)
			}
			err := s.Validate()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	tests := []struct {
		name  string
		typ   Type
		retry int
		dbr   time.Duration
	}{
		{name: "tcp", typ: TCP, retry: 1, dbr: time.Second},
		{name: "http", typ: HTTP, retry: 1, dbr: 3 * time.Second},
		{name: "ssl", typ: SSL, retry: 1, dbr: 3 * time.Second},
		{name: "dns", typ: DNS, retry: 3, dbr: 60 * time.Second},
		{name: "misc", typ: MISC, retry: 0, dbr: time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := defaultSpec(tt.typ)
			if s.Retry != tt.retry || s.DelayBeforeRetry != tt.dbr || s.ConnectTimeout != 5*time.Second ||
				s.DelayLoop != time.Minute || s.Warmup != time.Minute {
				t.Errorf("%+v", s)
			}
		})
	}
}

func TestValidateRegex(t *testing.T) {
	tests := []struct {
		name    string
		regex   string
		wantErr string
	}{
		{name: "RE2", regex: `^HTTP OK \d+$`},
		{name: "lookahead", regex: `foo(?=bar)`, wantErr: "invalid or unsupported Perl syntax"},
		{name: "backreference", regex: `(a)\1`, wantErr: `invalid escape sequence`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := defaultSpec(HTTP)
			s.URLs = []URL{{Path: "/", Status: ok2xx, Regex: tt.regex}}
			err := s.Validate()
			if (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate: %v, want %q", err, tt.wantErr)
			}
		})
	}
}
