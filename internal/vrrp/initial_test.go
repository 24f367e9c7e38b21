package vrrp

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestInitialState checks what keepalived 2.2 does at start (its
// vrrp_init_state, checked against keepalived 2.2.7 in a namespace):
// "state MASTER" with a priority below 255 still enters BACKUP first and
// becomes MASTER only when Master_Down_Interval passes without an advert;
// only the address owner (priority 255) becomes MASTER at once, whatever
// its configured state.
func TestInitialState(t *testing.T) {
	tests := []struct {
		name  string
		state State
		prio  uint8
		want  []State
	}{
		{name: "state MASTER priority 100", state: StateMaster, prio: 100, want: []State{StateBackup, StateMaster}},
		{name: "state BACKUP priority 100", state: StateBackup, prio: 100, want: []State{StateBackup, StateMaster}},
		{name: "state MASTER priority 255", state: StateMaster, prio: 255, want: []State{StateMaster}},
		{name: "state BACKUP priority 255", state: StateBackup, prio: 255, want: []State{StateMaster}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := memConfig("VI_1", 1, tt.prio, "198.18.0.1")
			cfg.State = tt.state
			var h hub
			host := newMemHost()
			inst, err := NewInstance(cfg, Options{Conn: h.conn("198.18.0.1"), Host: host, Links: host, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var seen []State
			var backupAt, masterAt time.Time
			inst.onState = func(_ *Instance, s State) {
				mu.Lock()
				defer mu.Unlock()
				seen = append(seen, s)
				switch s {
				case StateBackup:
					backupAt = time.Now()
				case StateMaster:
					masterAt = time.Now()
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); inst.Run(ctx) }()
			waitState(t, inst, StateMaster)
			cancel()
			<-done
			mu.Lock()
			defer mu.Unlock()
			got := seen[:len(seen)-1] // the last is STOP
			if !slices.Equal(got, tt.want) {
				t.Fatalf("states %v, want %v", got, tt.want)
			}
			if len(tt.want) == 2 {
				// the master down timer ran: 3 x 50 ms + skew, well over 100 ms
				if d := masterAt.Sub(backupAt); d < 100*time.Millisecond {
					t.Fatalf("BACKUP lasted %v, want Master_Down_Interval (%v)", d, 3*cfg.AdvertInt)
				}
			}
		})
	}
}
