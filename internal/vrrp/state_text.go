package vrrp

import (
	"fmt"
	"slices"
)

// UnmarshalText reads a State back from its name, so clients such as
// gvsadm can decode Status.
func (s *State) UnmarshalText(b []byte) error {
	i := slices.Index(stateNames[:], string(b))
	if i < 0 {
		return fmt.Errorf("unknown VRRP state %q", b)
	}
	*s = State(i)
	return nil
}
