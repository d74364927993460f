// Package httpcond reads the entity-tag conditions of RFC 9110 section
// 13.1 (If-Match, If-None-Match). The JSON contacts API and CardDAV serve
// the same contacts under the same tags, so they parse and compare them
// with the same code.
package httpcond

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/z5vrs/z5/internal/clip"
)

// VersionETag is the strong entity tag of a contact at version v: the
// version, quoted. Both APIs give a contact this tag, so a client may use
// the tag of one with the other.
func VersionETag(v int64) string { return `"` + strconv.FormatInt(v, 10) + `"` }

// ParseETags parses an If-Match or If-None-Match value: "*" or a list of
// entity tags. Weak tags keep their W/ prefix.
func ParseETags(v string) (tags []string, star bool, err error) {
	v = strings.TrimSpace(v)
	if v == "*" {
		return nil, true, nil
	}
	for v != "" {
		weak := strings.HasPrefix(v, "W/")
		rest := strings.TrimPrefix(v, "W/")
		if !strings.HasPrefix(rest, `"`) {
			return nil, false, fmt.Errorf("%q is not an entity tag; write it quoted, as the ETag header gave it (e.g. \"3\")", clip.String(v, 40))
		}
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			return nil, false, fmt.Errorf("unterminated entity tag %q", clip.String(v, 40))
		}
		tag := rest[:end+2]
		if weak {
			tag = "W/" + tag
		}
		tags = append(tags, tag)
		v = strings.TrimSpace(rest[end+2:])
		if v == "" {
			break
		}
		if v[0] != ',' {
			return nil, false, fmt.Errorf("entity tags must be separated by ',' at %q", clip.String(v, 40))
		}
		v = strings.TrimSpace(v[1:])
	}
	if len(tags) == 0 {
		return nil, false, errors.New("empty entity tag list")
	}
	return tags, false, nil
}

// MatchWeak is If-None-Match's weak comparison (RFC 9110 section 13.1.2):
// whether any of tags names etag, W/ or not.
func MatchWeak(tags []string, etag string) bool {
	for _, t := range tags {
		if strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// NoneMatch reports whether r's If-None-Match lets a GET of the
// representation tagged current through (true: answer normally; false:
// 304). A malformed condition is ignored.
func NoneMatch(r *http.Request, current string) bool {
	v := r.Header.Get("If-None-Match")
	if v == "" {
		return true
	}
	tags, star, err := ParseETags(v)
	if err != nil {
		return true
	}
	return !star && !MatchWeak(tags, current)
}
