package ipvsadm

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/gvs-lb/gvs/internal/api/wire"
)

type stateFake map[string]string

func (f stateFake) State(_ context.Context, name string, v any) error {
	return json.Unmarshal([]byte(f[name]), v)
}
func (f stateFake) Socket() string { return "/nonexistent" }

func TestStateViews(t *testing.T) {
	views := stateFake{
		"checkers": `[{"service":"TCP 198.18.0.100:80","real_server":"198.18.0.11:80","type":"TCP_CHECK","target":"198.18.0.11:80","state":"DOWN","enabled":true,"checks":7,"failures":2,"last_error":"connection refused"}]`,
		"virtual-servers": `[{"service":"TCP 198.18.0.100:80","quorum_up":true,"quorum":1,"live_weight":1,
			"real_servers":[{"addr":"198.18.0.11:80","alive":false,"in_pool":false,"weight":1,"pool_weight":0},{"addr":"198.18.0.12:80","alive":true,"in_pool":true,"weight":1,"pool_weight":1}]}]`,
		"engine": `{"engine":"proxy","fd_limit":512,"tcp_conn_limit":128,"tcp_conn_limit_per_service":64,"tcp_conns":70,"tcp_refused":12,
			"udp_flow_limit":128,"udp_flow_limit_per_service":64,"udp_flows":64,"udp_sockets":64,"loops_refused":1,
			"services":[{"service":"TCP 198.18.0.100:80","tcp_conns":64,"refused":12},{"service":"TCP 198.18.0.100:443","listening":true,"tcp_conns":6},
			{"service":"UDP 198.18.0.100:53","listening":true,"flows":64,"sockets":64,"evicted":2827,"refused":5}]}`,
		"vrrp": `[{"name":"VI_1","interface":"eth0","vrid":51,"version":2,"state":"MASTER","priority":100,"effective_priority":100,"master_addr":"198.18.0.3","vips":["198.18.0.100/24"],"adverts_sent":10,"adverts_received":1,"drops":{"bad_auth":2}}]`,
	}
	tests := []struct {
		name string
		want string
	}{
		{"checkers", `Service              Real server     Checker    Target          State  Checks  Failures  Last error
TCP 198.18.0.100:80  198.18.0.11:80  TCP_CHECK  198.18.0.11:80  DOWN   7       2         connection refused
`},
		{"virtual-servers", `TCP 198.18.0.100:80  quorum 1 up, live weight 1
  -> Real server     Alive  In pool  Weight
  -> 198.18.0.11:80  no     no       0
  -> 198.18.0.12:80  yes    yes      1
`},
		{"engine", `Engine proxy: descriptor limit 512, UDP flows 64 of 128 (at most 64 per service) on 64 sockets, loops refused 1
TCP connections 70 of 128 (at most 64 per service), refused 12
Service               Listening  Conns  Flows  Sockets  Evicted  Refused
TCP 198.18.0.100:80   no         64     0      0        0        12
TCP 198.18.0.100:443  yes        6      0      0        0        0
UDP 198.18.0.100:53   yes        0      64     64       2827     5
`},
		{"vrrp", `Instance  Interface  VRID  Version  State   Priority  Effective  Master      Sent  Received  Dropped  VIPs
VI_1      eth0       51    2        MASTER  100       100        198.18.0.3  10    1         2        198.18.0.100/24
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			if rc := RunState(context.Background(), tt.name, nil, &out, &errb, views); rc != ExitOK {
				t.Fatalf("exit %d: %s", rc, errb.String())
			}
			if out.String() != tt.want {
				t.Errorf("got:\n%q\nwant:\n%q", out.String(), tt.want)
			}
			out.Reset()
			RunState(context.Background(), tt.name, []string{"--json"}, &out, &errb, views)
			if !json.Valid(out.Bytes()) {
				t.Errorf("--json printed invalid JSON: %s", out.String())
			}
		})
	}
}

// TestEngineViewXDP: gvsadm engine on the xdp engine shows the interfaces
// with their mode, each map's use, and only the reasons that counted
// packets; --json has them all.
func TestEngineViewXDP(t *testing.T) {
	tests := []struct {
		name, view, want string
	}{
		{"busy, pinned", `{"engine":"xdp","fd_limit":0,"tcp_conn_limit":0,"tcp_conn_limit_per_service":0,"tcp_conns":0,"tcp_refused":0,
				"udp_flow_limit":0,"udp_flow_limit_per_service":0,"udp_flows":0,"udp_sockets":0,"loops_refused":0,"services":[],
				"xdp":{"interfaces":[{"name":"eth0","mode":"native"},{"name":"eth1","mode":"generic"}],"pin_path":"/sys/fs/bpf/gvs/a",
				"services":{"used":2,"limit":4096},"real_servers":{"used":5,"limit":16384},
				"conn_entries_ipv4":{"used":196000,"limit":262144},"conn_entries_ipv6":{"used":0,"limit":262144},
				"packets":[{"reason":"malformed","meaning":"truncated or malformed headers: passed to the kernel","packets":0},
				{"reason":"no-service","meaning":"new flow to no virtual service: passed to the kernel","packets":12},
				{"reason":"refused","meaning":"no real server could take a new connection: ICMP port unreachable sent back","packets":3}]}}`, `Engine xdp on eth0 (native), eth1 (generic), pinned in /sys/fs/bpf/gvs/a
Map                      Used    Limit   Full
Virtual services         2       4096    0%
Real servers             5       16384   0%
IPv4 connection entries  196000  262144  74%
IPv6 connection entries  0       262144  0%
Reason      Packets  Meaning
no-service  12       new flow to no virtual service: passed to the kernel
refused     3        no real server could take a new connection: ICMP port unreachable sent back
`},
		{"no packet counted", `{"engine":"xdp","services":[],"xdp":{"interfaces":[{"name":"eth0","mode":"generic"}],
				"services":{"used":0,"limit":8},"real_servers":{"used":0,"limit":32},
				"conn_entries_ipv4":{"used":0,"limit":512},"conn_entries_ipv6":{"used":0,"limit":512},
				"packets":[{"reason":"malformed","meaning":"truncated or malformed headers: passed to the kernel","packets":0}]}}`, `Engine xdp on eth0 (generic)
Map                      Used  Limit  Full
Virtual services         0     8      0%
Real servers             0     32     0%
IPv4 connection entries  0     512    0%
IPv6 connection entries  0     512    0%
No packet dropped or left to the kernel
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			views := stateFake{"engine": tt.view}
			var out, errb bytes.Buffer
			if rc := RunState(context.Background(), "engine", nil, &out, &errb, views); rc != ExitOK {
				t.Fatalf("exit %d: %s", rc, errb.String())
			}
			if out.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", out.String(), tt.want)
			}
			out.Reset()
			RunState(context.Background(), "engine", []string{"--json"}, &out, &errb, views)
			var back wire.Engine
			if err := json.Unmarshal(out.Bytes(), &back); err != nil || back.XDP == nil || len(back.XDP.Packets) == 0 {
				t.Errorf("--json printed %s (%v), want the view with every packet reason", out.String(), err)
			}
		})
	}
}
