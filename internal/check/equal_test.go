package check

import (
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/equaltest"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/script"
)

// TestEqualSeesEveryField: each Equal method tells apart two values that
// differ in any one field, so a field added later cannot be forgotten by
// a reload's comparison.
func TestEqualSeesEveryField(t *testing.T) {
	others := []any{script.Cmd{Line: "/bin/true"}, ipvs.ServiceKey{FWMark: 7}, ipvs.Dest{Weight: 9}}
	spec := Spec{Type: HTTP, DelayLoop: time.Second, URLs: []URL{{Path: "/", Status: ok2xx}}}
	equaltest.EveryField(t, spec, func(a, b Spec) bool { return a.Equal(&b) }, others...)
	equaltest.EveryField(t, URL{Path: "/", Status: ok2xx}, URL.equal, others...)
	equaltest.EveryField(t, RealServer{Checks: []Spec{spec}}, func(a, b RealServer) bool { return a.Equal(&b) }, others...)
	equaltest.EveryField(t, VirtualServer{RealServers: []RealServer{{}}}, func(a, b VirtualServer) bool { return a.Equal(&b) }, others...)
}
