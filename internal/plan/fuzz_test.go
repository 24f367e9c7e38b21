package plan

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/config"
)

// FuzzCompile compiles whatever the parser accepts: Compile must never
// panic, and every error and warning must carry a file:line.
func FuzzCompile(f *testing.F) {
	for _, pat := range []string{"testdata/*.conf", "../config/testdata/*.conf", "../config/testdata/good/*.conf"} {
		files, _ := filepath.Glob(pat)
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("global_defs { lvs_sync_daemon eth0 VI_1 id }\nvrrp_instance VI_1 { virtual_router_id 1\n unicast_peer { 198.18.0.2 } }\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := config.Options{
			ConfigID: "lb1",
			ReadFile: func(string) ([]byte, error) { return data, nil },
			Glob:     func(string) ([]string, error) { return []string{"fuzz.conf"}, nil },
		}
		cfg, _, err := config.Parse("fuzz.conf", data, opts)
		if err != nil {
			return
		}
		p, warns, err := Compile(cfg)
		for _, w := range warns {
			if w.File != "fuzz.conf" || w.Line == 0 {
				t.Fatalf("warning %q has no file:line", w)
			}
		}
		if err == nil {
			if p == nil {
				t.Fatal("no plan and no error")
			}
			return
		}
		var ce *config.Error
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
