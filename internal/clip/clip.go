// Package clip shortens text quoted back in error messages and logs, so
// an echo of client input stays short and valid UTF-8.
package clip

import "unicode/utf8"

// String is s cut to at most n bytes at a rune boundary, with "..."
// appended when anything was cut.
func String(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
