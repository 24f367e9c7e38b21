package vrrp

import (
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/equaltest"
	"github.com/gvs-lb/gvs/internal/script"
)

// TestEqualSeesEveryField: each Equal method tells apart two values that
// differ in any one field, so a reload restarts what changed.
func TestEqualSeesEveryField(t *testing.T) {
	cmd := script.Cmd{Line: "/bin/true"}
	w := 3
	ic := InstanceConfig{Name: "VI_1", TrackScripts: []TrackRef{{Name: "a", Weight: &w}}}
	notify := Notify{Master: cmd}
	equaltest.EveryField(t, ic, func(a, b InstanceConfig) bool { return a.Equal(&b) }, cmd, notify)
	equaltest.EveryField(t, TrackRef{Name: "a", Weight: &w}, TrackRef.equal, cmd)
	equaltest.EveryField(t, SyncGroup{Name: "G"}, func(a, b SyncGroup) bool { return a.Equal(&b) }, cmd, notify)
	equaltest.EveryField(t, Notify{}, Notify.Equal, cmd)
	equaltest.EveryField(t, TrackScript{Name: "s", Interval: time.Second}, func(a, b TrackScript) bool { return a.Equal(&b) }, cmd)
	equaltest.EveryField(t, TrackProcess{Name: "p"}, func(a, b TrackProcess) bool { return a.Equal(&b) }, cmd)

	other, same := 4, 3
	if (TrackRef{Name: "a", Weight: &w}).equal(TrackRef{Name: "a", Weight: &other}) ||
		!(TrackRef{Name: "a", Weight: &w}).equal(TrackRef{Name: "a", Weight: &same}) {
		t.Error("TrackRef.equal does not compare weights by value")
	}
}
