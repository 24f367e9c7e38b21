package ipvssync

import (
	"encoding/hex"
	"reflect"
	"strings"
	"testing"
)

// FuzzUnmarshal: no datagram makes Unmarshal panic, and what it accepts
// packs back to a message that decodes to the same entries.
func FuzzUnmarshal(f *testing.F) {
	seed, _ := hex.DecodeString(strings.ReplaceAll(kernelV4, " ", ""))
	f.Add(seed)
	f.Add(withOption(seed, optSeqData, seqOptLen))
	f.Add(withOption(seed, 9, 1))
	f.Add([]byte{0, 0, 0, 8, 0, 1, 0, 0})
	f.Add([]byte{0, 0, 0, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, _, err := Unmarshal(b)
		if err != nil {
			return
		}
		var again []Conn
		for _, msg := range Pack(m.SyncID, 65000, m.Conns) {
			m2, skipped, err := Unmarshal(msg)
			if err != nil || skipped != 0 {
				t.Fatalf("re-packed message fails: %v (skipped %d)", err, skipped)
			}
			again = append(again, m2.Conns...)
		}
		if len(m.Conns) > 0 && !reflect.DeepEqual(again, m.Conns) {
			t.Fatalf("re-packed entries differ:\n got %+v\nwant %+v", again, m.Conns)
		}
	})
}
