// Package guest holds the end-to-end tests that run inside the IPVS VM
// (see test/ipvsvm): gvsd --engine ipvs on a real IPVS kernel, next to the
// real ipvsadm and keepalived. Outside the VM they skip.
package guest

import (
	"os"
	"testing"
)

func requireVM(t *testing.T) {
	t.Helper()
	if os.Getenv("GVS_IPVS_VM") == "" {
		t.Skip("runs inside the IPVS VM: go test ./test/ipvsvm")
	}
}

func TestPlaceholder(t *testing.T) { requireVM(t) }
