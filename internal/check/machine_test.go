package check

import (
	"strings"
	"testing"
)

// TestMachine feeds outcomes ("+" success, "-" failure) and checks each
// step: "r" retry after delay_before_retry, "U"/"D" a verdict that changed
// the state (or the first verdict), "u"/"d" a verdict that kept it.
func TestMachine(t *testing.T) {
	tests := []struct {
		name     string
		typ      Type
		retry    int
		alpha    bool
		outcomes string
		want     string
	}{
		{name: "first success reported", typ: TCP, retry: 1, outcomes: "++", want: "Uu"},
		{name: "no retry: one failure is down", typ: TCP, retry: 0, outcomes: "+-", want: "UD"},
		{name: "retry 3: down after 4 failures", typ: TCP, retry: 3, outcomes: "+----", want: "UrrrD"},
		{name: "a success between resets the retries", typ: TCP, retry: 2, outcomes: "+--+---", want: "UrrurrD"},
		{name: "up again at the first success", typ: TCP, retry: 2, outcomes: "+---+", want: "UrrDU"},
		{name: "TCP retries while down", typ: TCP, retry: 1, outcomes: "+-----", want: "UrDrdr"},
		{name: "MISC does not retry while down", typ: MISC, retry: 1, outcomes: "+----", want: "UrDdd"},
		{name: "DNS does not retry while down", typ: DNS, retry: 2, outcomes: "+------", want: "UrrDddd"},
		{name: "alpha starts down, first failure still retried", typ: TCP, retry: 1, alpha: true, outcomes: "--+", want: "rDU"},
		{name: "alpha: first success is up", typ: TCP, retry: 1, alpha: true, outcomes: "+", want: "U"},
		{name: "never run, fails: first verdict reported", typ: MISC, retry: 0, outcomes: "-+", want: "DU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := defaultSpec(tt.typ)
			s.Retry, s.Alpha = tt.retry, tt.alpha
			m := newMachine(&s)
			var got strings.Builder
			for _, o := range tt.outcomes {
				st := m.step(o == '+')
				switch {
				case st.retry:
					got.WriteByte('r')
				case !st.verdict:
					t.Fatal("a step that is neither a retry nor a verdict")
				default:
					c := byte('d')
					if m.up {
						c = 'u'
					}
					if st.changed {
						c -= 'a' - 'A'
					}
					got.WriteByte(c)
				}
			}
			if got.String() != tt.want {
				t.Errorf("steps %q, want %q", got.String(), tt.want)
			}
		})
	}
}
