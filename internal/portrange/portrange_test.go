package portrange

import "testing"

func TestRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Range
		ok   bool
		out  string
	}{
		{"10000-65535", Range{10000, 65535}, true, "10000-65535"},
		{" 5060 ", Range{5060, 5060}, true, "5060"},
		{"20000 - 20010", Range{20000, 20010}, true, "20000-20010"},
		{"x-1", Range{}, false, ""},
		{"1-y", Range{}, false, ""},
		{"", Range{}, false, ""},
	} {
		var r Range
		err := r.UnmarshalText([]byte(tc.in))
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v", tc.in, err)
			continue
		}
		if !tc.ok {
			continue
		}
		if r != tc.want {
			t.Errorf("%q: %+v, want %+v", tc.in, r, tc.want)
		}
		if b, _ := r.MarshalText(); string(b) != tc.out {
			t.Errorf("%q: marshals to %q, want %q", tc.in, b, tc.out)
		}
	}
	if n := (Range{10000, 10009}).Size(); n != 10 {
		t.Errorf("size %d", n)
	}
	if Single(53) != (Range{53, 53}) {
		t.Error("Single")
	}
}
