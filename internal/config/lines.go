package config

import (
	"regexp"
	"strconv"
	"strings"
)

// lineIndex maps key paths such as "site[1].node[0].address" to the line
// they are written on. The TOML decoder keeps key positions private, so a
// small line scanner recovers them for validation errors.
type lineIndex map[string]int

var (
	reArrayTable = regexp.MustCompile(`^\[\[\s*([^\]]+?)\s*\]\]`)
	reTable      = regexp.MustCompile(`^\[\s*([^\]]+?)\s*\]`)
	reKey        = regexp.MustCompile(`^([A-Za-z0-9_.\-"' ]+?)\s*=`)
)

func keyLines(src []byte) lineIndex {
	idx := lineIndex{}
	counts := map[string]int{} // array-table path -> entries seen
	current := ""
	// resolve turns "site.node" into "site[2].node" using the latest index of
	// each enclosing array table.
	resolve := func(dotted string) string {
		parts := strings.Split(dotted, ".")
		path := ""
		for i, p := range parts {
			p = strings.Trim(strings.TrimSpace(p), `"'`)
			if path != "" {
				path += "."
			}
			path += p
			if n, ok := counts[path]; ok && i < len(parts)-1 {
				path += "[" + strconv.Itoa(n-1) + "]"
			}
		}
		return path
	}
	for i, raw := range strings.Split(string(src), "\n") {
		line := strings.TrimSpace(raw)
		switch {
		case line == "" || line[0] == '#':
		case reArrayTable.MatchString(line):
			p := resolve(reArrayTable.FindStringSubmatch(line)[1])
			counts[p]++
			current = p + "[" + strconv.Itoa(counts[p]-1) + "]"
			idx.set(current, i+1)
			idx.set(p, i+1)
		case reTable.MatchString(line):
			current = resolve(reTable.FindStringSubmatch(line)[1])
			idx.set(current, i+1)
		case reKey.MatchString(line):
			k := strings.Trim(strings.TrimSpace(reKey.FindStringSubmatch(line)[1]), `"'`)
			if current != "" {
				k = current + "." + k
			}
			idx.set(k, i+1)
		}
	}
	return idx
}

func (idx lineIndex) set(k string, line int) {
	if _, ok := idx[k]; !ok {
		idx[k] = line
	}
}

// lookup finds the line of key, or of its nearest enclosing table.
func (idx lineIndex) lookup(key string) int {
	for key != "" {
		if l, ok := idx[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

var reIndex = regexp.MustCompile(`\[\d+\]`)

// find locates a key given without array indices (as the decoder reports
// undecoded keys): the first place it appears.
func (idx lineIndex) find(parts ...string) int {
	want := strings.Join(parts, ".")
	best := 0
	for k, l := range idx {
		if reIndex.ReplaceAllString(k, "") == want && (best == 0 || l < best) {
			best = l
		}
	}
	return best
}
