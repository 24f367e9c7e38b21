package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestReadmeQuickStart runs the README's quick start (the block that
// builds bin/ and ends with curl) as a shell script, as a newcomer pasting
// it would, with its paths and ports moved to the test's own: it must
// build, start the real servers and gvsd, list the table and get an answer
// from a real server.
func TestReadmeQuickStart(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI=true and %s is not installed (apt-get install %s)", tool, tool)
			}
			t.Skipf("%s is not installed (apt-get install %s)", tool, tool)
		}
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```sh\n(go build -o bin/ .*?curl [^\n]*\n)```").FindSubmatch(readme)
	if block == nil {
		t.Fatal("README.md has no quick-start block from `go build -o bin/` to `curl`")
	}
	script := string(block[1])
	dir := t.TempDir()
	repl := []string{"bin/", dir + "/bin/", "/tmp/gvs.sock", filepath.Join(dir, "gvs.sock")}
	for _, port := range []string{"8080", "9001", "9002"} {
		repl = append(repl, "127.0.0.1:"+port, "127.0.0.1:"+freePort(t))
	}
	script = strings.NewReplacer(repl...).Replace(script)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c",
		"set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n"+script)
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	t.Logf("the quick start, run:\n%s\noutput:\n%s", script, out)
	if err != nil {
		t.Fatalf("the README's quick start failed: %v", err)
	}
	for _, want := range []string{"Prot LocalAddress:Port Scheduler Flags", "  -> 127.0.0.1:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("gvsadm -Ln's output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`(?m)^RS[12]$`).Match(out) {
		t.Error("curl got no answer from RS1 or RS2")
	}
}
