package sipserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/sipcore"
	"github.com/z5vrs/z5/internal/store"
)

const (
	alice = "5552340001"
	bob   = "5552340002"
)

// twoPhones provisions and registers alice and bob.
func twoPhones(t *testing.T, e *env) (a, b *phone) {
	t.Helper()
	e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	e.provision(bob, store.DeviceSIP, "bob", "secret-b")
	a = newPhone(t, e, alice, "alice", "secret-a")
	b = newPhone(t, e, bob, "bob", "secret-b")
	for _, p := range []*phone{a, b} {
		if res := p.register(600); res.StatusCode != 200 {
			t.Fatalf("%s register: %d", p.user, res.StatusCode)
		}
	}
	return a, b
}

// forkedCall is alice's call to bob forked to his two devices: b1 (as in
// twoPhones) and b2 (bob-tablet, on another contact port), each with the
// INVITE it received; done is alice's outcome to come.
type forkedCall struct {
	b1, b2   *phone
	ic1, ic2 *incoming
	done     <-chan callResult
}

func startForkedCall(t *testing.T) forkedCall {
	t.Helper()
	e := newEnv(t, nil)
	a, b1 := twoPhones(t, e)
	e.provision(bob, store.DeviceSIP, "bob-tablet", "secret-t")
	b2 := newPhone(t, e, bob, "bob-tablet", "secret-t")
	b2.contact.Address.Port = 6000
	if res := b2.register(600); res.StatusCode != 200 {
		t.Fatalf("%s register: %d", b2.user, res.StatusCode)
	}
	done := a.inviteAsync(context.Background(), bob)
	return forkedCall{b1: b1, b2: b2, ic1: b1.nextCall(5 * time.Second), ic2: b2.nextCall(5 * time.Second), done: done}
}

// answerCall has callee answer ic while the caller waits on done; the call
// must succeed, and ic's transaction is then finished.
func answerCall(t *testing.T, callee *phone, ic *incoming, done <-chan callResult, what string) callResult {
	t.Helper()
	go ic.dlg.RespondSDP(callee.sdp())
	res := wait(t, done, what)
	if res.err != nil {
		t.Fatal(res.err)
	}
	ic.finish()
	return res
}

// ringAndAnswer has callee ring (180) and then answer ic while the caller
// waits on done; the call must succeed and the callee see the ACK, and
// ic's transaction is then finished.
func ringAndAnswer(t *testing.T, callee *phone, ic *incoming, done <-chan callResult) callResult {
	t.Helper()
	if err := ic.dlg.Respond(180, "Ringing", nil); err != nil {
		t.Fatal(err)
	}
	answered := make(chan error, 1)
	go func() { answered <- ic.dlg.RespondSDP(callee.sdp()) }()
	res := wait(t, done, "the answer")
	if res.err != nil {
		t.Fatalf("call: %v", res.err)
	}
	if err := wait(t, answered, "the ACK at the callee"); err != nil {
		t.Fatalf("callee: %v", err)
	}
	ic.finish()
	return res
}

// endedCall waits for the record of callID to end and checks that its
// media stats count packets; it returns the record.
func endedCall(t *testing.T, st store.Store, callID string) store.Call {
	t.Helper()
	var rec store.Call
	waitFor(t, "call record ended", func() bool {
		rec, _ = st.Call(context.Background(), callID)
		return !rec.EndedAt.IsZero()
	})
	var pkts uint64
	for _, s := range rec.MediaStats {
		pkts += s.Packets
	}
	if pkts == 0 {
		t.Errorf("media stats count no packets: %+v", rec.MediaStats)
	}
	return rec
}

// ring has a call b (bob) and returns the caller's outcome to come and the
// INVITE arriving at b.
func ring(ctx context.Context, a, b *phone) (<-chan callResult, *incoming) {
	done := a.inviteAsync(ctx, bob)
	return done, b.nextCall(5 * time.Second)
}

type callResult struct {
	sess *sipgo.DialogClientSession
	err  error
}

func (p *phone) inviteAsync(ctx context.Context, target string) <-chan callResult {
	ch := make(chan callResult, 1)
	go func() {
		sess, err := p.invite(ctx, target)
		if err == nil {
			err = sess.Ack(ctx)
		}
		ch <- callResult{sess, err}
	}()
	return ch
}

func wait[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero T
	return zero
}

func (e *env) inRelay(ap netip.AddrPort) bool {
	return ap.Addr() == netip.MustParseAddr("127.0.0.1") && int(ap.Port()) >= e.ports.Min && int(ap.Port()) <= e.ports.Max
}

func statusOf(err error) int {
	var de *sipgo.ErrDialogResponse
	if errors.As(err, &de) {
		return de.Res.StatusCode
	}
	return 0
}

// rtpPacket is one PCMU packet.
func rtpPacket(ssrc uint32, seq uint16) []byte {
	b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: ssrc},
		Payload: make([]byte, 160)}).Marshal()
	return b
}

// exchangeRTP has each phone send to the relay address it was given until
// each has received the other's packets.
func exchangeRTP(t *testing.T, a, b *phone, aTo, bTo netip.AddrPort) {
	t.Helper()
	got := func(p *phone, from uint32, out chan<- bool) {
		buf := make([]byte, 1500)
		for {
			p.rtp.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _, err := p.rtp.ReadFromUDP(buf)
			if err != nil {
				out <- false
				return
			}
			var pkt rtp.Packet
			if pkt.Unmarshal(buf[:n]) == nil && pkt.SSRC == from {
				out <- true
				return
			}
		}
	}
	aGot, bGot := make(chan bool, 1), make(chan bool, 1)
	go got(a, 0xb0b, aGot)
	go got(b, 0xa11ce, bGot)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for seq := uint16(1); ; seq++ {
			a.rtp.WriteToUDPAddrPort(rtpPacket(0xa11ce, seq), aTo)
			b.rtp.WriteToUDPAddrPort(rtpPacket(0xb0b, seq), bTo)
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	if !<-aGot || !<-bGot {
		t.Fatal("RTP did not flow through the relay both ways")
	}
}

func TestCallThroughRelay(t *testing.T) {
	e := newEnv(t, nil)
	a, b := twoPhones(t, e)
	ctx := context.Background()
	done, ic := ring(ctx, a, b)
	offer := mediaAddr(ic.req.Body())
	if !e.inRelay(offer) {
		t.Fatalf("callee's offer points at %s, not the relay (ports %s)", offer, e.ports)
	}
	if rr := ic.req.RecordRoute(); rr == nil || !rr.Address.UriParams.Has("lr") || rr.Address.Port != int(e.addr.Port()) {
		t.Fatalf("Record-Route %v", rr)
	}
	if via := ic.req.Via(); !ownBranch(via) {
		t.Fatalf("top Via %v is not the proxy's", via)
	}
	if ic.req.Recipient.Port != 5999 || ic.req.Recipient.User != bob {
		t.Fatalf("Request-URI %s, want the registered contact", ic.req.Recipient.String())
	}
	res := ringAndAnswer(t, b, ic, done)
	answer := mediaAddr(res.sess.InviteResponse.Body())
	if !e.inRelay(answer) || answer == offer {
		t.Fatalf("caller's answer points at %s (offer side %s)", answer, offer)
	}
	callID := ic.req.CallID().Value()
	rec, err := e.st.Call(ctx, callID)
	if err != nil || rec.AnsweredAt.IsZero() || rec.From != alice || rec.To != bob {
		t.Fatalf("call record after answer: %+v %v", rec, err)
	}
	if n := metricValue(e, "z5_sip_active_calls"); n != 1 {
		t.Errorf("active calls %v", n)
	}

	exchangeRTP(t, a, b, answer, offer)

	if err := res.sess.Bye(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	wait(t, b.byes, "BYE at the callee")
	rec = endedCall(t, e.st, callID)
	if rec.EndReason != endBye || rec.Status != 200 {
		t.Fatalf("final record %+v", rec)
	}
	if n := metricValue(e, "z5_sip_active_calls"); n != 0 {
		t.Errorf("active calls %v after BYE", n)
	}
}

func TestCalleeHangsUp(t *testing.T) {
	e := newEnv(t, nil)
	a, b := twoPhones(t, e)
	done, ic := ring(context.Background(), a, b)
	answerCall(t, b, ic, done, "answer")
	time.Sleep(50 * time.Millisecond) // the ACK reaches the callee
	if err := ic.dlg.Bye(context.Background()); err != nil {
		t.Fatalf("callee BYE: %v", err)
	}
	wait(t, a.byes, "BYE at the caller")
}

func TestCancelBeforeAnswer(t *testing.T) {
	e := newEnv(t, nil)
	a, b := twoPhones(t, e)
	recordEnds(t, e.st, cancelRinging(t, a, b), endCancel, 487)
}

// cancelRinging has a call b (bob), b ring, and a cancel before any
// answer: the CANCEL must reach b and the call not be answered. It
// returns the call's ID.
func cancelRinging(t *testing.T, a, b *phone) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done, ic := ring(ctx, a, b)
	ic.dlg.Respond(180, "Ringing", nil)
	callID := ic.req.CallID().Value()
	cancel()
	wait(t, b.cancels, "CANCEL at the callee")
	ic.finish()
	if res := wait(t, done, "the caller's outcome"); res.err == nil {
		t.Fatal("canceled call was answered")
	}
	return callID
}

// recordEnds waits for the record of callID in st to end with reason and
// final status, and returns it.
func recordEnds(t *testing.T, st store.Store, callID, reason string, status int) store.Call {
	t.Helper()
	var rec store.Call
	waitFor(t, "record ended by "+reason, func() bool {
		rec, _ = st.Call(context.Background(), callID)
		return rec.EndReason == reason && rec.Status == status
	})
	return rec
}

func TestCallOutcomes(t *testing.T) {
	t.Run("callee not registered: 480", func(t *testing.T) {
		e := newEnv(t, nil)
		e.provision(alice, store.DeviceSIP, "alice", "secret-a")
		e.provision(bob, store.DeviceSIP, "bob", "secret-b")
		a := newPhone(t, e, alice, "alice", "secret-a")
		a.register(600)
		_, err := a.invite(context.Background(), bob)
		if statusOf(err) != 480 {
			t.Fatalf("got %v, want 480", err)
		}
		waitFor(t, "record unavailable", func() bool {
			calls, _ := e.st.ListCalls(context.Background(), store.CallFilter{Number: bob})
			return len(calls) == 1 && calls[0].EndReason == endUnavailable && calls[0].Status == 480
		})
	})
	t.Run("unknown number: 404", func(t *testing.T) {
		e := newEnv(t, nil)
		a, _ := twoPhones(t, e)
		if _, err := a.invite(context.Background(), "5559990000"); statusOf(err) != 404 {
			t.Fatalf("got %v, want 404", err)
		}
		waitFor(t, "record of the attempt", func() bool {
			calls, _ := e.st.ListCalls(context.Background(), store.CallFilter{Number: "5559990000"})
			return len(calls) == 1 && calls[0].EndReason == endUnavailable && calls[0].Status == 404
		})
	})
	t.Run("busy: 486 passed through", func(t *testing.T) {
		e := newEnv(t, nil)
		a, b := twoPhones(t, e)
		done, ic := ring(context.Background(), a, b)
		ic.dlg.Respond(486, "Busy Here", nil)
		ic.finish()
		if res := wait(t, done, "outcome"); statusOf(res.err) != 486 {
			t.Fatalf("got %v, want 486", res.err)
		}
		recordEnds(t, e.st, ic.req.CallID().Value(), endBusy, 486)
	})
	t.Run("no answer: 408 and CANCEL", func(t *testing.T) {
		e := newEnv(t, func(c *Config) { c.NoAnswerTimeout = time.Second })
		a, b := twoPhones(t, e)
		done, ic := ring(context.Background(), a, b)
		ic.dlg.Respond(180, "Ringing", nil)
		wait(t, b.cancels, "CANCEL at the callee")
		ic.finish()
		if res := wait(t, done, "outcome"); statusOf(res.err) != 408 {
			t.Fatalf("got %v, want 408", res.err)
		}
		recordEnds(t, e.st, ic.req.CallID().Value(), endNoAnswer, 408)
	})
}

func TestForkToEveryDevice(t *testing.T) {
	f := startForkedCall(t)
	f.ic1.dlg.Respond(180, "Ringing", nil)
	f.ic2.dlg.Respond(180, "Ringing", nil)
	go f.ic2.dlg.RespondSDP(f.b2.sdp())
	if res := wait(t, f.done, "answer"); res.err != nil {
		t.Fatal(res.err)
	}
	wait(t, f.b1.cancels, "CANCEL at the other device")
	f.ic1.finish()
	f.ic2.finish()
}

func TestInviteOverUDPIsChallenged(t *testing.T) {
	e := newEnv(t, nil)
	e.provision(alice, store.DeviceSIP, "alice", "secret-a")
	e.provision(bob, store.DeviceSIP, "bob", "secret-b")
	a := newPhoneOver(t, e, alice, "alice", "secret-a", "UDP")
	b := newPhone(t, e, bob, "bob", "secret-b")
	a.register(600)
	b.register(600)
	done := a.inviteAsync(context.Background(), bob) // answers the 407
	ic := b.nextCall(5 * time.Second)
	if ic.req.GetHeader("Proxy-Authorization") != nil {
		t.Error("Proxy-Authorization was forwarded to the callee")
	}
	answerCall(t, b, ic, done, "answer")
}

func TestMediaTimeoutHangsUpBoth(t *testing.T) {
	e := newEnvOpts(t, envOptions{mediaTimeout: time.Second})
	a, b := twoPhones(t, e)
	done, ic := ring(context.Background(), a, b)
	answerCall(t, b, ic, done, "answer")
	// Each BYE belongs to its recipient's dialog: the other side's tag in
	// From, the recipient's own in To.
	callerTag, _ := ic.req.From().Params.Get("tag")
	calleeTag := sipcore.ToTag(ic.dlg.InviteResponse)
	for _, tc := range []struct {
		p        *phone
		from, to string
	}{{a, calleeTag, callerTag}, {b, callerTag, calleeTag}} {
		bye := wait(t, tc.p.byes, "BYE at "+tc.p.user)
		f, _ := bye.From().Params.Get("tag")
		to, _ := bye.To().Params.Get("tag")
		if f != tc.from || to != tc.to || bye.CallID().Value() != ic.req.CallID().Value() {
			t.Errorf("BYE to %s: From tag %q To tag %q, want %q %q", tc.p.user, f, to, tc.from, tc.to)
		}
	}
	waitFor(t, "record media-timeout", func() bool {
		rec, _ := e.st.Call(context.Background(), ic.req.CallID().Value())
		return rec.EndReason == endMediaTimeout
	})
}

func TestReInviteIsAnchoredBothWays(t *testing.T) {
	e := newEnv(t, nil)
	a, b := twoPhones(t, e)
	ctx := context.Background()
	done, ic := ring(ctx, a, b)
	res := answerCall(t, b, ic, done, "answer")

	// The caller re-INVITEs with a new media port.
	other, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	reinvite := sipmsg.NewRequest(sipmsg.INVITE, res.sess.InviteResponse.Contact().Address)
	reinvite.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
	reinvite.SetBody([]byte(strings.Replace(string(a.sdp()), strconv.Itoa(a.rtp.LocalAddr().(*net.UDPAddr).Port),
		strconv.Itoa(other.LocalAddr().(*net.UDPAddr).Port), 1)))
	answered := make(chan *sipmsg.Response, 1)
	go func() {
		r, err := res.sess.Do(ctx, reinvite)
		if err != nil {
			t.Error(err)
		}
		answered <- r
	}()
	ric := b.nextCall(5 * time.Second)
	if got := mediaAddr(ric.req.Body()); !e.inRelay(got) {
		t.Fatalf("re-INVITE reached the callee pointing at %s", got)
	}
	ric.tx.Respond(sipmsg.NewSDPResponseFromRequest(ric.req, b.sdp()))
	r := wait(t, answered, "re-INVITE answer")
	ric.finish()
	if r == nil || r.StatusCode != 200 || !e.inRelay(mediaAddr(r.Body())) {
		t.Fatalf("re-INVITE answer %v", r)
	}
	ack := sipmsg.NewRequest(sipmsg.ACK, res.sess.InviteResponse.Contact().Address)
	if err := res.sess.WriteRequest(ack); err != nil {
		t.Fatal(err)
	}

	// INFO inside the dialog goes through as well.
	info := sipmsg.NewRequest(sipmsg.INFO, res.sess.InviteResponse.Contact().Address)
	if r, err := res.sess.Do(ctx, info); err != nil || r.StatusCode != 200 {
		t.Fatalf("INFO: %v %v", r, err)
	}
}

func TestRelayOutOfPortsIs503(t *testing.T) {
	lo := relayPorts().Min
	// Two port pairs: one audio stream, so one call at a time.
	e := newEnvOpts(t, envOptions{ports: config.PortRange{Min: lo, Max: lo + 3}})
	a, b := twoPhones(t, e)
	done, ic := ring(context.Background(), a, b)
	answerCall(t, b, ic, done, "first call")
	_, err := a.invite(context.Background(), bob)
	var de *sipgo.ErrDialogResponse
	if !errors.As(err, &de) || de.Res.StatusCode != 503 || de.Res.GetHeader("Retry-After") == nil {
		t.Fatalf("second call: %v, want 503 with Retry-After", err)
	}
	waitFor(t, "one active call", func() bool { return metricValue(e, "z5_sip_active_calls") == 1 })
}

// One device of the callee declines at once; the other answers later: the
// call is answered, the decline only ends its branch.
func TestForkOneBranchBusy(t *testing.T) {
	f := startForkedCall(t)
	f.ic1.dlg.Respond(486, "Busy Here", nil)
	f.ic1.finish()
	time.Sleep(200 * time.Millisecond) // the 486 and its transaction's end reach the proxy first
	f.ic2.dlg.Respond(180, "Ringing", nil)
	go f.ic2.dlg.RespondSDP(f.b2.sdp())
	if res := wait(t, f.done, "answer"); res.err != nil {
		t.Fatalf("call: %v", res.err)
	}
	f.ic2.finish()
}
