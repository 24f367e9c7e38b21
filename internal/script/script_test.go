package script

import (
	"os"
	"slices"
	"testing"
)

func TestSysProcAttr(t *testing.T) {
	self := &Credential{UID: uint32(os.Geteuid()), GID: uint32(os.Getegid())}
	tests := []struct {
		name     string
		cmd      Cmd
		switches bool // a credential is set
	}{
		{"no user: as gvsd", Cmd{Line: "true"}, false},
		{"another user", Cmd{Line: "true", RunAs: &Credential{UID: 65534, GID: 65533}}, true},
		// root sets its own ids too, to drop its supplementary groups as
		// keepalived does; an unprivileged gvsd cannot and needs not.
		{"gvsd's own user", Cmd{Line: "true", RunAs: self}, os.Geteuid() == 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.cmd.SysProcAttr()
			if !a.Setpgid {
				t.Error("not in its own process group")
			}
			if got := a.Credential != nil; got != tt.switches {
				t.Fatalf("credential %+v, want one: %v", a.Credential, tt.switches)
			}
			if c := a.Credential; c != nil {
				r := tt.cmd.RunAs
				if c.Uid != r.UID || c.Gid != r.GID || !slices.Equal(c.Groups, []uint32{r.GID}) || c.NoSetGroups {
					t.Errorf("credential %+v, want %d:%d with groups [%d]", c, r.UID, r.GID, r.GID)
				}
			}
		})
	}
}
