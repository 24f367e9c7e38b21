// Command testreport reads `go test -json` on stdin and prints what a
// person reading CI's log needs: a line per package as `go test` prints it,
// the whole output of every failed test, and at the end every skipped test
// with the reason it gave, so that what did not run is never silent.
//
//	go test -json ./... | go run ./scripts/testreport
//
// It exits 1 when a test or package failed (or a build broke), so a
// pipeline with pipefail fails as `go test` would.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// event is one line of test2json's output.
type event struct {
	Action     string
	Package    string
	ImportPath string // build-output and build-fail name the package here
	Test       string
	Output     string
	Elapsed    float64
}

type key struct{ pkg, test string }

type report struct {
	out     io.Writer
	output  map[key][]string // output so far of tests (and packages) still running
	skipped []string
	failed  bool
}

func main() {
	r := &report{out: os.Stdout, output: map[key][]string{}}
	if err := r.read(os.Stdin); err != nil {
		fmt.Fprintf(os.Stderr, "testreport: %v\n", err)
		os.Exit(2)
	}
	r.summary()
	if r.failed {
		os.Exit(1)
	}
}

func (r *report) read(in io.Reader) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var e event
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &e) != nil {
			// go vet, build errors and anything else not in JSON
			fmt.Fprintln(r.out, string(line))
			continue
		}
		r.add(e)
	}
	return sc.Err()
}

func (r *report) add(e event) {
	if e.Package == "" {
		e.Package = e.ImportPath
	}
	k := key{e.Package, e.Test}
	switch e.Action {
	case "output", "build-output":
		r.output[k] = append(r.output[k], e.Output)
	case "build-fail":
		r.failed = true
		fmt.Fprint(r.out, strings.Join(r.output[k], ""))
		delete(r.output, k)
	case "skip":
		if e.Test != "" {
			r.skipped = append(r.skipped, fmt.Sprintf("%s %s: %s", e.Package, e.Test, reason(r.output[k])))
		}
		delete(r.output, k)
	case "fail":
		r.failed = true
		out := strings.Join(r.output[k], "")
		fmt.Fprint(r.out, out)
		// A package's own output ends with go test's FAIL line, unless it
		// died first (a panic, a timeout).
		if e.Test == "" && !strings.Contains(out, "FAIL\t"+e.Package) {
			fmt.Fprintf(r.out, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
		}
		delete(r.output, k)
	case "pass":
		if e.Test == "" {
			if out := strings.Join(r.output[k], ""); strings.Contains(out, "no test files") {
				fmt.Fprintf(r.out, "?   \t%s\t[no test files]\n", e.Package)
			} else {
				fmt.Fprintf(r.out, "ok  \t%s\t%s\n", e.Package, time.Duration(e.Elapsed*float64(time.Second)).Round(time.Millisecond))
			}
		}
		delete(r.output, k)
	}
}

// reason is the skip message among a skipped test's output lines: the
// lines after its "=== RUN" and before its "--- SKIP", trimmed.
func reason(lines []string) string {
	var rs []string
	for _, l := range lines {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		rs = append(rs, t)
	}
	if len(rs) == 0 {
		return "(no reason given)"
	}
	return strings.Join(rs, " / ")
}

func (r *report) summary() {
	if len(r.skipped) == 0 {
		return
	}
	fmt.Fprintf(r.out, "\nSkipped (%d):\n", len(r.skipped))
	for _, s := range r.skipped {
		fmt.Fprintf(r.out, "  %s\n", s)
	}
}
