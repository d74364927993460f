package webphone

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/opview"
	"github.com/z5vrs/z5/internal/store"
)

// PathOperator is the operator view's data: read-only, for provider staff
// signed in through ZDial.
const PathOperator = "/web/operator"

// Accounts tells staff from other accounts (the store).
type Accounts interface {
	Customer(ctx context.Context, id int64) (store.Customer, error)
}

// queueReader is the interpreter center's state; a store without it shows
// no queue.
type queueReader interface {
	Queue(ctx context.Context) ([]acd.Entry, error)
	Agents(ctx context.Context) ([]acd.Agent, error)
}

// operatorView is the JSON the operator page draws.
type operatorView struct {
	Node          string                `json:"node"`
	At            time.Time             `json:"at"`
	Registrations []opview.Registration `json:"registrations"`
	Calls         []opview.Call         `json:"calls"`
	Queue         []queueEntry          `json:"queue"`
	Interpreters  []interpreterState    `json:"interpreters"`
	Records       []recordJSON          `json:"records"`
	Unavailable   map[string]string     `json:"unavailable,omitempty"` // part -> why
}

type queueEntry struct {
	Direction string    `json:"direction"`
	Caller    string    `json:"caller"`
	Dialed    string    `json:"dialed"`
	QueuedAt  time.Time `json:"queued_at"`
	State     string    `json:"state"`
}

type interpreterState struct {
	CAID  string    `json:"ca_id"`
	State string    `json:"state"`
	Since time.Time `json:"since"`
}

type recordJSON struct {
	From      string    `json:"from"`
	To        string    `json:"to"`
	Direction string    `json:"direction,omitempty"`
	CAID      string    `json:"ca_id,omitempty"`
	StartedAt time.Time `json:"started_at"`
	Seconds   int       `json:"seconds"`
	Answered  bool      `json:"answered"`
	EndReason string    `json:"end_reason"`
	Status    int       `json:"status"`
}

// maxRecords is the recent call records the view lists.
const maxRecords = 20

func (g *Gateway) serveOperator(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	setWebHeaders(h)
	h.Set("Cache-Control", "no-store")
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if !g.isStaff(ctx, r) {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		w.Write([]byte(`{"error":{"code":"forbidden","message":"the operator view is for provider staff; sign in with a staff account"}}`))
		return
	}
	v := operatorView{Node: g.deps.Node, At: g.deps.Now().UTC(), Registrations: []opview.Registration{}, Calls: []opview.Call{},
		Queue: []queueEntry{}, Interpreters: []interpreterState{}, Records: []recordJSON{}, Unavailable: map[string]string{}}
	if g.deps.Live != nil {
		v.Registrations = opview.Registrations(g.deps.Node, g.deps.Live.Registrations())
		v.Calls = opview.Calls(g.deps.Node, g.deps.Live.ActiveCalls())
	}
	if q, ok := g.deps.Sessions.(queueReader); ok {
		if es, err := q.Queue(ctx); err == nil {
			for _, e := range es {
				v.Queue = append(v.Queue, queueEntry{Direction: e.Direction, Caller: e.Caller, Dialed: e.Dialed, QueuedAt: e.QueuedAt, State: e.State})
			}
		} else {
			v.Unavailable["queue"] = "the queue could not be read"
		}
		if as, err := q.Agents(ctx); err == nil {
			for _, a := range as {
				v.Interpreters = append(v.Interpreters, interpreterState{CAID: a.CAID, State: a.State, Since: a.Since})
			}
		} else {
			v.Unavailable["interpreters"] = "the interpreters could not be read"
		}
	} else {
		v.Unavailable["queue"] = "this node runs no interpreter center"
	}
	if g.deps.Calls != nil {
		if cs, err := g.deps.Calls.ListCalls(ctx, store.CallFilter{Limit: maxRecords}); err == nil {
			for _, c := range cs {
				rec := recordJSON{From: c.From, To: c.To, Direction: c.Direction, CAID: c.CAID, StartedAt: c.StartedAt,
					Answered: !c.AnsweredAt.IsZero(), EndReason: c.EndReason, Status: c.Status}
				if rec.Answered && !c.EndedAt.IsZero() {
					rec.Seconds = int(c.EndedAt.Sub(c.AnsweredAt).Seconds())
				}
				v.Records = append(v.Records, rec)
			}
		} else {
			v.Unavailable["records"] = "the call records could not be read"
		}
	}
	h.Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// isStaff checks the request's ZDial session token: valid, and its account
// is staff.
func (g *Gateway) isStaff(ctx context.Context, r *http.Request) bool {
	if g.deps.Accounts == nil {
		return false
	}
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" || len(tok) > 512 {
		return false
	}
	sess, err := g.deps.Sessions.Session(ctx, store.TokenHash(strings.TrimSpace(tok)))
	if err != nil || sess.Kind != store.SessionZDial || !sess.Valid(g.deps.Now()) {
		return false
	}
	c, err := g.deps.Accounts.Customer(ctx, sess.CustomerID)
	return err == nil && c.EffectiveRole() == store.RoleStaff
}
