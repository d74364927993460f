package netcheck

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/clip"
	"github.com/z5vrs/z5/internal/wire/algprobe"
)

// SIP ALG detection: the probe and the MCS's echo are algprobe's wire
// format. A firewall's SIP ALG (or "SIP inspection") rewrites the addresses
// on the way; Z5 needs none of that (its media is latched by the relay) and
// ALGs are known to break registrations and calls, so a rewrite is
// reported with the fix: turn the ALG off.

// ALG verdicts.
const (
	ALGNotDetected = "not-detected"
	ALGDetected    = "detected"
	ALGNotVerified = "not-verified"
	ALGSkipped     = "skipped"
)

// ALGReport sums up the ALG check over every MCS that answered SIP.
type ALGReport struct {
	Status    string   `json:"status"`
	Detail    string   `json:"detail"`
	Rewritten []string `json:"rewritten,omitempty"` // what changed, per MCS
	Fix       string   `json:"fix,omitempty"`
}

// algObservation is one MCS's echo compared with what was sent.
type algObservation struct {
	name      string
	echoed    bool
	rewritten []string
}

// sentProbe is what the client put on the wire.
type sentProbe struct {
	via     *sipmsg.ViaHeader
	contact *sipmsg.ContactHeader
	body    []byte
}

// compareEcho compares the MCS's echo in res with what was sent. An echo
// is absent until the SIP server answers the probe header.
func compareEcho(sent sentProbe, res *sipmsg.Response) (echoed bool, rewritten []string) {
	ev := res.GetHeader(algprobe.HeaderEchoVia)
	if ev == nil {
		return false, nil
	}
	parser := sipmsg.HeadersParser(sipmsg.DefaultHeadersParser())
	hs, err := parser.ParseHeader(nil, []byte("Via: "+ev.Value()))
	if v, ok := firstAs[*sipmsg.ViaHeader](hs); err != nil || !ok {
		rewritten = append(rewritten, fmt.Sprintf("Via: sent %q, the MCS received something unparsable", sent.via.Value()))
	} else if d := diffVia(sent.via, v); d != "" {
		rewritten = append(rewritten, d)
	}
	if ec := res.GetHeader(algprobe.HeaderEchoContact); ec == nil {
		rewritten = append(rewritten, "Contact: removed on the way")
	} else {
		hs, err := parser.ParseHeader(nil, []byte("Contact: "+ec.Value()))
		if c, ok := firstAs[*sipmsg.ContactHeader](hs); err != nil || !ok {
			rewritten = append(rewritten, fmt.Sprintf("Contact: sent %q, the MCS received something unparsable", sent.contact.Value()))
		} else if d := diffContact(sent.contact, c); d != "" {
			rewritten = append(rewritten, d)
		}
	}
	got := res.Body()
	n := -1
	if h := res.GetHeader(algprobe.HeaderEchoLength); h != nil {
		if v, err := strconv.Atoi(strings.TrimSpace(h.Value())); err == nil {
			n = v
		}
	}
	switch {
	case len(got) == 0 && n == len(sent.body):
		// The server saw a body of our size but did not send it back:
		// nothing to compare, and nothing suggests a rewrite.
	case !bytes.Equal(got, sent.body):
		rewritten = append(rewritten, diffSDP(sent.body, got))
	}
	return true, rewritten
}

func firstAs[T sipmsg.Header](hs []sipmsg.Header) (T, bool) {
	var zero T
	if len(hs) == 0 {
		return zero, false
	}
	v, ok := hs[0].(T)
	return v, ok
}

// diffVia compares what an ALG rewrites (sent-by, transport, branch);
// received and rport are the server's to add.
func diffVia(sent, got *sipmsg.ViaHeader) string {
	sb, _ := sent.Params.Get("branch")
	gb, _ := got.Params.Get("branch")
	if !strings.EqualFold(sent.Host, got.Host) || sent.Port != got.Port ||
		!strings.EqualFold(sent.Transport, got.Transport) || sb != gb {
		return fmt.Sprintf("Via: sent %s/%s, the MCS received %s/%s", sent.Transport, sent.SentBy(), got.Transport, got.SentBy())
	}
	return ""
}

func diffContact(sent, got *sipmsg.ContactHeader) string {
	s, g := sent.Address, got.Address
	if !strings.EqualFold(s.Host, g.Host) || s.Port != g.Port || s.User != g.User {
		return fmt.Sprintf("Contact: sent %s, the MCS received %s", s.Addr(), g.Addr())
	}
	return ""
}

// diffSDP names the first changed line of the body.
func diffSDP(sent, got []byte) string {
	sl := strings.Split(strings.TrimRight(string(sent), "\r\n"), "\r\n")
	gl := strings.Split(strings.TrimRight(string(got), "\r\n"), "\r\n")
	for i := range max(len(sl), len(gl)) {
		var s, g string
		if i < len(sl) {
			s = sl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if s != g {
			return fmt.Sprintf("SDP: sent %q, the MCS received %q", clip.String(s, 80), clip.String(g, 80))
		}
	}
	return fmt.Sprintf("SDP: sent %d bytes, the MCS received %d", len(sent), len(got))
}

// summariseALG folds the per-MCS observations into one verdict.
func summariseALG(results []Result, obs []*algObservation) ALGReport {
	var rep ALGReport
	verified := 0
	for _, o := range obs {
		if o == nil || !o.echoed {
			continue
		}
		verified++
		for _, w := range o.rewritten {
			rep.Rewritten = append(rep.Rewritten, o.name+": "+w)
		}
	}
	reached := 0
	for _, r := range results {
		if r.Rule.Check == CheckSIP && (r.Status == StatusOK || r.Status == StatusSlow || r.Status == StatusDegraded) {
			reached++
		}
	}
	switch {
	case len(rep.Rewritten) > 0:
		rep.Status = ALGDetected
		rep.Detail = "SIP ALG detected: a firewall rewrites SIP messages on the way to the MCS"
		rep.Fix = "disable SIP ALG / SIP inspection (also called SIP helper or SIP fixup) on the firewall for the MCS addresses"
	case verified > 0:
		rep.Status = ALGNotDetected
		rep.Detail = fmt.Sprintf("Via, Contact and SDP reached %d MCS unchanged", verified)
	case reached > 0:
		rep.Status = ALGNotVerified
		rep.Detail = "not verified: the MCS did not echo the probe (older server)"
	default:
		rep.Status = ALGSkipped
		rep.Detail = "not checked: no MCS answered SIP"
	}
	return rep
}
