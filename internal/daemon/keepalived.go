package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/gvs-lb/gvs/internal/api"
	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/director"
)

// keepalived runs what a keepalived.conf asks for: the virtual servers,
// their health checkers and the VRRP instances.
type keepalived struct {
	path string
	dir  *director.Director
	log  *slog.Logger
}

func startKeepalived(ctx context.Context, path string, dir *director.Director, log *slog.Logger) (*keepalived, error) {
	return &keepalived{path: path, dir: dir, log: log}, nil
}

func (k *keepalived) reload(ctx context.Context) {
	if k.path == "" {
		k.log.Info("SIGHUP ignored: no configuration file (-f)")
	}
}

func (k *keepalived) views() map[string]api.Extra { return nil }

func (k *keepalived) stop() {}

// ConfigTest checks a keepalived.conf as `keepalived -t` does and returns
// keepalived's exit code.
func ConfigTest(path string, out io.Writer) int {
	if path == "" {
		path = DefaultConfigFile
	}
	_, warnings, err := config.Load(path)
	strict := 0
	for _, w := range warnings {
		fmt.Fprintf(out, "%s: warning: %s\n", w.Pos, w.Msg)
		if w.KeepalivedError {
			strict++
		}
	}
	if err != nil {
		fmt.Fprintln(out, err)
		return config.TestExitCode(err)
	}
	if strict > 0 {
		// keepalived -t fails on these although keepalived runs with them.
		fmt.Fprintf(out, "%s: %d line(s) that keepalived's config test rejects (gvsd runs with them)\n", path, strict)
		return config.ExitConfigTest
	}
	fmt.Fprintf(out, "%s: configuration OK\n", path)
	return config.ExitOK
}

// DefaultConfigFile is keepalived's default configuration path.
const DefaultConfigFile = "/etc/keepalived/keepalived.conf"
