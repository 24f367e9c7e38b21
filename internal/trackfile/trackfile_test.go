package trackfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRead(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content *string // nil: no file
		want    int64
		wantOK  bool
	}{
		{name: "missing file", want: 0, wantOK: true},
		{name: "empty", content: ptr(""), want: 0, wantOK: true},
		{name: "decimal with newline", content: ptr("42\n"), want: 42, wantOK: true},
		{name: "negative", content: ptr("  -7 down"), want: -7, wantOK: true},
		{name: "plus sign", content: ptr("+3"), want: 3, wantOK: true},
		{name: "hex", content: ptr("0x1f"), want: 31, wantOK: true},
		{name: "octal", content: ptr("010"), want: 8, wantOK: true},
		{name: "zero", content: ptr("0"), want: 0, wantOK: true},
		{name: "garbage reads as 0", content: ptr("up"), want: 0, wantOK: true},
		{name: "trailing garbage", content: ptr("12abc"), want: 12, wantOK: true},
		{name: "int32 max + 1", content: ptr("2147483648"), want: 2147483648, wantOK: true},
		{name: "int32 min", content: ptr("-2147483648"), want: -2147483648, wantOK: true},
		{name: "too big is ignored", content: ptr("2147483649"), wantOK: false},
		{name: "too small is ignored", content: ptr("-2147483649"), wantOK: false},
		{name: "huge is ignored", content: ptr("99999999999999999999999"), wantOK: false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, "f"+string(rune('a'+i)))
			if tt.content != nil {
				if err := os.WriteFile(path, []byte(*tt.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, ok := Read(path)
			if ok != tt.wantOK || ok && got != tt.want {
				t.Errorf("Read = %d, %v; want %d, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestInit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flag")
	if err := Init(path, 5, false); err != nil {
		t.Fatal(err)
	}
	if v, _ := Read(path); v != 5 {
		t.Errorf("after init_file 5: %d", v)
	}
	if err := Init(path, 9, false); err != nil {
		t.Fatal(err)
	}
	if v, _ := Read(path); v != 5 {
		t.Errorf("init_file without overwrite changed an existing file: %d", v)
	}
	if err := Init(path, 9, true); err != nil {
		t.Fatal(err)
	}
	if v, _ := Read(path); v != 9 {
		t.Errorf("init_file overwrite: %d", v)
	}
	if err := Init(filepath.Join(dir, "nodir", "f"), 0, false); err == nil {
		t.Error("init_file in a missing directory: no error")
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name       string
		v          int64
		weight     int
		reverse    bool
		wantDelta  int64
		wantFailed bool
	}{
		{name: "weight 0, value 0", v: 0},
		{name: "weight 0, value 1 fails", v: 1, wantFailed: true},
		{name: "weight 0 reverse, value 0 fails", v: 0, reverse: true, wantFailed: true},
		{name: "weight 0 reverse, value 3", v: 3, reverse: true},
		{name: "weight 10", v: 3, weight: 10, wantDelta: 30},
		{name: "weight 10 reverse", v: 3, weight: 10, reverse: true, wantDelta: -30},
		{name: "negative weight", v: 2, weight: -5, wantDelta: -10},
		{name: "clamped", v: 1 << 31, weight: 65535, wantDelta: 1<<31 - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, f := Status(tt.v, tt.weight, tt.reverse)
			if d != tt.wantDelta || f != tt.wantFailed {
				t.Errorf("Status = %d, %v; want %d, %v", d, f, tt.wantDelta, tt.wantFailed)
			}
		})
	}
}

func ptr(s string) *string { return &s }
