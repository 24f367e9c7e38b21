package daemon

import (
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

func TestMergeTimeouts(t *testing.T) {
	tests := []struct {
		name      string
		want, cur ipvs.Timeouts
		out       ipvs.Timeouts
	}{
		{"kernel defaults", ipvs.Timeouts{}, ipvs.Timeouts{}, ipvs.DefaultTimeouts},
		{"lvs_timeouts win", ipvs.Timeouts{TCP: 60}, ipvs.Timeouts{TCP: 30, UDP: 10}, ipvs.Timeouts{TCP: 60, TCPFin: 120, UDP: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mergeTimeouts(tt.want, tt.cur); got != tt.out {
				t.Errorf("got %+v, want %+v", got, tt.out)
			}
		})
	}
}
