package ipvsadm

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// TestListOneService: `-L -n -t/-u/-f` asks gvsd for the one service
// (GET /v1/services?service=KEY) and prints what picking it out of the
// whole table printed, whichever way the line names it; a service that is
// not there, also one that differs only in protocol, port or family, is
// ipvsadm's "No such service" with exit 1 and nothing on stdout.
func TestListOneService(t *testing.T) {
	c := startServer(t)
	run := func(args string) (int, string, string) {
		var out, errb bytes.Buffer
		rc := Run(context.Background(), append([]string{"ipvsadm"}, strings.Fields(args)...), nil, &out, &errb, c)
		return rc, out.String(), errb.String()
	}
	for _, line := range []string{
		"-A -t 198.18.0.41:80 -s rr",
		"-a -t 198.18.0.41:80 -r 198.18.1.10:8080 -m -w 3",
		"-A -u [2001:db8::10]:53 -s wlc",
		"-A -f 1 -s rr",
		"-A -f 2 -6 -s sh",
		"-A -t 198.18.0.42:0 -p 60",
	} {
		if rc, _, errs := run(line); rc != ExitOK {
			t.Fatalf("%s: exit %d: %s", line, rc, errs)
		}
	}
	all, err := c.Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := func(k ipvs.ServiceKey, f Format) string {
		for _, s := range all {
			if s.ServiceKey == k {
				var b bytes.Buffer
				WriteService(&b, s, f)
				return b.String()
			}
		}
		t.Fatalf("%s is not in the table", k)
		return ""
	}
	for _, tt := range []struct {
		args string
		key  string
		f    Format
	}{
		{"-L -n -t 198.18.0.41:80", "TCP 198.18.0.41:80", FmtNumeric},
		{"-Ln -t [::ffff:198.18.0.41]:80", "TCP 198.18.0.41:80", FmtNumeric},
		{"-L -n -t 198.18.0.41:80 --stats --exact", "TCP 198.18.0.41:80", FmtNumeric | FmtStats | FmtExact},
		{"-Ln -u [2001:db8::10]:53 --rate", "UDP [2001:db8::10]:53", FmtNumeric | FmtRate},
		{"-Ln -f 1", "FWM 1", FmtNumeric},
		{"-Ln -f 2 -6", "FWM 2 IPv6", FmtNumeric},
		{"-Ln -t 198.18.0.42:0", "TCP 198.18.0.42:0", FmtNumeric},
	} {
		k, err := ipvs.ParseServiceKey(tt.key)
		if err != nil {
			t.Fatal(err)
		}
		rc, out, errs := run(tt.args)
		if w := want(k, tt.f); rc != ExitOK || out != w || errs != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 0 and %q", tt.args, rc, out, errs, w)
		}
	}
	for _, args := range []string{
		"-Ln -u 198.18.0.41:80",
		"-Ln -t 198.18.0.41:81",
		"-Ln -t 198.18.0.99:80",
		"-L -n -t [2001:db8::10]:53",
		"-Ln -f 1 -6",
		"-Ln -f 2",
		"-Ln -f 3 --stats",
	} {
		if rc, out, errs := run(args); rc != ExitFailure || out != "" || errs != "No such service\n" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want 1, nothing, \"No such service\\n\"", args, rc, out, errs)
		}
	}
}
