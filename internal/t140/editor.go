package t140

import (
	"time"
	"unicode/utf8"
)

// T.140 characters with a meaning of their own.
const (
	Backspace     = '\u0008' // erases the last character
	LineSeparator = '\u2028' // new line (T.140 5.2); CR LF is taken too
	BOM           = '\uFEFF' // zero width no-break space: a keepalive, ignored
	esc           = 0x1b
	csi           = '\u009b'
)

// Op is one change to what a reader sees.
type Op struct {
	Kind OpKind
	Rune rune // for Insert
}

// OpKind says what an Op does.
type OpKind uint8

const (
	Insert  OpKind = iota // add Rune at the end of the line
	Erase                 // remove the line's last character
	NewLine               // end the line
)

// Line is a finished line of text and when its first character came.
type Line struct {
	Text string
	At   time.Time
}

// Editor applies the T.140 presentation rules to a stream of text:
// backspace erases the last character of the current line (a finished
// line is not reopened, so a terminal and a transcript agree), U+2028,
// CR LF, CR, LF, NEL and U+2029 end the line, the BOM is dropped, and
// other control characters and control sequences (ESC [ ... final,
// which T.140 uses for graphic rendition) are dropped rather than passed
// to a terminal. Invalid UTF-8 shows as U+FFFD. Not safe for concurrent use.
type Editor struct {
	line   []rune
	at     time.Time
	cr     bool // the last character was CR: a following LF is the same new line
	escape int  // 1: after ESC; 2: inside a control sequence
}

// Feed applies text that arrived at at and returns the changes to show
// and the lines it finished.
func (e *Editor) Feed(text []byte, at time.Time) (ops []Op, lines []Line) {
	for len(text) > 0 {
		r, size := utf8.DecodeRune(text)
		text = text[size:]
		cr := e.cr
		e.cr = false
		switch {
		case e.escape == 1:
			e.escape = 0
			if r == '[' {
				e.escape = 2
			}
			continue
		case e.escape == 2:
			if r >= 0x40 && r <= 0x7e {
				e.escape = 0
			}
			continue
		}
		switch r {
		case BOM:
		case esc:
			e.escape = 1
		case csi:
			e.escape = 2
		case Backspace:
			if len(e.line) > 0 {
				e.line = e.line[:len(e.line)-1]
				ops = append(ops, Op{Kind: Erase})
			}
		case '\n':
			if cr {
				continue
			}
			fallthrough
		case '\r', LineSeparator, '\u2029', '\u0085':
			e.cr = r == '\r'
			if len(e.line) == 0 {
				e.at = at
			}
			lines = append(lines, Line{Text: string(e.line), At: e.at})
			e.line = e.line[:0]
			ops = append(ops, Op{Kind: NewLine})
		default:
			if r < 0x20 || (r >= 0x7f && r < 0xa0) {
				continue // other C0 and C1 controls: nothing to show
			}
			if len(e.line) == 0 {
				e.at = at
			}
			e.line = append(e.line, r)
			ops = append(ops, Op{Kind: Insert, Rune: r})
		}
	}
	return ops, lines
}

// Line is the unfinished line as it stands.
func (e *Editor) Line() string { return string(e.line) }

// Flush returns the unfinished line, if it holds anything, and starts a
// new one (at the end of a call).
func (e *Editor) Flush() (Line, bool) {
	if len(e.line) == 0 {
		return Line{}, false
	}
	l := Line{Text: string(e.line), At: e.at}
	e.line = e.line[:0]
	return l, true
}

// Typed turns what a user types into T.140: CR, LF and CR LF become
// U+2028, DEL (what terminals send for the backspace key) and BS become
// U+0008, and other control bytes are dropped, with the escape sequences
// of keys that are not text (arrows: ESC [ A, ESC O A). It keeps the CR
// of a CR LF, and a sequence, split across reads. Not safe for concurrent
// use.
type Typed struct {
	cr     bool
	escape int // 1: after ESC; 2: in ESC [ ... final; 3: after ESC O
}

// Convert appends the T.140 form of p to dst.
func (t *Typed) Convert(dst, p []byte) []byte {
	for _, b := range p {
		cr := t.cr
		t.cr = false
		switch t.escape {
		case 1:
			t.escape = 0
			switch b {
			case '[':
				t.escape = 2
			case 'O':
				t.escape = 3
			}
			continue
		case 2:
			if b >= 0x40 && b <= 0x7e {
				t.escape = 0
			}
			continue
		case 3:
			t.escape = 0
			continue
		}
		switch {
		case b == '\n' && cr:
		case b == '\r' || b == '\n':
			t.cr = b == '\r'
			dst = utf8.AppendRune(dst, LineSeparator)
		case b == 0x7f || b == 0x08:
			dst = append(dst, 0x08)
		case b == esc:
			t.escape = 1
		case b < 0x20:
			// Tab and other controls have no T.140 meaning here.
		default:
			dst = append(dst, b)
		}
	}
	return dst
}
