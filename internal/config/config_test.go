package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// loadTestdata loads a file with config id "lb1", names relative to
// testdata/ in messages.
func loadTestdata(t *testing.T, path string) (*Config, []Warning, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Parse(path, data, Options{ConfigID: "lb1"})
}

// dump renders what a user cares about: the warnings and the IPVS table
// the configuration asks for, in ipvsadm -S style.
func dump(c *Config, warns []Warning) string {
	var b strings.Builder
	for _, w := range warns {
		fmt.Fprintf(&b, "warning: %s", w)
		if w.KeepalivedError {
			b.WriteString(" [keepalived -t: error]")
		}
		b.WriteString("\n")
	}
	svcs, to, err := c.Services()
	if err != nil {
		fmt.Fprintf(&b, "services error: %v\n", err)
		return b.String()
	}
	for _, s := range svcs {
		b.WriteString(serviceLine(&s.Service) + "\n")
		for _, d := range s.Dests {
			fmt.Fprintf(&b, "  -a -r %s %s -w %d", d.AddrPort(), d.Method.Flag(), d.Weight)
			if d.UThreshold != 0 || d.LThreshold != 0 {
				fmt.Fprintf(&b, " -x %d -y %d", d.UThreshold, d.LThreshold)
			}
			if d.Method == ipvs.Tunnel {
				fmt.Fprintf(&b, " --tun-type %s", d.TunType)
				if d.TunPort != 0 {
					fmt.Fprintf(&b, " --tun-port %d --tun-flags %d", d.TunPort, d.TunFlags)
				}
			}
			b.WriteString("\n")
		}
	}
	fmt.Fprintf(&b, "timeouts: tcp %d tcpfin %d udp %d\n", to.TCP, to.TCPFin, to.UDP)
	return b.String()
}

func serviceLine(s *ipvs.Service) string {
	var b strings.Builder
	switch {
	case s.IsFWMark():
		fmt.Fprintf(&b, "-A -f %d", s.FWMark)
		if s.IPv6() {
			b.WriteString(" -6")
		}
	case s.Proto == ipvs.TCP:
		fmt.Fprintf(&b, "-A -t %s", s.AddrPort())
	case s.Proto == ipvs.UDP:
		fmt.Fprintf(&b, "-A -u %s", s.AddrPort())
	default:
		fmt.Fprintf(&b, "-A --sctp-service %s", s.AddrPort())
	}
	fmt.Fprintf(&b, " -s %s", s.Scheduler)
	if f := s.SchedFlagsString(); f != "" {
		fmt.Fprintf(&b, " -b %s", f)
	}
	if s.Flags&ipvs.FlagOnePacket != 0 {
		b.WriteString(" -o")
	}
	if s.Persistent() {
		fmt.Fprintf(&b, " -p %d", s.Timeout)
	}
	fmt.Fprintf(&b, " -M %d", s.Netmask)
	if s.PE != "" {
		fmt.Fprintf(&b, " --pe %s", s.PE)
	}
	if s.ProxyProtocol != 0 {
		fmt.Fprintf(&b, " proxy_protocol %d", s.ProxyProtocol)
	}
	if len(s.LocalAddrs) > 0 {
		fmt.Fprintf(&b, " laddrs %v", s.LocalAddrs)
	}
	return b.String()
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestSeeds loads the configurations of the seed articles as a user would
// have them after copy-paste, unchanged.
func TestSeeds(t *testing.T) {
	for _, name := range []string{"seed001", "seed004"} {
		t.Run(name, func(t *testing.T) {
			c, warns, err := loadTestdata(t, filepath.Join("testdata", name+".conf"))
			if err != nil {
				t.Fatalf("does not load: %v", err)
			}
			golden(t, filepath.Join("testdata", name+".golden"), dump(c, warns))
		})
	}
}

// TestGood loads every configuration of the compatibility suite and
// compares what it asks of IPVS with a golden file.
func TestGood(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.conf")
	if len(files) == 0 {
		t.Fatal("no testdata/good/*.conf")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, warns, err := loadTestdata(t, f)
			if err != nil {
				t.Fatalf("does not load: %v", err)
			}
			golden(t, strings.TrimSuffix(f, ".conf")+".golden", dump(c, warns))
		})
	}
}

// TestBad checks each broken configuration fails with the message its
// first line wants ("# want: file:line: message").
func TestBad(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.conf")
	if len(files) == 0 {
		t.Fatal("no testdata/bad/*.conf")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			first, _, _ := strings.Cut(string(data), "\n")
			want, ok := strings.CutPrefix(first, "# want: ")
			if !ok {
				t.Fatalf("first line %q is not # want: file:line: message", first)
			}
			// Name the file by its base name, as the want line does; its
			// includes stay relative to testdata/bad.
			_, _, err = Parse(filepath.Base(f), data, Options{ReadFile: os.ReadFile, Glob: func(p string) ([]string, error) {
				return filepath.Glob(filepath.Join("testdata/bad", p))
			}})
			if err == nil {
				t.Fatalf("loads; want error %q", want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error %v (%T) is not a *config.Error", err, err)
			}
			if got, _, _ := strings.Cut(err.Error(), "\n"); got != want {
				t.Errorf("error:\n got %s\nwant %s", got, want)
			}
			if TestExitCode(err) != ExitConfigTest {
				t.Errorf("TestExitCode = %d, want %d", TestExitCode(err), ExitConfigTest)
			}
		})
	}
}

// TestKeywordCoverage makes sure the good configurations together use
// every keyword the parser knows.
func TestKeywordCoverage(t *testing.T) {
	var all strings.Builder
	for _, pat := range []string{"testdata/good/*.conf", "testdata/good/inc/*.inc", "testdata/good/inc/rs/*.inc"} {
		files, _ := filepath.Glob(pat)
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			all.Write(data)
			all.WriteByte('\n')
		}
	}
	used := map[string]bool{}
	for _, ln := range strings.Split(all.String(), "\n") {
		toks, _ := tokenize(ln)
		for _, tk := range toks {
			used[tk.text] = true
		}
	}
	var known []string
	known = append(known, keys(topLevel)...)
	known = append(known, keys(globalTable)...)
	known = append(known, keys(instanceTable)...)
	known = append(known, keys(vsTable)...)
	known = append(known, keys(rsTable)...)
	for _, tab := range checkerTables {
		known = append(known, keys(tab)...)
	}
	known = append(known, "path", "digest", "status_code", "regex", "regex_no_match", "regex_options", "regex_stack", "regex_min_offset", "regex_max_offset", "auth_type", "auth_pass",
		"script", "interval", "timeout", "rise", "fall", "init_fail", "group", "include", "file", "init_file",
		"process", "param_match", "full_command", "quorum_max", "delay", "terminate_delay", "fork_delay")
	for _, k := range known {
		if !used[k] && k != "nat_mask" && k != "laddr_group" {
			t.Errorf("no good configuration uses %q", k)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, _, err := Load("testdata/no-such-file.conf")
	var fe *FileError
	if !errors.As(err, &fe) {
		t.Fatalf("Load of a missing file: %v, want a *FileError", err)
	}
	if got := TestExitCode(err); got != ExitConfig {
		t.Errorf("TestExitCode = %d, want ExitConfig (%d)", got, ExitConfig)
	}
	if got := TestExitCode(nil); got != ExitOK {
		t.Errorf("TestExitCode(nil) = %d, want 0", got)
	}
}

// TestExamples loads the starter configurations in examples/ without
// warnings.
func TestExamples(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.conf")
	if len(files) == 0 {
		t.Fatal("no examples/*.conf")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, warns, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(warns) > 0 {
				t.Errorf("warnings: %v", warns)
			}
			if _, _, err := c.Services(); err != nil {
				t.Error(err)
			}
		})
	}
}
