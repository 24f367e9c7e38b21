package config

import (
	"os"
	"path/filepath"
	"sort"
)

// Config is a parsed keepalived.conf. It is a value: nothing in this
// package changes it after Parse returns, and callers must treat it as
// read-only (Services returns fresh copies).
type Config struct {
	Global         Global           `json:"global"`
	Scripts        []VRRPScript     `json:"scripts,omitempty"`
	SyncGroups     []SyncGroup      `json:"sync_groups,omitempty"`
	Instances      []VRRPInstance   `json:"instances,omitempty"`
	VirtualServers []VirtualServer  `json:"virtual_servers,omitempty"`
	VSGroups       []VSGroup        `json:"virtual_server_groups,omitempty"`
	LocalAddrs     []LocalAddrGroup `json:"local_address_groups,omitempty"`
	TrackFiles     []TrackFile      `json:"track_files,omitempty"`
	TrackProcesses []TrackProcess   `json:"track_processes,omitempty"`
}

// Script returns the vrrp_script with that name.
func (c *Config) Script(name string) (*VRRPScript, bool) {
	for i := range c.Scripts {
		if c.Scripts[i].Name == name {
			return &c.Scripts[i], true
		}
	}
	return nil, false
}

// Instance returns the vrrp_instance with that name.
func (c *Config) Instance(name string) (*VRRPInstance, bool) {
	for i := range c.Instances {
		if c.Instances[i].Name == name {
			return &c.Instances[i], true
		}
	}
	return nil, false
}

// VSGroup returns the virtual_server_group with that name.
func (c *Config) VSGroup(name string) (*VSGroup, bool) {
	for i := range c.VSGroups {
		if c.VSGroups[i].Name == name {
			return &c.VSGroups[i], true
		}
	}
	return nil, false
}

// LocalAddrGroup returns the local_address_group with that name.
func (c *Config) LocalAddrGroup(name string) (*LocalAddrGroup, bool) {
	for i := range c.LocalAddrs {
		if c.LocalAddrs[i].Name == name {
			return &c.LocalAddrs[i], true
		}
	}
	return nil, false
}

// Options tune Parse. The zero value reads includes from the file system.
type Options struct {
	// ConfigID selects conditional lines: "@id ..." lines are kept only
	// when id equals ConfigID, "@^id ..." lines only when it does not
	// (keepalived's -i, which defaults to the host name's first label).
	ConfigID string
	// ReadFile and Glob resolve includes; nil means os.ReadFile and
	// filepath.Glob.
	ReadFile func(name string) ([]byte, error)
	Glob     func(pattern string) ([]string, error)
}

func (o *Options) readFile(name string) ([]byte, error) {
	if o.ReadFile != nil {
		return o.ReadFile(name)
	}
	return os.ReadFile(name)
}

func (o *Options) glob(pattern string) ([]string, error) {
	if o.Glob != nil {
		return o.Glob(pattern)
	}
	return filepath.Glob(pattern)
}

// DefaultConfigID is keepalived's default config id: the host name up to
// its first dot.
func DefaultConfigID() string {
	h, _ := os.Hostname()
	for i := 0; i < len(h); i++ {
		if h[i] == '.' {
			return h[:i]
		}
	}
	return h
}

// Load reads and parses the configuration file at path, with the host's
// default config id. Includes are relative to the including file.
// It then resolves who runs each script and which may run at all, with
// this host's users and files (see Script). The error is a *FileError
// when path cannot be read, else an *Error or Errors; warnings are
// returned even when the configuration loads.
func Load(path string) (*Config, []Warning, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, &FileError{Path: path, Err: err}
	}
	cfg, warns, err := Parse(path, data, Options{ConfigID: DefaultConfigID()})
	if err != nil {
		return nil, warns, err
	}
	return cfg, append(warns, resolveScripts(cfg, path, systemScriptHost())...), nil
}

// maxErrors bounds the errors one parse reports.
const maxErrors = 50

// Parse parses a configuration whose text is data; name is the file name
// used in messages and the base of relative includes.
func Parse(name string, data []byte, opts Options) (*Config, []Warning, error) {
	lx := &lexer{opts: &opts, params: map[string]string{}}
	lx.file(name, data, []string{filepath.Clean(name)})
	root := buildTree(lx)
	d := &decoder{lx: lx}
	cfg := &Config{Global: defaultGlobal()}
	run(d, "", root.children, topLevel, topIgnored, cfg)
	if len(lx.errs) == 0 {
		d.finish(cfg)
	}
	warns := lx.warns
	order := map[string]int{}
	for _, ln := range lx.lines {
		if _, ok := order[ln.pos.File]; !ok {
			order[ln.pos.File] = len(order)
		}
	}
	sort.SliceStable(warns, func(i, j int) bool {
		a, b := warns[i].Pos, warns[j].Pos
		if a.File != b.File {
			return order[a.File] < order[b.File]
		}
		return a.Line < b.Line
	})
	switch n := len(lx.errs); {
	case n == 0:
		return cfg, warns, nil
	case n == 1:
		return nil, warns, lx.errs[0]
	case n > maxErrors:
		return nil, warns, lx.errs[:maxErrors]
	default:
		return nil, warns, lx.errs
	}
}

var topLevel = table[Config]{
	"global_defs":          {block: true, fn: func(d *decoder, n *node, c *Config) { d.global(n, &c.Global) }},
	"vrrp_script":          {min: 1, max: 1, block: true, fn: (*decoder).vrrpScript},
	"vrrp_sync_group":      {min: 1, max: 1, block: true, fn: (*decoder).syncGroup},
	"vrrp_instance":        {min: 1, max: 1, block: true, fn: (*decoder).vrrpInstance},
	"virtual_server_group": {min: 1, max: 1, block: true, fn: (*decoder).vsGroup},
	"virtual_server":       {min: 1, max: 2, block: true, fn: (*decoder).virtualServer},
	"local_address_group":  {min: 1, max: 1, block: true, fn: (*decoder).localAddrGroup},
	"laddr_group":          {min: 1, max: 1, block: true, fn: (*decoder).localAddrGroup},
	"track_file":           {min: 1, max: 1, block: true, fn: (*decoder).trackFile},
	"vrrp_track_file":      {min: 1, max: 1, block: true, fn: (*decoder).trackFile},
	"vrrp_track_process":   {min: 1, max: 1, block: true, fn: (*decoder).trackProcess},
}

// topIgnored are top-level keepalived blocks GVS does not implement.
var topIgnored = ignored{
	"static_ipaddress": true, "static_routes": true, "static_rules": true,
	"linkbeat_interfaces": true, "interface_up_down_delays": true,
	"static_track_group": true,
	"bfd_instance":       true, "garp_group": true,
	"SSL": true, "net_namespace": true, "net_namespace_ipvs": true,
	"namespace_with_ipsets": true, "instance": true, "use_pid_dir": true,
	"linkbeat_use_polling": true, "child_wait_time": true,
}
