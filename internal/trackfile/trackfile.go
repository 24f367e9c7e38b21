// Package trackfile reads keepalived's track files: a file holding one
// number that VRRP instances (track_file) and real servers (FILE_CHECK)
// track. vrrp and check share it so both read a file the same way.
package trackfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
)

// maxRead is how much of a file is read, as keepalived (127 bytes).
const maxRead = 127

// Read returns the number at the start of the file at path, read as C's
// strtol with base 0 does: leading white space, a sign, then decimal,
// 0x hexadecimal or 0 octal digits, anything after them ignored. A
// missing, unreadable or empty file, or one without digits, reads as 0.
// ok is false when the number is outside the 32-bit range keepalived
// accepts: the caller keeps its previous value, as keepalived does.
func Read(path string) (v int64, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, true
	}
	defer f.Close()
	buf := make([]byte, maxRead)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return 0, true
	}
	return Parse(buf[:n])
}

// Parse reads a track file's contents; see Read.
func Parse(b []byte) (v int64, ok bool) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] >= '\t' && b[i] <= '\r') {
		i++
	}
	start := i
	if i < len(b) && (b[i] == '+' || b[i] == '-') {
		i++
	}
	base := 10
	switch {
	case i+1 < len(b) && b[i] == '0' && (b[i+1] == 'x' || b[i+1] == 'X') && i+2 < len(b) && isDigit(b[i+2], 16):
		base = 16
		i += 2
	case i < len(b) && b[i] == '0':
		base = 8
	}
	j := i
	for j < len(b) && isDigit(b[j], base) {
		j++
	}
	if j == i {
		return 0, true
	}
	u, err := strconv.ParseUint(string(b[i:j]), base, 64)
	if err != nil || u > 1<<32 {
		return 0, false
	}
	v = int64(u)
	if b[start] == '-' {
		v = -v
	}
	if v < math.MinInt32 || v > math.MaxInt32+1 {
		return 0, false
	}
	return v, true
}

func isDigit(c byte, base int) bool {
	switch {
	case c >= '0' && c <= '7':
		return true
	case c == '8' || c == '9':
		return base >= 10
	case c >= 'a' && c <= 'f', c >= 'A' && c <= 'F':
		return base == 16
	}
	return false
}

// Init is init_file: it writes value to the file at path when the file
// does not exist, or always with overwrite. The directory must exist.
func Init(path string, value int64, overwrite bool) error {
	if !overwrite {
		if _, err := os.Stat(path); err == nil {
			return nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("track file %s: %w", path, err)
		}
	}
	if err := os.WriteFile(path, []byte(strconv.FormatInt(value, 10)+"\n"), 0o644); err != nil {
		return fmt.Errorf("track file %s: init_file: %w (does its directory exist?)", path, err)
	}
	return nil
}

// Status is how a track file's value v counts for a tracker with that
// weight, as keepalived reckons it: with weight 0, a non-zero value (a
// zero one with reverse) is a failure; otherwise the value times the
// weight, negated with reverse, is the delta, clamped to the int32
// range.
func Status(v int64, weight int, reverse bool) (delta int64, failed bool) {
	if weight == 0 {
		return 0, (v != 0) != reverse
	}
	d := v * int64(weight)
	if reverse {
		d = -d
	}
	return min(max(d, math.MinInt32), math.MaxInt32), false
}
