package check

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/script"
)

// differ returns a copy of v (a struct) with field i set to a value other
// than its zero.
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
	case reflect.Int, reflect.Int64:
		f.SetInt(f.Int() + 1)
	case reflect.Uint16, reflect.Uint32:
		f.SetUint(f.Uint() + 1)
	case reflect.Slice:
		f.Set(reflect.Append(f, reflect.New(f.Type().Elem()).Elem()))
	case reflect.Pointer:
		f.Set(reflect.New(f.Type().Elem()))
	case reflect.Struct:
		switch f.Interface().(type) {
		case netip.AddrPort:
			f.Set(reflect.ValueOf(netip.MustParseAddrPort("198.18.0.9:1")))
		case netip.Addr:
			f.Set(reflect.ValueOf(netip.MustParseAddr("198.18.0.9")))
		case script.Cmd:
			f.Set(reflect.ValueOf(script.Cmd{Line: "/bin/true"}))
		case ipvs.ServiceKey:
			f.Set(reflect.ValueOf(ipvs.ServiceKey{FWMark: 7}))
		case ipvs.Dest:
			f.Set(reflect.ValueOf(ipvs.Dest{Weight: 9}))
		default:
			t.Fatalf("field %s: no different value for %s", v.Type().Field(i).Name, f.Type())
		}
	default:
		t.Fatalf("field %s: no different value for %s", v.Type().Field(i).Name, f.Type())
	}
	return c
}

// TestEqualSeesEveryField: each Equal method tells apart two values that
// differ in any one field, so a field added later cannot be forgotten by
// a reload's comparison.
func TestEqualSeesEveryField(t *testing.T) {
	spec := Spec{Type: HTTP, DelayLoop: time.Second, URLs: []URL{{Path: "/"}}}
	eq := map[string]struct {
		v     any
		equal func(a, b reflect.Value) bool
	}{
		"Spec": {spec, func(a, b reflect.Value) bool {
			x, y := a.Interface().(Spec), b.Interface().(Spec)
			return x.Equal(&y)
		}},
		"URL": {URL{Path: "/"}, func(a, b reflect.Value) bool { return a.Interface().(URL).equal(b.Interface().(URL)) }},
		"RealServer": {RealServer{Checks: []Spec{spec}}, func(a, b reflect.Value) bool {
			x, y := a.Interface().(RealServer), b.Interface().(RealServer)
			return x.Equal(&y)
		}},
		"VirtualServer": {VirtualServer{RealServers: []RealServer{{}}}, func(a, b reflect.Value) bool {
			x, y := a.Interface().(VirtualServer), b.Interface().(VirtualServer)
			return x.Equal(&y)
		}},
	}
	for name, tt := range eq {
		v := reflect.ValueOf(tt.v)
		if !tt.equal(v, v) {
			t.Errorf("%s: a value is not Equal to itself", name)
		}
		for i := 0; i < v.NumField(); i++ {
			t.Run(name+"."+v.Type().Field(i).Name, func(t *testing.T) {
				if tt.equal(v, differ(t, v, i)) {
					t.Errorf("%s.Equal misses a change of %s", name, v.Type().Field(i).Name)
				}
			})
		}
	}
}
