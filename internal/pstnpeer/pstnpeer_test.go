package pstnpeer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/testenv"
)

// startPeer runs a peer on 127.0.0.1 port 0 until the test ends.
func startPeer(t *testing.T, ip string, status func(string) int) *Peer {
	t.Helper()
	p, err := New(Config{Addr: ip + ":0", Status: status})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- p.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := p.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
	return p
}

// waitUntil polls cond for up to ten seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testenv.WaitFor(t, 10*time.Second, what, cond)
}

// TestCallBetweenPeers: one peer dials the other as it would dial the
// MCS; the callee answers with the tone, both count the other's audio,
// and both keep a record with who called whom and how it ended.
func TestCallBetweenPeers(t *testing.T) {
	callee := startPeer(t, "127.0.0.1", nil)
	// Another loopback address: calls leave from the peer's own address.
	caller := startPeer(t, "127.0.0.2", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var progress []int // written before Dial returns
	d, err := caller.Dial(ctx, callee.Addr(), "mcs.z5.test", "2125550100", "2025550102", func(code int, _ string) { progress = append(progress, code) })
	if err != nil {
		t.Fatal(err)
	}
	rx := func(p *Peer) uint64 {
		cs := p.Calls()
		if len(cs) != 1 {
			return 0
		}
		return rxPackets(cs[0].Stats)
	}
	// 20 ms frames: 25 packets is half a second of tone each way.
	waitUntil(t, "audio both ways", func() bool { return rx(callee) >= 25 && rx(caller) >= 25 })
	if err := d.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the callee sees the BYE", func() bool { return !callee.Calls()[0].Ended.IsZero() })

	in, out := callee.Calls()[0], caller.Calls()[0]
	if in.Direction != "in" || in.From != "2125550100" || in.To != "2025550102" || in.Status != 200 || in.Video || in.EndReason != "remote hangup" {
		t.Errorf("callee's record: %+v", in)
	}
	if !strings.Contains(in.PAI, "sip:2125550100@") || in.CallID != d.CallID() || in.Relay.Addr().String() != "127.0.0.2" || !strings.HasPrefix(in.Source, "127.0.0.2:") {
		t.Errorf("callee's record: PAI %q, call %q (want %q), relay %s, source %s", in.PAI, in.CallID, d.CallID(), in.Relay, in.Source)
	}
	if out.Direction != "out" || out.Status != 200 || out.EndReason != "local hangup" || out.Answered.IsZero() {
		t.Errorf("caller's record: %+v", out)
	}
	// sipgo may drop a provisional response that arrives with the final
	// one, so only what did arrive is checked.
	for _, code := range progress {
		if code != 180 {
			t.Errorf("provisional responses %v, want 180 Ringing only", progress)
		}
	}
	for _, st := range in.Stats {
		if st.Kind != "audio" || st.PacketsSent == 0 {
			t.Errorf("callee's stream: %+v", st)
		}
	}
}

// TestRefusedNumber: a number the config refuses gets that status and no
// media.
func TestRefusedNumber(t *testing.T) {
	callee := startPeer(t, "127.0.0.1", func(n string) int {
		if n == "2125550486" {
			return 486
		}
		return 0
	})
	caller := startPeer(t, "127.0.0.1", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := caller.Dial(ctx, callee.Addr(), "mcs.z5.test", "2025550102", "2125550486", nil)
	if err == nil || !strings.Contains(err.Error(), "486 Busy Here") {
		t.Fatalf("call to the busy number: %v", err)
	}
	waitUntil(t, "the refusal recorded", func() bool { cs := callee.Calls(); return len(cs) == 1 && !cs[0].Ended.IsZero() })
	if c := callee.Calls()[0]; c.Status != 486 || c.Answered.IsZero() == false || len(c.Stats) != 0 {
		t.Errorf("record of the refused call: %+v", c)
	}
	if c := caller.Calls()[0]; c.Status != 486 {
		t.Errorf("caller's record: %+v", c)
	}
}

func TestSDPOf(t *testing.T) {
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20000 RTP/AVP 0\r\n"
	pidf := `<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="pres:2025550102@mcs.z5.test"/>`
	multi := "--b1\r\nContent-Type: application/sdp\r\n\r\n" + sdp + "\r\n--b1\r\nContent-Type: application/pidf+xml\r\nContent-ID: <loc1@mcs.z5.test>\r\n\r\n" + pidf + "\r\n--b1--\r\n"
	for _, tt := range []struct {
		name, ctype, body, want, err string
	}{
		{"plain SDP", "application/sdp", sdp, sdp, ""},
		{"911: SDP beside the PIDF-LO", `multipart/mixed;boundary=b1`, multi, sdp, ""},
		{"no SDP part", `multipart/mixed; boundary="b1"`, "--b1\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b1--\r\n", "", "no application/sdp"},
		{"no content type", "", sdp, "", "content type"},
	} {
		got, err := SDPOf(tt.ctype, []byte(tt.body))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%s: %q %v, want %q", tt.name, got, err, tt.want)
		}
	}
	parts, err := Parts(`multipart/mixed;boundary=b1`, []byte(multi))
	if err != nil || len(parts) != 2 || parts[1].ContentType != "application/pidf+xml" || parts[1].ContentID != "loc1@mcs.z5.test" || string(parts[1].Body) != pidf {
		t.Errorf("parts: %+v %v", parts, err)
	}
}

func TestTone(t *testing.T) {
	b := tone(ToneHz)
	if len(b) != 8000 {
		t.Fatalf("%d samples, want one second", len(b))
	}
	// μ-law of silence is 0xff; a tone moves through many codes.
	codes := map[byte]bool{}
	for _, c := range b {
		codes[c] = true
	}
	if len(codes) < 50 {
		t.Errorf("only %d distinct μ-law codes: not a tone", len(codes))
	}
}
