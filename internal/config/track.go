package config

import (
	"slices"
	"time"
)

// TrackFile is a track_file (or vrrp_track_file) block: a file holding a
// number that vrrp_instance track_file and real_server FILE_CHECK track.
type TrackFile struct {
	Pos  Pos    `json:"pos"`
	Name string `json:"name"`
	// File is the path of the file.
	File string `json:"file"`
	// Weight multiplies the number (default 0: a non-zero number is a
	// failure); Reverse negates it. A tracker's own weight overrides it.
	Weight  int  `json:"weight"`
	Reverse bool `json:"reverse,omitempty"`
	// InitFile creates the file with InitValue at start when it does
	// not exist (always, with InitOverwrite).
	InitFile      bool  `json:"init_file,omitempty"`
	InitValue     int64 `json:"init_value,omitempty"`
	InitOverwrite bool  `json:"init_overwrite,omitempty"`
}

// TrackFileBlock returns the track_file block with that name.
func (c *Config) TrackFileBlock(name string) (*TrackFile, bool) {
	for i := range c.TrackFiles {
		if c.TrackFiles[i].Name == name {
			return &c.TrackFiles[i], true
		}
	}
	return nil, false
}

// FileCheckConf is the FILE_CHECK part of a checker: the real server
// tracks a track_file block.
type FileCheckConf struct {
	// TrackFile names the track_file block.
	TrackFile string `json:"track_file"`
	// Weight and Reverse, when WeightSet, override the block's.
	Weight    int  `json:"weight,omitempty"`
	WeightSet bool `json:"weight_set,omitempty"`
	Reverse   bool `json:"reverse,omitempty"`
}

// maxIPVSWeight bounds track file weights used by real servers.
const maxIPVSWeight = 65535

func (d *decoder) trackFile(n *node, c *Config) {
	f := TrackFile{Pos: n.pos, Name: n.args[1]}
	run(d, n.kw(), n.children, table[TrackFile]{
		"file": {min: 1, max: 1, fn: func(d *decoder, n *node, f *TrackFile) { f.File = n.args[1] }},
		"weight": {min: 1, max: 2, fn: func(d *decoder, n *node, f *TrackFile) {
			if v, ok := d.int(n, 1, -maxIPVSWeight, maxIPVSWeight); ok {
				f.Weight = int(v)
			}
			if len(n.args) > 2 {
				f.Reverse = d.reverse(n, 2)
			}
		}},
		"init_file": {max: 2, fn: func(d *decoder, n *node, f *TrackFile) {
			f.InitFile = true
			for _, a := range n.args[1:] {
				if a == "overwrite" {
					f.InitOverwrite = true
					continue
				}
				if v, ok := d.int(n, 1, -1<<31, 1<<31-1); ok {
					f.InitValue = v
				}
			}
		}},
	}, nil, &f)
	if f.File == "" {
		d.errorf(n, "%s %s has no file", n.kw(), f.Name)
	}
	if o, dup := c.TrackFileBlock(f.Name); dup {
		d.errorf(n, "%s %s is defined twice (first at %s)", n.kw(), f.Name, o.Pos)
	}
	c.TrackFiles = append(c.TrackFiles, f)
}

var fileCheckTable = table[Checker]{
	"track_file": {min: 1, max: 1, fn: func(d *decoder, n *node, c *Checker) { c.File.TrackFile = n.args[1] }},
	"weight": {min: 1, max: 2, fn: func(d *decoder, n *node, c *Checker) {
		if v, ok := d.int(n, 1, -maxIPVSWeight, maxIPVSWeight); ok {
			c.File.Weight, c.File.WeightSet = int(v), true
		}
		if len(n.args) > 2 {
			c.File.Reverse = d.reverse(n, 2)
		}
	}},
}

// checkTrackFiles reports track_file names that name no track_file block.
func (d *decoder) checkTrackFiles(c *Config, pos Pos, owner string, ts []Track) {
	for _, t := range ts {
		if _, ok := c.TrackFileBlock(t.Name); !ok {
			d.lx.errorf(pos, "%s: track_file %q names no track_file block", owner, t.Name)
		}
	}
}

// TrackProcess is a vrrp_track_process block: the number of running
// processes that match, against a quorum.
type TrackProcess struct {
	Pos  Pos    `json:"pos"`
	Name string `json:"name"`
	// Process is the process name (its comm) or, with FullCommand, the
	// first word of its command line; Params are the words after it.
	Process string   `json:"process"`
	Params  []string `json:"params,omitempty"`
	// ParamMatch is "" (any arguments when no Params are given, else
	// exactly Params), "exact", "partial" or "initial".
	ParamMatch  string `json:"param_match,omitempty"`
	FullCommand bool   `json:"full_command,omitempty"`
	// Quorum (default 1) and QuorumMax (default -1: none) bound the
	// number of matching processes.
	Quorum    int `json:"quorum"`
	QuorumMax int `json:"quorum_max"`
	// Weight as a vrrp_script's (default 0: losing the quorum is FAULT).
	Weight  int  `json:"weight"`
	Reverse bool `json:"reverse,omitempty"`
	// TerminateDelay and ForkDelay default to delay (default 0).
	TerminateDelay time.Duration `json:"terminate_delay,omitempty"`
	ForkDelay      time.Duration `json:"fork_delay,omitempty"`
}

// TrackProcessBlock returns the vrrp_track_process with that name.
func (c *Config) TrackProcessBlock(name string) (*TrackProcess, bool) {
	for i := range c.TrackProcesses {
		if c.TrackProcesses[i].Name == name {
			return &c.TrackProcesses[i], true
		}
	}
	return nil, false
}

func (d *decoder) trackProcess(n *node, c *Config) {
	p := TrackProcess{Pos: n.pos, Name: n.args[1], Quorum: 1, QuorumMax: -1}
	var delay time.Duration
	termSet, forkSet := false, false
	timer := func(dst *time.Duration, set *bool) handler[TrackProcess] {
		return handler[TrackProcess]{min: 1, max: 1, fn: func(d *decoder, n *node, p *TrackProcess) {
			if v, ok := d.timer(n, 1, 0, maxTimer); ok {
				*dst = v
				if set != nil {
					*set = true
				}
			}
		}}
	}
	run(d, "vrrp_track_process", n.children, table[TrackProcess]{
		"process": {min: 1, max: -1, fn: func(d *decoder, n *node, p *TrackProcess) {
			p.Process = n.args[1]
			if len(n.args) > 2 {
				p.Params = slices.Clone(n.args[2:])
			}
		}},
		"param_match": {max: 1, fn: func(d *decoder, n *node, p *TrackProcess) {
			p.ParamMatch = "exact"
			if len(n.args) > 1 {
				if s, ok := d.oneOf(n, 1, "param_match", "initial", "partial"); ok {
					p.ParamMatch = s
				}
			}
		}},
		"full_command": {fn: func(d *decoder, n *node, p *TrackProcess) { p.FullCommand = true }},
		"quorum": {min: 1, max: 1, fn: func(d *decoder, n *node, p *TrackProcess) {
			if v, ok := d.int(n, 1, 0, 65535); ok {
				p.Quorum = int(v)
			}
		}},
		"quorum_max": {min: 1, max: 1, fn: func(d *decoder, n *node, p *TrackProcess) {
			if v, ok := d.int(n, 1, 0, 65535); ok {
				p.QuorumMax = int(v)
			}
		}},
		"weight": {min: 1, max: 2, fn: func(d *decoder, n *node, p *TrackProcess) {
			if v, ok := d.int(n, 1, -254, 254); ok {
				p.Weight = int(v)
			}
			if len(n.args) > 2 {
				p.Reverse = d.reverse(n, 2)
			}
		}},
		"delay":           timer(&delay, nil),
		"terminate_delay": timer(&p.TerminateDelay, &termSet),
		"fork_delay":      timer(&p.ForkDelay, &forkSet),
	}, nil, &p)
	if !termSet {
		p.TerminateDelay = delay
	}
	if !forkSet {
		p.ForkDelay = delay
	}
	if p.Process == "" {
		d.errorf(n, "vrrp_track_process %s has no process", p.Name)
	}
	if p.QuorumMax >= 0 && p.QuorumMax < p.Quorum {
		d.errorf(n, "vrrp_track_process %s: quorum_max %d is below quorum %d", p.Name, p.QuorumMax, p.Quorum)
	}
	if o, dup := c.TrackProcessBlock(p.Name); dup {
		d.errorf(n, "vrrp_track_process %s is defined twice (first at %s)", p.Name, o.Pos)
	}
	c.TrackProcesses = append(c.TrackProcesses, p)
}

// checkTrackProcesses reports track_process names that name no
// vrrp_track_process.
func (d *decoder) checkTrackProcesses(c *Config, pos Pos, owner string, ts []Track) {
	for _, t := range ts {
		if _, ok := c.TrackProcessBlock(t.Name); !ok {
			d.lx.errorf(pos, "%s: track_process %q names no vrrp_track_process", owner, t.Name)
		}
	}
}
