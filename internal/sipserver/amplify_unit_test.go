package sipserver

import (
	"testing"
	"time"
)

func TestTopViaBranch(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKabc;rport\r\nVia: SIP/2.0/UDP 5.6.7.8;branch=z9hG4bKdef\r\n\r\n", "z9hG4bKabc"},
		{"INVITE sip:a@b SIP/2.0\r\nFrom: <sip:x@y>;branch=no\r\nv: SIP/2.0/UDP 1.2.3.4 ; BRANCH = z9hG4bKx\r\n\r\n", "z9hG4bKx"},
		{"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1, SIP/2.0/UDP 5.6.7.8;branch=z9hG4bK2\r\n\r\n", "z9hG4bK1"},
		{"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;rport\r\n\r\n", ""},
		{"INVITE sip:a@b SIP/2.0\r\nTo: <sip:a@b>\r\n\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=body\r\n", ""},
		{"INVITE", ""},
	} {
		if got := topViaBranch([]byte(tc.in)); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestByteBudget(t *testing.T) {
	t0 := time.Unix(1000, 0)
	b := newByteBudget(1000)
	for _, step := range []struct {
		at   time.Duration
		n    int
		want bool
	}{
		{0, 600, true},
		{0, 600, false}, // 400 left
		{0, 400, true},
		{0, 1, false},
		{500 * time.Millisecond, 500, true}, // refilled 500
		{500 * time.Millisecond, 1, false},
		{10 * time.Second, 1000, true}, // never more than one second's worth
		{10 * time.Second, 1, false},
		{9 * time.Second, 1, false}, // a clock going back refills nothing
		{11 * time.Second, 1001, false},
	} {
		if got := b.take(step.n, t0.Add(step.at)); got != step.want {
			t.Errorf("take(%d) at +%s: %v, want %v", step.n, step.at, got, step.want)
		}
	}
}

func TestNonceBinding(t *testing.T) {
	a := newDigestAuth("mcs.z5.test", time.Minute, []string{"SHA-256"})
	now := time.Now()
	for _, tc := range []struct {
		issuedTo, usedFrom [2]string // transport, source
		want               bool
	}{
		{[2]string{"UDP", "192.0.2.1:5060"}, [2]string{"UDP", "192.0.2.1:5060"}, true},
		{[2]string{"UDP", "192.0.2.1:5060"}, [2]string{"UDP", "192.0.2.1:5061"}, false},
		{[2]string{"UDP", "192.0.2.1:5060"}, [2]string{"UDP", "192.0.2.2:5060"}, false},
		{[2]string{"udp", "192.0.2.1:5060"}, [2]string{"TCP", "192.0.2.1:5060"}, false},
		{[2]string{"TCP", "192.0.2.1:40000"}, [2]string{"TCP", "192.0.2.1:40001"}, true}, // reconnected
		{[2]string{"TCP", "192.0.2.1:40000"}, [2]string{"TLS", "[::ffff:192.0.2.1]:40001"}, true},
		{[2]string{"TCP", "192.0.2.1:40000"}, [2]string{"TCP", "192.0.2.2:40000"}, false},
	} {
		nonce := a.newNonce(now, nonceBinding(tc.issuedTo[0], tc.issuedTo[1]))
		_, _, ok := a.nonceIssued(nonce, nonceBinding(tc.usedFrom[0], tc.usedFrom[1]))
		if ok != tc.want {
			t.Errorf("issued to %v, used from %v: %v, want %v", tc.issuedTo, tc.usedFrom, ok, tc.want)
		}
	}
}

// What sipgo writes by itself: its 100 Trying (Timer 1xx) to a request
// not yet authenticated is dropped, its other responses in such a
// transaction (200 to a CANCEL, 487) are held to the budget, and a
// silenced fork's INVITE retransmission is dropped.
func TestClassifyOutgoing(t *testing.T) {
	g, err := newAmplifyGuard(1500, time.Now, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.hold("z9hG4bKstranger")
	g.silence("z9hG4bKfork")
	msg := func(first, branch string) []byte {
		return []byte(first + "\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=" + branch + "\r\nCSeq: 1 INVITE\r\n\r\n")
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want outgoing
	}{
		{"100 to a stranger", msg("SIP/2.0 100 Trying", "z9hG4bKstranger"), dropIt},
		{"487 to a stranger", msg("SIP/2.0 487 Request Terminated", "z9hG4bKstranger"), budgetIt},
		{"100 to someone else", msg("SIP/2.0 100 Trying", "z9hG4bKother"), sendIt},
		{"silenced fork", msg("INVITE sip:b@192.0.2.9 SIP/2.0", "z9hG4bKfork"), dropIt},
		{"other fork", msg("INVITE sip:b@192.0.2.9 SIP/2.0", "z9hG4bKother"), sendIt},
		{"CANCEL of the silenced fork", msg("CANCEL sip:b@192.0.2.9 SIP/2.0", "z9hG4bKfork"), sendIt},
	} {
		if got := g.classify(tc.b); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	g.release("z9hG4bKstranger")
	if got := g.classify(msg("SIP/2.0 100 Trying", "z9hG4bKstranger")); got != sendIt {
		t.Errorf("100 after the request was authenticated: %d, want sendIt", got)
	}
}
