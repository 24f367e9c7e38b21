package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds the parser arbitrary text: it must never panic, and
// every error must carry a file:line.
func FuzzParse(f *testing.F) {
	for _, pat := range []string{"testdata/*.conf", "testdata/good/*.conf", "testdata/bad/*.conf", "testdata/good/inc/*.inc"} {
		files, _ := filepath.Glob(pat)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("virtual_server_group G {\n 2001:db8::1-ffff 80\n 198.18.0.0/16 1\n}\n"))
	f.Add([]byte("$A=${A}${A}\n$A\n{\n}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// Includes may only see this one file, so the fuzzer cannot read
		// the disk.
		opts := Options{
			ConfigID: "lb1",
			ReadFile: func(string) ([]byte, error) { return data, nil },
			Glob:     func(p string) ([]string, error) { return []string{"fuzz.conf"}, nil },
		}
		c, _, err := Parse("fuzz.conf", data, opts)
		if err == nil {
			if c == nil {
				t.Fatal("no config and no error")
			}
			c.Services()
			return
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("error %v (%T) is not a *config.Error", err, err)
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(line, "fuzz.conf:") {
				t.Fatalf("error line %q has no file:line", line)
			}
		}
	})
}
