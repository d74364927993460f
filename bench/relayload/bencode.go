package main

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
)

// The ng control protocol carries bencode (BEP 3): integers i42e, byte
// strings 4:spam, lists l...e and dictionaries d...e with sorted keys.
// Values decode to int64, string, []any and map[string]any.

var errBencode = errors.New("bencode")

// bencode appends the encoding of v.
func bencode(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case int:
		return bencode(b, int64(x))
	case int64:
		b = strconv.AppendInt(append(b, 'i'), x, 10)
		return append(b, 'e'), nil
	case string:
		b = strconv.AppendInt(b, int64(len(x)), 10)
		return append(append(b, ':'), x...), nil
	case []byte:
		b = strconv.AppendInt(b, int64(len(x)), 10)
		return append(append(b, ':'), x...), nil
	case []string:
		b = append(b, 'l')
		for _, s := range x {
			b, _ = bencode(b, s)
		}
		return append(b, 'e'), nil
	case []any:
		b = append(b, 'l')
		for _, e := range x {
			var err error
			if b, err = bencode(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, 'e'), nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b = append(b, 'd')
		for _, k := range keys {
			b, _ = bencode(b, k)
			var err error
			if b, err = bencode(b, x[k]); err != nil {
				return nil, err
			}
		}
		return append(b, 'e'), nil
	}
	return nil, fmt.Errorf("%w: cannot encode %T", errBencode, v)
}

// bdecode decodes one value from the start of b and returns the rest.
func bdecode(b []byte, depth int) (any, []byte, error) {
	if depth > 32 {
		return nil, nil, fmt.Errorf("%w: nested deeper than 32", errBencode)
	}
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: unexpected end", errBencode)
	}
	switch c := b[0]; {
	case c == 'i':
		end := bytes.IndexByte(b, 'e')
		if end < 0 {
			return nil, nil, fmt.Errorf("%w: unterminated integer", errBencode)
		}
		n, err := strconv.ParseInt(string(b[1:end]), 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: integer %q", errBencode, b[1:end])
		}
		return n, b[end+1:], nil
	case c >= '0' && c <= '9':
		colon := bytes.IndexByte(b, ':')
		if colon < 0 {
			return nil, nil, fmt.Errorf("%w: string without length", errBencode)
		}
		n, err := strconv.Atoi(string(b[:colon]))
		if err != nil || n < 0 || n > len(b)-colon-1 {
			return nil, nil, fmt.Errorf("%w: string length %q", errBencode, b[:colon])
		}
		rest := b[colon+1:]
		return string(rest[:n]), rest[n:], nil
	case c == 'l':
		var out []any
		rest := b[1:]
		for len(rest) > 0 && rest[0] != 'e' {
			v, r, err := bdecode(rest, depth+1)
			if err != nil {
				return nil, nil, err
			}
			out, rest = append(out, v), r
		}
		if len(rest) == 0 {
			return nil, nil, fmt.Errorf("%w: unterminated list", errBencode)
		}
		return out, rest[1:], nil
	case c == 'd':
		out := map[string]any{}
		rest := b[1:]
		for len(rest) > 0 && rest[0] != 'e' {
			k, r, err := bdecode(rest, depth+1)
			if err != nil {
				return nil, nil, err
			}
			ks, ok := k.(string)
			if !ok {
				return nil, nil, fmt.Errorf("%w: dictionary key is %T", errBencode, k)
			}
			v, r, err := bdecode(r, depth+1)
			if err != nil {
				return nil, nil, err
			}
			out[ks], rest = v, r
		}
		if len(rest) == 0 {
			return nil, nil, fmt.Errorf("%w: unterminated dictionary", errBencode)
		}
		return out, rest[1:], nil
	}
	return nil, nil, fmt.Errorf("%w: unexpected byte %q", errBencode, b[0])
}

// decodeDict decodes a whole message that must be one dictionary.
func decodeDict(b []byte) (map[string]any, error) {
	v, rest, err := bdecode(b, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", errBencode, len(rest))
	}
	d, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: message is %T, not a dictionary", errBencode, v)
	}
	return d, nil
}
