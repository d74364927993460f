// Package opview is the operator's live view of the MCS nodes, what
// `kamcmd ul.dump` and `dlg.list` give a Kamailio operator: each node's
// operations listener (the metrics and health one, on the operator's
// network) serves its registrations and active calls as read-only JSON,
// and `z5d admin registrations` / `calls --live` ask every node and print
// a table or JSON. It reads the nodes' memory, not the store, and carries
// nothing secret: no digest data, contact URIs, tokens or keys.
package opview

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/z5vrs/z5/internal/relay"
	"github.com/z5vrs/z5/internal/sipserver"
)

// Paths on the operations listener.
const (
	RegistrationsPath = "/debug/registrations"
	CallsPath         = "/debug/calls"
)

// Registration is one live binding (JSON: snake_case, absent values
// omitted).
type Registration struct {
	Number     string     `json:"number"`
	DeviceID   int64      `json:"device_id"`
	DeviceKind string     `json:"device_kind,omitempty"`
	Node       string     `json:"node"`
	Transport  string     `json:"transport"`
	Source     string     `json:"source"`
	Since      *time.Time `json:"since,omitempty"`
	Expires    *time.Time `json:"expires,omitempty"`
}

// Stream is one leg of one relayed stream of an active call.
type Stream struct {
	Leg       string  `json:"leg"`   // "caller" or "callee": who sent it
	Media     string  `json:"media"` // "audio", "video" or "text"
	Packets   uint64  `json:"packets"`
	Bytes     uint64  `json:"bytes"`
	Lost      int64   `json:"lost"`
	JitterMs  float64 `json:"jitter_ms"`
	Encrypted bool    `json:"encrypted"`
}

// Call is one call a node anchors now.
type Call struct {
	CallID     string     `json:"call_id"`
	From       string     `json:"from"`
	To         string     `json:"to"`
	Node       string     `json:"node"`
	StartedAt  *time.Time `json:"started_at,omitempty"`
	AnsweredAt *time.Time `json:"answered_at,omitempty"`
	Streams    []Stream   `json:"streams,omitempty"`
}

// Source is what a node shows: its SIP server.
type Source interface {
	Registrations() []sipserver.Registration
	ActiveCalls() []sipserver.ActiveCall
}

// Registrations are rs of node as the view shows them.
func Registrations(node string, rs []sipserver.Registration) []Registration {
	out := make([]Registration, 0, len(rs))
	for _, r := range rs {
		out = append(out, Registration{Number: r.Number, DeviceID: r.DeviceID, DeviceKind: r.Kind, Node: node,
			Transport: r.Transport, Source: r.Source, Since: timeOrNil(r.Since), Expires: timeOrNil(r.Expires)})
	}
	return out
}

// Calls are cs of node as the view shows them.
func Calls(node string, cs []sipserver.ActiveCall) []Call {
	out := make([]Call, 0, len(cs))
	for _, c := range cs {
		v := Call{CallID: c.CallID, From: c.From, To: c.To, Node: node,
			StartedAt: timeOrNil(c.StartedAt), AnsweredAt: timeOrNil(c.AnsweredAt)}
		for _, s := range c.Streams {
			v.Streams = append(v.Streams, stream(s))
		}
		out = append(out, v)
	}
	return out
}

func stream(s relay.StreamStats) Stream {
	return Stream{Leg: s.Leg, Media: s.Media, Packets: s.Packets, Bytes: s.Bytes, Lost: s.Lost,
		JitterMs: s.JitterMS, Encrypted: s.Encrypted}
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// Handle serves the view of node's src on mux (GET only).
func Handle(mux *http.ServeMux, node string, src Source) {
	mux.HandleFunc("GET "+RegistrationsPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, Registrations(node, src.Registrations()))
	})
	mux.HandleFunc("GET "+CallsPath, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, Calls(node, src.ActiveCalls()))
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(v) // a failed write means the reader left
}
