// Package equaltest holds a struct's Equal method to every field: a
// reload compares the running configuration with the new one by such
// methods, so a field added later and forgotten there would be a change
// that a reload silently ignores.
package equaltest

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
)

// EveryField fails t unless equal(v, v) holds and equal tells v apart from
// each copy of v with one field changed (see Missed).
func EveryField[T any](t *testing.T, v T, equal func(a, b T) bool, others ...any) {
	t.Helper()
	missed, err := Missed(v, equal, others...)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range missed {
		t.Errorf("%T's Equal misses a change of %s", v, field)
	}
}

// Missed returns the fields of v (a struct) whose change equal does not
// see, with "itself" first when equal(v, v) does not even hold. Fields of
// struct types other than netip.Addr and netip.AddrPort take their other
// value from others: one value of that type, different from v's.
func Missed[T any](v T, equal func(a, b T) bool, others ...any) ([]string, error) {
	var missed []string
	if !equal(v, v) {
		missed = append(missed, "itself")
	}
	rv := reflect.ValueOf(v)
	for i := range rv.NumField() {
		c := reflect.New(rv.Type()).Elem()
		c.Set(rv)
		field := rv.Type().Field(i).Name
		if !change(c.Field(i), others) {
			return nil, fmt.Errorf("%T.%s: no other value for %s; pass one to EveryField", v, field, c.Field(i).Type())
		}
		if equal(v, c.Interface().(T)) {
			missed = append(missed, field)
		}
	}
	return missed, nil
}

// change sets f to a value other than its own, and reports whether it
// knew one.
func change(f reflect.Value, others []any) bool {
	switch f.Kind() {
	case reflect.Bool:
		f.SetBool(!f.Bool())
	case reflect.String:
		f.SetString(f.String() + "x")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		f.SetInt(f.Int() + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		f.SetUint(f.Uint() + 1)
	case reflect.Slice:
		f.Set(reflect.Append(f, reflect.New(f.Type().Elem()).Elem()))
	case reflect.Pointer:
		if f.IsNil() {
			f.Set(reflect.New(f.Type().Elem()))
		} else {
			f.SetZero()
		}
	case reflect.Struct:
		for _, o := range append([]any{netip.MustParseAddr("198.18.0.9"), netip.MustParseAddrPort("198.18.0.9:1")}, others...) {
			if ov := reflect.ValueOf(o); ov.Type() == f.Type() {
				f.Set(ov)
				return true
			}
		}
		return false
	default:
		return false
	}
	return true
}
