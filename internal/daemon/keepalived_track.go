package daemon

import (
	"fmt"
	"log/slog"

	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/trackfile"
)

// initTrackFiles does the init_file of every track_file block: it
// creates (or, with overwrite, rewrites) the file with its initial value.
// A failure is logged and the file is tracked anyway, as keepalived does.
func initTrackFiles(cfg *config.Config, log *slog.Logger) {
	for _, f := range cfg.TrackFiles {
		if !f.InitFile {
			continue
		}
		if err := trackfile.Init(f.File, f.InitValue, f.InitOverwrite); err != nil {
			log.Warn(fmt.Sprintf("%s: track_file %s: %v", f.Pos, f.Name, err))
		}
	}
}
