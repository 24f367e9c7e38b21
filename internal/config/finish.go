package config

// finish checks what spans blocks: names that refer to other blocks, and
// that the virtual servers make a valid IPVS table.
func (d *decoder) finish(c *Config) {
	inGroup := map[string]string{}
	for _, g := range c.SyncGroups {
		for _, name := range g.Group {
			if _, ok := c.Instance(name); !ok {
				d.lx.errorf(g.Pos, "vrrp_sync_group %s: no vrrp_instance named %q", g.Name, name)
				continue
			}
			if other, dup := inGroup[name]; dup {
				d.lx.errorf(g.Pos, "vrrp_instance %s is in vrrp_sync_group %s and %s (one group only)", name, other, g.Name)
			}
			inGroup[name] = g.Name
		}
		d.checkTrackScripts(c, g.Pos, "vrrp_sync_group "+g.Name, g.TrackScripts)
		d.checkTrackFiles(c, g.Pos, "vrrp_sync_group "+g.Name, g.TrackFiles)
		d.checkTrackProcesses(c, g.Pos, "vrrp_sync_group "+g.Name, g.TrackProcesses)
	}
	for _, v := range c.Instances {
		d.checkTrackScripts(c, v.Pos, "vrrp_instance "+v.Name, v.TrackScripts)
		d.checkTrackFiles(c, v.Pos, "vrrp_instance "+v.Name, v.TrackFiles)
		d.checkTrackProcesses(c, v.Pos, "vrrp_instance "+v.Name, v.TrackProcesses)
	}
	for i := range c.VirtualServers {
		for j := range c.VirtualServers[i].RealServers {
			for k := range c.VirtualServers[i].RealServers[j].Checkers {
				// global_defs checker_log_all_failures is the default of
				// every checker's log_all_failures.
				if ch := &c.VirtualServers[i].RealServers[j].Checkers[k]; ch.logAllFailures == nil {
					ch.LogAllFailures = c.Global.CheckerLogAllFailures
				}
			}
		}
	}
	for _, vs := range c.VirtualServers {
		if vs.Group != "" {
			if _, ok := c.VSGroup(vs.Group); !ok {
				d.lx.errorf(vs.Pos, "virtual_server group %s: no virtual_server_group named %q", vs.Group, vs.Group)
			}
		}
		if vs.LocalAddrGroup != "" {
			if _, ok := c.LocalAddrGroup(vs.LocalAddrGroup); !ok {
				d.lx.errorf(vs.Pos, "virtual server %s: no local_address_group named %q", vs.Key(), vs.LocalAddrGroup)
			}
		}
		for _, rs := range vs.RealServers {
			for _, ch := range rs.Checkers {
				if ch.File == nil {
					continue
				}
				if _, ok := c.TrackFileBlock(ch.File.TrackFile); !ok {
					d.lx.errorf(ch.Pos, "FILE_CHECK: track_file %q names no track_file block", ch.File.TrackFile)
				}
			}
		}
	}
	if len(d.lx.errs) > 0 {
		return
	}
	if _, _, err := c.Services(); err != nil {
		switch e := err.(type) {
		case *Error:
			d.lx.errs = append(d.lx.errs, e)
		case Errors:
			d.lx.errs = append(d.lx.errs, e...)
		}
	}
}

func (d *decoder) checkTrackScripts(c *Config, pos Pos, owner string, ts []Track) {
	for _, t := range ts {
		if _, ok := c.Script(t.Name); !ok {
			d.lx.errorf(pos, "%s: track_script %q names no vrrp_script", owner, t.Name)
		}
	}
}
