package sqlstore

import (
	"testing"
	"time"
)

// TestTimeCol: both databases' time columns read back as the same
// time.Time, in UTC, with every spelling of "never" the zero time.
func TestTimeCol(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 678901234, time.UTC)
	east := time.FixedZone("east", 3600)
	for _, tt := range []struct {
		name string
		in   any
		want time.Time
	}{
		{"sqlite never", int64(0), time.Time{}},
		{"sqlite time", at.UnixNano(), at},
		{"postgres never", nil, time.Time{}},
		{"postgres time", at.In(east), at},
		{"postgres zero time", time.Time{}.In(east), time.Time{}},
		{"postgres infinity", "infinity", time.Time{}},
		{"postgres -infinity", "-infinity", time.Time{}},
	} {
		got := time.Now() // a value Scan must overwrite
		if err := (timeCol{&got}).Scan(tt.in); err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !got.Equal(tt.want) || got.IsZero() != tt.want.IsZero() || got.Location() != time.UTC {
			t.Errorf("%s: Scan(%v) = %v, want %v in UTC", tt.name, tt.in, got, tt.want)
		}
	}
	for _, bad := range []any{"tomorrow", 1.5, []byte("x")} {
		var got time.Time
		if err := (timeCol{&got}).Scan(bad); err == nil {
			t.Errorf("Scan(%#v) accepted", bad)
		}
	}
}
