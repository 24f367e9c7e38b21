package daemon

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/check"
	"github.com/gvs-lb/gvs/internal/ipvssync"
	"github.com/gvs-lb/gvs/internal/vrrp"
)

// TestViewsJSON pins the admin API's JSON for the keepalived views and the
// sync daemons, every field set: what `gvsadm checkers --json` and the
// others print. The runtime packages' state is converted field by field;
// a field lost on the way, or a changed name, shows here.
func TestViewsJSON(t *testing.T) {
	at := time.Date(2026, 12, 5, 11, 0, 0, 0, time.UTC)
	rs := netip.MustParseAddrPort("198.18.0.11:80")
	pool := check.RealServerStatus{Addr: rs, Alive: true, InPool: true, Weight: 2, PoolWeight: 2, FailedCheckers: 1}
	sorry := check.RealServerStatus{Addr: netip.MustParseAddrPort("198.18.0.99:80"), Weight: 1}
	tests := []struct {
		name string
		view any
		want string
	}{
		{"checker", checkerView(check.Status{Service: "TCP 198.18.0.100:80", RealServer: rs, Type: check.Type("HTTP_GET"),
			Target: netip.MustParseAddrPort("198.18.0.11:8080"), State: "UP", Enabled: true, HasRun: true, Alpha: true, Retry: 3, RetryIt: 1,
			DelayLoop: "1s", Checks: 12, Failures: 2, LastError: "timeout", LastCheck: at, LastChange: at.Add(-time.Minute), Weight: 5, Delta: -2}),
			`{"service":"TCP 198.18.0.100:80","real_server":"198.18.0.11:80","type":"HTTP_GET","target":"198.18.0.11:8080","state":"UP",` +
				`"enabled":true,"has_run":true,"alpha":true,"retry":3,"retry_it":1,"delay_loop":"1s","checks":12,"failures":2,"last_error":"timeout",` +
				`"last_check":"2026-12-05T11:00:00Z","last_change":"2026-12-05T10:59:00Z","dynamic_weight":5,"weight_delta":-2}`},
		{"checker, nothing optional", checkerView(check.Status{RealServer: rs, Type: check.Type("TCP_CHECK"), Target: rs, State: "DOWN", DelayLoop: "6s"}),
			`{"real_server":"198.18.0.11:80","type":"TCP_CHECK","target":"198.18.0.11:80","state":"DOWN","enabled":false,"has_run":false,` +
				`"retry":0,"retry_it":0,"delay_loop":"6s","checks":0,"failures":0}`},
		{"virtual server", virtualServerView(check.VirtualStatus{Service: "TCP 198.18.0.100:80", QuorumUp: true, Quorum: 1, Hysteresis: 1,
			LiveWeight: 2, SorryServer: &sorry, RealServers: []check.RealServerStatus{pool}}),
			`{"service":"TCP 198.18.0.100:80","quorum_up":true,"quorum":1,"hysteresis":1,"live_weight":2,` +
				`"sorry_server":{"addr":"198.18.0.99:80","alive":false,"in_pool":false,"weight":1,"pool_weight":0,"failed_checkers":0},` +
				`"real_servers":[{"addr":"198.18.0.11:80","alive":true,"in_pool":true,"weight":2,"pool_weight":2,"failed_checkers":1}]}`},
		{"virtual server, no real servers", virtualServerView(check.VirtualStatus{Service: "UDP 198.18.0.100:53"}),
			`{"service":"UDP 198.18.0.100:53","quorum_up":false,"quorum":0,"hysteresis":0,"live_weight":0,"real_servers":[]}`},
		{"vrrp instance", vrrpView(vrrp.Status{Name: "VI_1", Interface: "eth0", VRID: 51, Version: 3, State: vrrp.StateMaster, Priority: 100,
			EffectivePriority: 90, MasterAddr: "198.18.0.3", VIPs: []string{"198.18.0.100/32"}, AdvertsSent: 10, AdvertsReceived: 4,
			PriorityZeroSent: 1, PriorityZeroReceived: 2, BecomeMaster: 3, ReleaseMaster: 2, Drops: map[string]uint64{"auth": 1}}),
			`{"name":"VI_1","interface":"eth0","vrid":51,"version":3,"state":"MASTER","priority":100,"effective_priority":90,` +
				`"master_addr":"198.18.0.3","vips":["198.18.0.100/32"],"adverts_sent":10,"adverts_received":4,"priority_zero_sent":1,` +
				`"priority_zero_received":2,"become_master":3,"release_master":2,"drops":{"auth":1}}`},
		{"sync daemons", syncDaemons{}.convert([]ipvssync.Status{{Config: ipvssync.Config{State: "master", Interface: "eth1", SyncID: 7,
			MaxLen: 1472, Group: netip.MustParseAddr("224.0.0.81"), Port: 8848, TTL: 1}, Sent: 5, Messages: 2, Installed: 3, Skipped: 1, Dropped: 4, Errors: 6}}),
			`[{"state":"master","mcast_ifn":"eth1","syncid":7,"sync_maxlen":1472,"mcast_group":"224.0.0.81","mcast_port":8848,"mcast_ttl":1,` +
				`"sent_conns":5,"messages":2,"installed_conns":3,"skipped_conns":1,"dropped_messages":4,"send_errors":6}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.view)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("JSON:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
