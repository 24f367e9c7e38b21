package ipvsadm

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRealServerRunsItsProgram: `gvsadm realserver ARGS` runs
// gvs-realserver ARGS from $PATH (when it is not beside gvsadm) with
// gvsadm's streams and passes its exit status on; without it, gvsadm says
// what is missing.
func TestRealServerRunsItsProgram(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("PATH", dir)
	var out, errOut bytes.Buffer
	code := Run(t.Context(), []string{"gvsadm", "realserver", "setup", "--vip", "198.18.0.100"}, strings.NewReader(""), &out, &errOut, nil)
	if code != ExitFailure || !strings.Contains(errOut.String(), "gvsadm realserver: gvs-realserver is neither beside gvsadm nor in $PATH") {
		t.Errorf("without gvs-realserver: exit %d, stderr %q", code, errOut.String())
	}

	script := "#!/bin/sh\necho \"$0|$*\"\necho oops >&2\nexit 3\n"
	if err := os.WriteFile(filepath.Join(dir, RealServerProgram), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	code = Run(t.Context(), []string{"gvsadm", "realserver", "setup", "--vip", "198.18.0.100"}, strings.NewReader(""), &out, &errOut, nil)
	if code != 3 || !strings.HasSuffix(out.String(), "|setup --vip 198.18.0.100\n") || errOut.String() != "oops\n" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 3, the arguments, oops", code, out.String(), errOut.String())
	}
}
