package httpcond

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseETags(t *testing.T) {
	for _, tc := range []struct {
		in   string
		tags []string
		star bool
		err  string // a substring of the error; "" = no error
	}{
		{`*`, nil, true, ""},
		{` * `, nil, true, ""},
		{`"3"`, []string{`"3"`}, false, ""},
		{`"3", W/"4" ,"rev-7"`, []string{`"3"`, `W/"4"`, `"rev-7"`}, false, ""},
		{`"a,b"`, []string{`"a,b"`}, false, ""},
		{`3`, nil, false, "is not an entity tag"},
		{`"3`, nil, false, "unterminated entity tag"},
		{`"3" "4"`, nil, false, "separated by ','"},
		{``, nil, false, "empty entity tag list"},
		{`"3",`, []string{`"3"`}, false, ""},
		{strings.Repeat("x", 100), nil, false, `"` + strings.Repeat("x", 40) + `..."`},
	} {
		tags, star, err := ParseETags(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseETags(%q): error %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseETags(%q): %v", tc.in, err)
			continue
		}
		if d := cmp.Diff(tc.tags, tags); d != "" || star != tc.star {
			t.Errorf("ParseETags(%q): star %v, tags (-want +got):\n%s", tc.in, star, d)
		}
	}
}

func TestNoneMatch(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool // true: serve; false: 304
	}{
		{"", true},
		{`"3"`, false},
		{`W/"3"`, false},
		{`"2", "3"`, false},
		{`"4"`, true},
		{`*`, false},
		{`not-a-tag`, true}, // malformed: ignored
	} {
		r := httptest.NewRequest("GET", "/", nil)
		if tc.header != "" {
			r.Header.Set("If-None-Match", tc.header)
		}
		if got := NoneMatch(r, VersionETag(3)); got != tc.want {
			t.Errorf("If-None-Match %q against %s: %v, want %v", tc.header, VersionETag(3), got, tc.want)
		}
	}
}
