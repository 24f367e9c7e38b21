package equaltest

import (
	"net/netip"
	"strings"
	"testing"
)

type inner struct{ N int }

type sample struct {
	On    bool
	Name  string
	Count int8
	Port  uint16
	List  []int
	Ptr   *int
	Addr  netip.Addr
	Inner inner
}

func (a sample) equal(b sample) bool {
	if a.On != b.On || a.Name != b.Name || a.Count != b.Count || a.Port != b.Port ||
		a.Addr != b.Addr || a.Inner != b.Inner || len(a.List) != len(b.List) || (a.Ptr == nil) != (b.Ptr == nil) {
		return false
	}
	for i := range a.List {
		if a.List[i] != b.List[i] {
			return false
		}
	}
	return a.Ptr == nil || *a.Ptr == *b.Ptr
}

func TestEveryFieldPassesACompleteEqual(t *testing.T) {
	EveryField(t, sample{Name: "a"}, sample.equal, inner{N: 2})
}

func TestMissedNamesTheForgottenFields(t *testing.T) {
	forgets := func(a, b sample) bool { b.Port, b.Ptr = a.Port, a.Ptr; return a.equal(b) }
	missed, err := Missed(sample{}, forgets, inner{N: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(missed) != 2 || missed[0] != "Port" || missed[1] != "Ptr" {
		t.Fatalf("missed %v, want [Port Ptr]", missed)
	}
}

func TestMissedNeedsAValueForOtherStructs(t *testing.T) {
	if _, err := Missed(sample{}, sample.equal); err == nil || !strings.Contains(err.Error(), "equaltest.inner") {
		t.Fatalf("err %v, want one naming the struct type without a value", err)
	}
}
