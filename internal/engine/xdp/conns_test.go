package xdp

import (
	"testing"
	"time"
)

// TestIdle checks the 32-bit connection clock's differences, across its
// wrap and for a last_seen the program wrote after Go read the clock.
func TestIdle(t *testing.T) {
	unit := time.Duration(1) << connClockShift
	tests := []struct {
		name      string
		now, last uint32
		want      time.Duration
	}{
		{name: "same tick", now: 1000, last: 1000, want: 0},
		{name: "ten ticks ago", now: 1010, last: 1000, want: 10 * unit},
		{name: "across the wrap", now: 5, last: 0xfffffffb, want: 10 * unit},
		{name: "written after now", now: 1000, last: 1003, want: 0},
		{name: "written after now, across the wrap", now: 0xffffffff, last: 2, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := idle(tc.now, tc.last); got != tc.want {
				t.Errorf("idle(%d, %d) = %v, want %v", tc.now, tc.last, got, tc.want)
			}
		})
	}
}
