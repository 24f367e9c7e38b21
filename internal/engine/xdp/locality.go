package xdp

import (
	"errors"

	"github.com/cilium/ebpf"
)

// purgeLocality drops what the lblc/lblcr table (bpf/xdp_locality.h)
// remembers of real servers whose slots were freed and of services whose
// index was released, so that a slot or index used again does not
// inherit another server's or service's addresses.
func (e *Engine) purgeLocality(dests, svcs map[uint32]bool) {
	if len(dests) == 0 && len(svcs) == 0 {
		return
	}
	var (
		k      lbLocalityKey
		v      lbLocalityVal
		gone   []lbLocalityKey
		change []lbLocalityKey
		vals   []lbLocalityVal
	)
	it := e.objs.Locality.Iterate()
	for it.Next(&k, &v) {
		if svcs[k.Svc] {
			gone = append(gone, k)
			continue
		}
		kept := v
		kept.N = 0
		for _, idx := range v.Set[:min(int(v.N), len(v.Set))] {
			if !dests[uint32(idx)] {
				kept.Set[kept.N] = idx
				kept.N++
			}
		}
		switch {
		case kept.N == 0:
			gone = append(gone, k)
		case kept.N != v.N:
			change = append(change, k)
			vals = append(vals, kept)
		}
	}
	if err := it.Err(); err != nil {
		e.log.Warn("walking the lblc/lblcr table", "error", err)
	}
	for i := range gone {
		if err := e.objs.Locality.Delete(&gone[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			e.log.Warn("purging the lblc/lblcr table", "error", err)
		}
	}
	for i := range change {
		e.objs.Locality.Update(&change[i], &vals[i], ebpf.UpdateExist)
	}
}
