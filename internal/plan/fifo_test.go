package plan

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/config"
)

// TestNotifyFIFOsFoldedAsKeepalived: each FIFO path is written once, with
// keepalived's rules for paths given twice.
func TestNotifyFIFOsFoldedAsKeepalived(t *testing.T) {
	tests := []struct {
		name   string
		global string
		want   string // path vrrp lvs reader, one FIFO a line
		warn   string
	}{
		{"three FIFOs", "notify_fifo /run/a\n vrrp_notify_fifo /run/v\n lvs_notify_fifo /run/l\n lvs_notify_fifo_script /bin/cat",
			"/run/a true true \n/run/v true false \n/run/l false true /bin/cat", ""},
		{"vrrp at the global path", "notify_fifo /run/a\n notify_fifo_script /bin/cat\n vrrp_notify_fifo /run/a\n vrrp_notify_fifo_script /bin/true",
			"/run/a true true /bin/cat", "notify FIFO /run/a has been specified for global and vrrp FIFO - ignoring vrrp FIFO"},
		{"lvs at the global path", "notify_fifo /run/a\n lvs_notify_fifo /run/a",
			"/run/a true true ", "notify FIFO /run/a has been specified for global and LVS FIFO - ignoring LVS FIFO"},
		{"vrrp and lvs share one", "vrrp_notify_fifo /run/s\n vrrp_notify_fifo_script /bin/cat\n lvs_notify_fifo /run/s\n lvs_notify_fifo_script /bin/true",
			"/run/s true true /bin/cat", "LVS notify FIFO and vrrp FIFO are the same both with scripts - ignoring LVS FIFO script"},
		{"lvs reader for a shared FIFO", "vrrp_notify_fifo /run/s\n lvs_notify_fifo /run/s\n lvs_notify_fifo_script /bin/true",
			"/run/s true true /bin/true", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _, err := config.Parse("t.conf", []byte("global_defs {\n "+tt.global+"\n}\n"), config.Options{})
			if err != nil {
				t.Fatal(err)
			}
			p, warns, err := Compile(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, f := range p.NotifyFIFOs {
				got = append(got, fmt.Sprintf("%s %v %v %s", f.Path, f.VRRP, f.LVS, f.Reader.Line))
			}
			if g := strings.Join(got, "\n"); g != tt.want {
				t.Errorf("FIFOs\n%s\nwant\n%s", g, tt.want)
			}
			var msgs []string
			for _, w := range warns {
				msgs = append(msgs, w.Msg)
			}
			if g := strings.Join(msgs, "\n"); g != tt.warn {
				t.Errorf("warnings %q, want %q", g, tt.warn)
			}
		})
	}
}
