package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestReport(t *testing.T) {
	in := strings.Join([]string{
		`{"Action":"start","Package":"p/a"}`,
		`{"Action":"run","Package":"p/a","Test":"TestOK"}`,
		`{"Action":"output","Package":"p/a","Test":"TestOK","Output":"=== RUN   TestOK\n"}`,
		`{"Action":"pass","Package":"p/a","Test":"TestOK","Elapsed":0}`,
		`{"Action":"output","Package":"p/a","Test":"TestBad","Output":"=== RUN   TestBad\n"}`,
		`{"Action":"output","Package":"p/a","Test":"TestBad","Output":"    a_test.go:9: got 1, want 2\n"}`,
		`{"Action":"fail","Package":"p/a","Test":"TestBad","Elapsed":0}`,
		`{"Action":"output","Package":"p/a","Test":"TestRoot","Output":"=== RUN   TestRoot\n"}`,
		`{"Action":"output","Package":"p/a","Test":"TestRoot","Output":"    a_test.go:20: needs root\n"}`,
		`{"Action":"output","Package":"p/a","Test":"TestRoot","Output":"--- SKIP: TestRoot (0.00s)\n"}`,
		`{"Action":"skip","Package":"p/a","Test":"TestRoot","Elapsed":0}`,
		`{"Action":"output","Package":"p/a","Output":"FAIL\tp/a\t1.500s\n"}`,
		`{"Action":"fail","Package":"p/a","Elapsed":1.5}`,
		`{"Action":"fail","Package":"p/d","Elapsed":2}`,
		`{"Action":"pass","Package":"p/b","Elapsed":0.25}`,
		`# p/c`,
		`vet: c.go:1: something`,
	}, "\n")
	var out bytes.Buffer
	r := &report{out: &out, output: map[key][]string{}}
	if err := r.read(strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	r.summary()
	want := `=== RUN   TestBad
    a_test.go:9: got 1, want 2
FAIL	p/a	1.500s
FAIL	p/d	2.000s
ok  	p/b	250ms
# p/c
vet: c.go:1: something

Skipped (1):
  p/a TestRoot: a_test.go:20: needs root
`
	if out.String() != want {
		t.Errorf("report:\n%s\nwant:\n%s", out.String(), want)
	}
	if !r.failed {
		t.Error("a failed test did not make the report fail")
	}
}
