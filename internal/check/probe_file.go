package check

import (
	"fmt"

	"github.com/gvs-lb/gvs/internal/trackfile"
)

// probeFile reads a FILE_CHECK's track file. With weight 0 a non-zero
// number (a zero one with reverse) fails the real server; otherwise the
// server stays up and the number times the weight (negated with
// reverse) is its weight change, delta. A number out of keepalived's
// range is ignored: the last value stands.
func (c *Checker) probeFile() (delta int64, err error) {
	v, ok := trackfile.Read(c.spec.TrackFile)
	c.mu.Lock()
	if ok {
		c.fileValue = v
	} else {
		v = c.fileValue
	}
	c.mu.Unlock()
	delta, failed := trackfile.Status(v, c.spec.FileWeight, c.spec.FileReverse)
	if failed {
		return 0, fmt.Errorf("track file %s holds %d", c.spec.TrackFile, v)
	}
	return delta, nil
}
