package plan

import (
	"testing"

	"github.com/gvs-lb/gvs/internal/check"
	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/script"
)

// TestScriptsRunAsResolved: the runtime gets each script with the user
// config.Load resolved, and nothing of a script Load disabled: the
// vrrp_script is no longer tracked, the MISC_CHECK is gone from its real
// server, the notify script is not run.
func TestScriptsRunAsResolved(t *testing.T) {
	cfg, _, err := config.Parse("t.conf", []byte(`
vrrp_script chk { script /bin/true }
vrrp_script off { script /bin/false }
vrrp_instance VI_1 {
 interface eth0
 virtual_router_id 9
 virtual_ipaddress { 198.18.0.1 }
 track_script {
  chk
  off
 }
 notify_master /bin/true
 notify_backup /bin/false
}
virtual_server 198.18.0.10 80 {
 protocol TCP
 real_server 198.18.0.11 80 {
  notify_up /bin/true
  MISC_CHECK { misc_path /bin/true }
  MISC_CHECK { misc_path /bin/false }
 }
}`), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// What Load would have settled: chk and the /bin/true scripts run as
	// 65534:65533, the /bin/false ones were refused.
	for _, s := range []*config.Script{cfg.Scripts[0].Script, cfg.Instances[0].Notify.Master,
		cfg.VirtualServers[0].RealServers[0].NotifyUp, cfg.VirtualServers[0].RealServers[0].Checkers[0].Misc.Path} {
		s.UID, s.GID = 65534, 65533
	}
	for _, s := range []*config.Script{cfg.Scripts[1].Script, cfg.Instances[0].Notify.Backup,
		cfg.VirtualServers[0].RealServers[0].Checkers[1].Misc.Path} {
		s.Disabled = "insecure"
	}
	nobody := &script.Credential{UID: 65534, GID: 65533}

	p, _, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sig := p.VRRP[0]
	if len(sig.Scripts) != 1 || sig.Scripts["chk"].Script.Line != "/bin/true" || *sig.Scripts["chk"].Script.RunAs != *nobody {
		t.Errorf("vrrp scripts %+v, want chk alone, as 65534:65533", sig.Scripts)
	}
	ic := sig.Instances[0]
	if len(ic.TrackScripts) != 1 || ic.TrackScripts[0].Name != "chk" {
		t.Errorf("VI_1 tracks %+v, want chk alone", ic.TrackScripts)
	}
	if ic.Notify.Master.RunAs == nil || *ic.Notify.Master.RunAs != *nobody {
		t.Errorf("notify_master %+v, want it as 65534:65533", ic.Notify.Master)
	}
	if !ic.Notify.Backup.IsZero() {
		t.Errorf("the refused notify_backup is still there: %+v", ic.Notify.Backup)
	}

	rs := p.Services[0].Check.RealServers[0]
	if len(rs.Checks) != 1 || rs.Checks[0].Type != check.MISC || rs.Checks[0].MiscPath != "/bin/true" ||
		rs.Checks[0].MiscRunAs == nil || *rs.Checks[0].MiscRunAs != *nobody {
		t.Errorf("checks %+v, want the /bin/true MISC_CHECK alone, as 65534:65533", rs.Checks)
	}
	if rs.NotifyUp.RunAs == nil || *rs.NotifyUp.RunAs != *nobody {
		t.Errorf("notify_up %+v, want it as 65534:65533", rs.NotifyUp)
	}
}
