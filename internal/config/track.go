package config

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
