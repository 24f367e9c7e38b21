package daemon

import (
	"fmt"
	"log/slog"

	"github.com/gvs-lb/gvs/internal/plan"
	"github.com/gvs-lb/gvs/internal/trackfile"
)

// initTrackFiles does the init_file of every track_file block: it
// creates (or, with overwrite, rewrites) the file with its initial value.
// A failure is logged and the file is tracked anyway, as keepalived does.
func initTrackFiles(files []plan.TrackFileInit, log *slog.Logger) {
	for _, f := range files {
		if err := trackfile.Init(f.Path, f.Value, f.Overwrite); err != nil {
			log.Warn(fmt.Sprintf("%s: track_file %s: %v", f.Pos, f.Name, err))
		}
	}
}
