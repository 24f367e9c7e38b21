package vrrp

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"testing/synctest"
	"time"
)

// TestInitialState checks what keepalived 2.2 does at start (its
// vrrp_init_state, checked against keepalived 2.2.7 in a namespace):
// "state MASTER" with a priority below 255 still enters BACKUP first and
// becomes MASTER only when Master_Down_Interval passes without an advert;
// only the address owner (priority 255) becomes MASTER at once, whatever
// its configured state. It runs in a synctest bubble: the instance's
// timers run on the bubble's fake clock, so the time it spends in BACKUP
// is exact.
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
			synctest.Test(t, func(t *testing.T) {
				cfg := memConfig("VI_1", 1, tt.prio, "198.18.0.1")
				cfg.State = tt.state
				var h hub
				host := newMemHost()
				inst, err := NewInstance(cfg, Options{Conn: h.conn("198.18.0.1"), Host: host, Links: host, Logger: slog.New(slog.DiscardHandler)})
				if err != nil {
					t.Fatal(err)
				}
				// the state changes and when they came (the bubble's
				// time, which moves only when every goroutine waits)
				var seen []State
				var at []time.Time
				inst.onState = func(_ *Instance, s State) {
					seen = append(seen, s)
					at = append(at, time.Now())
				}
				start := time.Now()
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan struct{})
				go func() { defer close(done); inst.Run(ctx) }()
				// a second on the bubble's clock: well past the master
				// down timer (3 x 50 ms plus the skew), and no real wait
				time.Sleep(time.Second)
				synctest.Wait()
				cancel()
				<-done
				got := seen[:len(seen)-1] // the last is STOP
				if !slices.Equal(got, tt.want) {
					t.Fatalf("states %v, want %v", got, tt.want)
				}
				wait := time.Duration(0) // the address owner: MASTER at once
				if len(tt.want) == 2 {
					// RFC 5798: 3 x Advertisement_Interval + Skew_Time
					wait = 3*cfg.AdvertInt + time.Duration(256-int(cfg.Priority))*cfg.AdvertInt/256
					if d := at[1].Sub(at[0]); d != wait {
						t.Fatalf("BACKUP lasted %v, want Master_Down_Interval (%v)", d, wait)
					}
				}
				if d := at[len(got)-1].Sub(start); d != wait {
					t.Fatalf("MASTER after %v, want %v", d, wait)
				}
			})
		})
	}
}
