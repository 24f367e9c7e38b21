package ipvsadm

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// RealServerProgram does `gvsadm realserver`: the real server's side needs
// netlink and a BPF loader, which gvsadm does not link.
const RealServerProgram = "gvs-realserver"

// RunRealServer is `gvsadm realserver setup|teardown`: it runs
// RealServerProgram, found beside gvsadm's own executable or else in
// $PATH, with args and gvsadm's standard streams, and returns its exit
// status.
func RunRealServer(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	path, err := findRealServerProgram()
	if err != nil {
		fmt.Fprintf(stderr, "gvsadm realserver: %v\n", err)
		return ExitFailure
	}
	cmd := exec.Command(path, args...)
	cmd.Args[0] = "gvsadm realserver" // what its messages name
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &exit) && exit.ExitCode() >= 0:
		return exit.ExitCode()
	}
	fmt.Fprintf(stderr, "gvsadm realserver: running %s: %v\n", path, err)
	return ExitFailure
}

func findRealServerProgram() (string, error) {
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), RealServerProgram)
		if _, err := os.Stat(beside); err == nil {
			return beside, nil
		}
	}
	if path, err := exec.LookPath(RealServerProgram); err == nil {
		return path, nil
	}
	return "", fmt.Errorf("%s is neither beside gvsadm nor in $PATH: install it with gvsadm (go build -o bin/ ./cmd/... builds both)", RealServerProgram)
}
