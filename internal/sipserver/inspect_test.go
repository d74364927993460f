package sipserver

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/store"
)

func TestFrameStream(t *testing.T) {
	opts := sipText("OPTIONS sip:a SIP/2.0", "Via: SIP/2.0/TCP h;branch=z9hG4bK1", "Content-Length: 0")
	withBody := sipText("MESSAGE sip:a SIP/2.0", "l: 5") + "hello"
	for _, tc := range []struct {
		name   string
		in     string
		wantN  int
		errMsg string
	}{
		{"complete", opts, len(opts), ""},
		{"two messages", opts + opts, len(opts), ""},
		{"body by compact length", withBody + "MORE", len(withBody), ""},
		{"header incomplete", opts[:20], 0, ""},
		{"body incomplete", withBody[:len(withBody)-1], 0, ""},
		{"no content-length", sipText("OPTIONS sip:a SIP/2.0", "Via: x"), 0, "Missing Content-Length"},
		{"negative", sipText("OPTIONS sip:a SIP/2.0", "Content-Length: -1"), 0, "Malformed Content-Length"},
		{"conflicting", sipText("OPTIONS sip:a SIP/2.0", "Content-Length: 1", "l: 2"), 0, "Conflicting Content-Length"},
		{"same twice", sipText("OPTIONS sip:a SIP/2.0", "Content-Length: 0", "Content-Length: 00"), len(sipText("OPTIONS sip:a SIP/2.0", "Content-Length: 0", "Content-Length: 00")), ""},
		{"too large body", sipText("OPTIONS sip:a SIP/2.0", "Content-Length: 5000"), 0, "Message Too Large"},
		{"too large header", "OPTIONS sip:a SIP/2.0\r\nX: " + strings.Repeat("y", 3000), 0, "Message Too Large"},
		{"too many headers", "OPTIONS sip:a SIP/2.0\r\n" + strings.Repeat("X: 1\r\n", 11) + "Content-Length: 0\r\n\r\n", 0, "Too Many Headers"},
		{"folded length", sipText("OPTIONS sip:a SIP/2.0", "Content-Length:", " 5") + "hello", len(sipText("OPTIONS sip:a SIP/2.0", "Content-Length:", " 5")) + 5, ""},
	} {
		n, _, err := frameStream([]byte(tc.in), 0, 2000, 10)
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		if n != tc.wantN || msg != tc.errMsg {
			t.Errorf("%s: got %d %q, want %d %q", tc.name, n, msg, tc.wantN, tc.errMsg)
		}
	}
}

// A slow sender's bytes arrive one at a time: the scan resumes where it
// stopped and frames exactly once.
func TestFrameStreamByteByByte(t *testing.T) {
	msg := []byte(sipText("OPTIONS sip:a SIP/2.0", "Via: SIP/2.0/TCP h", "Content-Length: 3") + "abc")
	scanned := 0
	for i := 1; i <= len(msg); i++ {
		n, s, err := frameStream(msg[:i], scanned, 2000, 10)
		if err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			if i != len(msg) || n != len(msg) {
				t.Fatalf("framed %d at byte %d of %d", n, i, len(msg))
			}
			return
		}
		scanned = s
	}
	t.Fatal("never framed")
}

func TestSalvageResponse(t *testing.T) {
	req := sipText(
		"INVITE sip:x@y SIP/2.0",
		"v: SIP/2.0/UDP a;branch=z9hG4bK1",
		"Via: SIP/2.0/UDP b;branch=z9hG4bK2",
		"f: <sip:c@d>;tag=1",
		"t: Bob <sip:x@y>",
		"i: abc",
		"CSeq: 7 INVITE",
		"Content-Length: 0")
	hdr := []byte(req)
	out := salvageResponse(startLine(hdr), splitHeaders(hdr), 400, "Missing Max-Forwards")
	m, err := sipmsg.ParseMessage(out)
	if err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	res := m.(*sipmsg.Response)
	if res.StatusCode != 400 || res.Reason != "Missing Max-Forwards" || len(res.GetHeaders("Via")) != 2 ||
		res.CallID().Value() != "abc" || res.CSeq().SeqNo != 7 || !res.To().Params.Has("tag") {
		t.Fatalf("salvaged:\n%s", out)
	}
	// A control byte in a Via (a NUL in its host) is left out of the
	// echo: the client matches the answer by branch.
	ctl := []byte(sipText("INVITE sip:x SIP/2.0", "Via: SIP/2.0/UDP a\x00b;branch=z9hG4bK3", "CSeq: 1 INVITE"))
	if out := salvageResponse(startLine(ctl), splitHeaders(ctl), 400, "Bad Request"); !bytes.Contains(out, []byte("Via: SIP/2.0/UDP ab;branch=z9hG4bK3\r\n")) {
		t.Errorf("control byte in Via: answered %q", out)
	}
	for _, tc := range []struct{ name, text string }{
		{"response", sipText("SIP/2.0 200 OK", "Via: SIP/2.0/UDP a", "CSeq: 1 INVITE")},
		{"ack", sipText("ACK sip:x SIP/2.0", "Via: SIP/2.0/UDP a", "CSeq: 1 ACK")},
		{"no via", sipText("INVITE sip:x SIP/2.0", "CSeq: 1 INVITE")},
		{"no cseq", sipText("INVITE sip:x SIP/2.0", "Via: SIP/2.0/UDP a")},
		{"malformed via", sipText("INVITE sip:x SIP/2.0", "Via: SIP/2.0/UDP a;;,;,,", "CSeq: 1 INVITE")},
	} {
		h := []byte(tc.text)
		if out := salvageResponse(startLine(h), splitHeaders(h), 400, "Bad Request"); out != nil {
			t.Errorf("%s: answered %q, want drop", tc.name, out)
		}
	}
}

func TestStampResponse(t *testing.T) {
	res := sipText("SIP/2.0 486 Busy Here", "Via: SIP/2.0/TCP a", "Content-Length: 0")
	out, code := stampResponse([]byte(res), "Z5-MCS/x")
	want := sipText("SIP/2.0 486 Busy Here", "Server: Z5-MCS/x", "Via: SIP/2.0/TCP a", "Content-Length: 0")
	if d := cmp.Diff(want, string(out)); d != "" || code != 486 {
		t.Fatalf("code %d (-want +got):\n%s", code, d)
	}
	already := sipText("SIP/2.0 200 OK", "server: other", "Content-Length: 0")
	if out, _ := stampResponse([]byte(already), "Z5-MCS/x"); string(out) != already {
		t.Fatalf("a response with its own Server header was changed: %q", out)
	}
	req := sipText("OPTIONS sip:a SIP/2.0", "Content-Length: 0")
	if out, code := stampResponse([]byte(req), "Z5-MCS/x"); string(out) != req || code != 0 {
		t.Fatal("a request was stamped")
	}
}

// fuzzStore answers every lookup with "not found".
type fuzzStore struct{ store.Store }

func (fuzzStore) DeviceBySIPUser(context.Context, string) (store.Device, error) {
	return store.Device{}, store.ErrNotFound
}
func (fuzzStore) DevicesOf(context.Context, string) ([]store.Device, error) {
	return nil, nil
}
func (fuzzStore) Number(context.Context, string) (store.Number, error) {
	return store.Number{}, store.ErrNotFound
}

// recordingTx is a server transaction that keeps the responses it is
// given.
type recordingTx struct {
	mu   sync.Mutex
	got  []*sipmsg.Response
	done chan struct{}
}

func newRecordingTx() *recordingTx { return &recordingTx{done: make(chan struct{})} }

func (tx *recordingTx) Terminate()                            {}
func (tx *recordingTx) OnTerminate(sipmsg.FnTxTerminate) bool { return true }
func (tx *recordingTx) Done() <-chan struct{}                 { return tx.done }
func (tx *recordingTx) Err() error                            { return nil }
func (tx *recordingTx) Acks() <-chan *sipmsg.Request          { return nil }
func (tx *recordingTx) OnCancel(sipmsg.FnTxCancel) bool       { return true }
func (tx *recordingTx) Respond(res *sipmsg.Response) error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	tx.got = append(tx.got, res)
	return nil
}

// FuzzHandleMessage runs raw bytes through everything a message meets
// before and after sipgo: framing, inspection, parsing and the request
// handlers. None may panic; what inspection delivers must parse, and
// what it answers must be a parseable response.
func FuzzHandleMessage(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(tortureDir, "*.dat"))
	for _, file := range files {
		if b, err := os.ReadFile(file); err == nil {
			f.Add(b)
		}
	}
	for _, tc := range requestCases {
		f.Add([]byte(expand(tc.text, "127.0.0.1:5060", "UDP")))
	}
	cfg := testConfig()
	cfg.Version = "fuzz"
	srv, err := New(cfg, Deps{Store: fuzzStore{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, _, err := frameStream(b, 0, srv.cfg.MaxMessageSize, srv.cfg.MaxHeaders); err == nil && n > 0 {
			srv.t.in.inspectFrame(b[:n])
		}
		v := srv.t.in.inspectDatagram(b)
		if v.reply != nil {
			if m, err := sipmsg.ParseMessage(v.reply); err != nil {
				t.Fatalf("reply %q does not parse: %v", v.reply, err)
			} else if _, ok := m.(*sipmsg.Response); !ok {
				t.Fatalf("reply %q is not a response", v.reply)
			}
		}
		if v.deliver == nil {
			return
		}
		m, err := sipmsg.ParseMessage(v.deliver)
		if err != nil {
			t.Fatalf("delivered %q does not parse: %v", v.deliver, err)
		}
		req, ok := m.(*sipmsg.Request)
		if !ok {
			return
		}
		req.SetTransport("UDP")
		req.SetSource("127.0.0.1:5060")
		tx := newRecordingTx()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.dispatch(ctx, req, tx)
		if req.Method == sipmsg.ACK {
			if len(tx.got) != 0 {
				t.Fatalf("answered an ACK")
			}
			return
		}
		if len(tx.got) == 0 {
			t.Fatalf("no answer to %s", req.StartLine())
		}
	})
}
