package ipvs

import (
	"testing"

	"github.com/gvs-lb/gvs/internal/equaltest"
)

// TestServiceEqualSeesEveryField: a reload edits a service whose
// configuration differs in any one field.
func TestServiceEqualSeesEveryField(t *testing.T) {
	equaltest.EveryField(t, Service{ServiceKey: ServiceKey{Proto: TCP, Port: 80}, Scheduler: "rr"},
		func(a, b Service) bool { return a.Equal(&b) }, ServiceKey{FWMark: 7})
}
