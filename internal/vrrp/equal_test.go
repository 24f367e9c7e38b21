package vrrp

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/script"
)

// differ returns a copy of v (a struct) with field i set to another
// value.
func differ(t *testing.T, v reflect.Value, i int) reflect.Value {
	t.Helper()
	c := reflect.New(v.Type()).Elem()
	c.Set(v)
	f := c.Field(i)
	switch f.Kind() {
	case reflect.Bool:
		f.SetBool(!f.Bool())
	case reflect.String:
		f.SetString(f.String() + "x")
	case reflect.Int, reflect.Int64, reflect.Int8:
		f.SetInt(f.Int() + 1)
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		f.SetUint(f.Uint() + 1)
	case reflect.Slice:
		f.Set(reflect.Append(f, reflect.New(f.Type().Elem()).Elem()))
	case reflect.Struct:
		switch f.Interface().(type) {
		case netip.Addr:
			f.Set(reflect.ValueOf(netip.MustParseAddr("198.18.0.9")))
		case script.Cmd:
			f.Set(reflect.ValueOf(script.Cmd{Line: "/bin/true"}))
		default:
			t.Fatalf("field %s: no other value for %s", v.Type().Field(i).Name, f.Type())
		}
	default:
		t.Fatalf("field %s: no other value for %s", v.Type().Field(i).Name, f.Type())
	}
	return c
}

// TestEqualSeesEveryField: each Equal method tells apart two values that
// differ in any one field, so a reload restarts what changed.
func TestEqualSeesEveryField(t *testing.T) {
	w := 3
	ic := InstanceConfig{Name: "VI_1", TrackScripts: []TrackRef{{Name: "a", Weight: &w}}}
	tests := map[string]struct {
		v     any
		equal func(a, b reflect.Value) bool
	}{
		"InstanceConfig": {ic, func(a, b reflect.Value) bool {
			x, y := a.Interface().(InstanceConfig), b.Interface().(InstanceConfig)
			return x.Equal(&y)
		}},
		"TrackRef": {TrackRef{Name: "a", Weight: &w}, func(a, b reflect.Value) bool {
			return a.Interface().(TrackRef).equal(b.Interface().(TrackRef))
		}},
		"SyncGroup": {SyncGroup{Name: "G"}, func(a, b reflect.Value) bool {
			x, y := a.Interface().(SyncGroup), b.Interface().(SyncGroup)
			return x.Equal(&y)
		}},
		"TrackScript": {TrackScript{Name: "s", Interval: time.Second}, func(a, b reflect.Value) bool {
			x, y := a.Interface().(TrackScript), b.Interface().(TrackScript)
			return x.Equal(&y)
		}},
		"TrackProcess": {TrackProcess{Name: "p"}, func(a, b reflect.Value) bool {
			x, y := a.Interface().(TrackProcess), b.Interface().(TrackProcess)
			return x.Equal(&y)
		}},
	}
	for name, tt := range tests {
		v := reflect.ValueOf(tt.v)
		if !tt.equal(v, v) {
			t.Errorf("%s: a value is not Equal to itself", name)
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Field(i).Kind() == reflect.Pointer {
				continue // TrackRef's weight: compared by value below
			}
			t.Run(name+"."+v.Type().Field(i).Name, func(t *testing.T) {
				if tt.equal(v, differ(t, v, i)) {
					t.Errorf("%s.Equal misses a change of %s", name, v.Type().Field(i).Name)
				}
			})
		}
	}
	other, same := 4, 3
	if (TrackRef{Name: "a", Weight: &w}).equal(TrackRef{Name: "a", Weight: &other}) ||
		!(TrackRef{Name: "a", Weight: &w}).equal(TrackRef{Name: "a", Weight: &same}) ||
		(TrackRef{Name: "a", Weight: &w}).equal(TrackRef{Name: "a"}) {
		t.Error("TrackRef.equal does not compare weights by value")
	}
}
