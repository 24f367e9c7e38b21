package daemon

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvssync"
)

func TestParseLVSSync(t *testing.T) {
	tests := []struct {
		name    string
		words   string
		want    lvsSyncSpec
		wantErr string
	}{
		{name: "interface and instance", words: "eth1 VI_1",
			want: lvsSyncSpec{instance: "VI_1", cfg: ipvssync.Config{Interface: "eth1"}}},
		{name: "every option", words: "eth1 VI_1 id 7 maxlen 1400 port 9000 ttl 3 group 224.0.0.99",
			want: lvsSyncSpec{instance: "VI_1", idGiven: true, cfg: ipvssync.Config{Interface: "eth1", SyncID: 7, MaxLen: 1400,
				Port: 9000, TTL: 3, Group: netip.MustParseAddr("224.0.0.99")}}},
		{name: "no instance", words: "eth1", wantErr: "needs an interface and a VRRP instance"},
		{name: "id out of range", words: "eth1 VI_1 id 256", wantErr: "id \"256\": want a number from 0 to 255"},
		{name: "option without value", words: "eth1 VI_1 ttl", wantErr: "\"ttl\" needs a value"},
		{name: "unicast group", words: "eth1 VI_1 group 198.18.0.1", wantErr: "not a multicast address"},
		{name: "unknown option", words: "eth1 VI_1 mtu 1500", wantErr: "unknown option \"mtu\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseLVSSync(strings.Fields(tt.words))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || *got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
