package main

import (
	"bytes"
	"flag"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func runGVSD(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestHelp: --help and -h print the usage on stdout and exit 0, and the
// usage documents every option gvsd accepts.
func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "-help"} {
		code, out, errOut := runGVSD(arg)
		if code != 0 || out != usage || errOut != "" {
			t.Errorf("gvsd %s: exit %d, stdout %d bytes, stderr %q; want 0, the usage, nothing", arg, code, len(out), errOut)
		}
	}
	var s settings
	s.flagSet().VisitAll(func(f *flag.Flag) {
		name := "--" + f.Name
		if len(f.Name) == 1 {
			name = "-" + f.Name
		}
		if !regexp.MustCompile(`(?m)^ +(-., )?` + regexp.QuoteMeta(name) + `\b`).MatchString(usage) {
			t.Errorf("the usage does not document %s", name)
		}
	})
	for _, want := range []string{"Usage: gvsd [OPTION]...", "Signals:", "Documentation: README.md"} {
		if !strings.Contains(usage, want) {
			t.Errorf("the usage lacks %q", want)
		}
	}
	for i, line := range strings.Split(usage, "\n") {
		if len(line) > 80 {
			t.Errorf("usage line %d is %d characters wide: %q", i+1, len(line), line)
		}
	}
}

// TestVersion: -v and --version print the version and exit 0.
func TestVersion(t *testing.T) {
	for _, arg := range []string{"-v", "--version"} {
		code, out, errOut := runGVSD(arg)
		if code != 0 || errOut != "" || !regexp.MustCompile(`^gvsd \S.*\nIPVS 1\.2\.1 table .*\nbuilt with go`).MatchString(out) {
			t.Errorf("gvsd %s: exit %d, stdout %q, stderr %q", arg, code, out, errOut)
		}
	}
}

// TestVersionFromLinker: a release build sets the version with -ldflags,
// and the binary reports it.
func TestVersionFromLinker(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gvsd; skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "gvsd")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=9.8.7-test", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(string(out), "\n"); first != "gvsd 9.8.7-test" {
		t.Errorf("gvsd --version says %q, want \"gvsd 9.8.7-test\"", first)
	}
}

// TestBadArguments: an unknown option or a stray argument is an error on
// stderr that points to --help, exit 2.
func TestBadArguments(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown option", []string{"--verbose"}, "gvsd: flag provided but not defined: -verbose\nTry 'gvsd --help' for more information.\n"},
		{"stray argument", []string{"-f", "a.conf", "b.conf"}, "gvsd: unexpected argument \"b.conf\"\nTry 'gvsd --help' for more information.\n"},
		{"missing value", []string{"--grace"}, "gvsd: flag needs an argument: -grace\nTry 'gvsd --help' for more information.\n"},
		{"connection table of 0", []string{"--xdp-max-conns", "0"}, "gvsd: invalid value \"0\" for flag -xdp-max-conns: the connection table needs at least 1 entry (default 262144)\nTry 'gvsd --help' for more information.\n"},
		{"connection table too big", []string{"--xdp-max-conns=134217729"}, "gvsd: invalid value \"134217729\" for flag -xdp-max-conns: a connection table of 134217729 entries is more than the kernel's hash maps hold (at most 134217728, which take 35 GiB of kernel memory)\nTry 'gvsd --help' for more information.\n"},
		{"connection table not a number", []string{"--xdp-max-conns", "-5"}, "gvsd: invalid value \"-5\" for flag -xdp-max-conns: want a number of connection entries from 1 to 134217728\nTry 'gvsd --help' for more information.\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runGVSD(tt.args...)
			if code != 2 || out != "" || errOut != tt.want {
				t.Errorf("exit %d, stdout %q, stderr %q; want 2, nothing, %q", code, out, errOut, tt.want)
			}
		})
	}
}
