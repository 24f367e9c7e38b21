package daemon

import (
	"fmt"
	"log/slog"

	"github.com/gvs-lb/gvs/internal/check"
	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/trackfile"
	"github.com/gvs-lb/gvs/internal/vrrp"
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

// fileCheckSpec maps a FILE_CHECK: the track_file block it names gives the
// path, and its weight unless the checker sets one.
func fileCheckSpec(c *config.Checker, cfg *config.Config) (check.Spec, error) {
	f, ok := cfg.TrackFileBlock(c.File.TrackFile)
	if !ok {
		return check.Spec{}, fmt.Errorf("%s: FILE_CHECK: no track_file block named %q", c.Pos, c.File.TrackFile)
	}
	s := check.Defaults(check.FILE)
	s.TrackFile, s.FileWeight, s.FileReverse = f.File, f.Weight, f.Reverse
	if c.File.WeightSet {
		s.FileWeight, s.FileReverse = c.File.Weight, c.File.Reverse
	}
	return s, nil
}

// vrrpTrackFiles maps an instance's track_file references and the blocks
// they name.
func vrrpTrackFiles(refs []config.Track, cfg *config.Config, files map[string]vrrp.TrackFile) ([]vrrp.TrackRef, error) {
	var out []vrrp.TrackRef
	for _, t := range refs {
		f, ok := cfg.TrackFileBlock(t.Name)
		if !ok {
			return nil, fmt.Errorf("track_file %s: no track_file block of that name", t.Name)
		}
		files[f.Name] = vrrp.TrackFile{Name: f.Name, File: f.File, Weight: f.Weight, Reverse: f.Reverse}
		ref := vrrp.TrackRef{Name: t.Name}
		if t.WeightSet {
			w := t.Weight
			ref.Weight, ref.Reverse = &w, t.Reverse
		}
		out = append(out, ref)
	}
	return out, nil
}

// vrrpTrackProcesses maps an instance's track_process references and the
// vrrp_track_process blocks they name. reverse is folded into the weight's
// sign, as for vrrp_script.
func vrrpTrackProcesses(refs []config.Track, cfg *config.Config, procs map[string]vrrp.TrackProcess) ([]vrrp.TrackRef, error) {
	var out []vrrp.TrackRef
	for _, t := range refs {
		p, ok := cfg.TrackProcessBlock(t.Name)
		if !ok {
			return nil, fmt.Errorf("track_process %s: no vrrp_track_process of that name", t.Name)
		}
		w := p.Weight
		if p.Reverse {
			w = -w
		}
		procs[p.Name] = vrrp.TrackProcess{Name: p.Name, Process: p.Process, Params: p.Params,
			ParamMatch: vrrp.ParamMatch(p.ParamMatch), FullCommand: p.FullCommand,
			Quorum: p.Quorum, QuorumMax: p.QuorumMax, Weight: w,
			TerminateDelay: p.TerminateDelay, ForkDelay: p.ForkDelay}
		out = append(out, signedRef(t))
	}
	return out, nil
}

// signedRef is a track_script or track_process reference: its own weight,
// when it gives one, overrides the tracked block's, with reverse folded
// into the sign.
func signedRef(t config.Track) vrrp.TrackRef {
	ref := vrrp.TrackRef{Name: t.Name}
	if t.WeightSet {
		w := t.Weight
		if t.Reverse {
			w = -w
		}
		ref.Weight = &w
	}
	return ref
}
