package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/store"
)

// The interpreter center's queue and agents (acd.Store). A claim reads the
// rows it changes with ForUpdate in its write transaction: on PostgreSQL
// the row locks keep two nodes from offering one call or one interpreter
// twice; SQLite has one writer, which serializes the claims anyway.

var _ acd.Store = (*Store)(nil)

const agentCols = `ca_id, state, since, call_id`

func scanAgent(sc scanner) (acd.Agent, error) {
	var a acd.Agent
	err := sc.Scan(&a.CAID, &a.State, timeCol{&a.Since}, &a.CallID)
	return a, err
}

const queueCols = `call_id, node, priority, queued_at, state, direction, dialed, user_number, caller, display, user_ip, location`

func scanEntry(sc scanner) (acd.Entry, error) {
	var e acd.Entry
	err := sc.Scan(&e.CallID, &e.Node, &e.Priority, timeCol{&e.QueuedAt}, &e.State, &e.Direction, &e.Dialed, &e.User,
		&e.Caller, &e.Display, &e.UserIP, &e.Location)
	return e, err
}

// SetAgentState sets (or creates) an agent's state.
func (s *Store) SetAgentState(ctx context.Context, caID, state, callID string, now time.Time) (acd.Agent, error) {
	if !slices.Contains(acd.States, state) {
		return acd.Agent{}, s.errorf("set agent %q: unknown state %q", caID, state)
	}
	a := acd.Agent{CAID: caID, State: state, Since: s.d.Round(orNow(now)), CallID: callID}
	err := s.update(ctx, fmt.Sprintf("set agent %q", caID), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO acd_agents (`+agentCols+`) VALUES ($1, $2, $3, $4)
			ON CONFLICT (ca_id) DO UPDATE SET state = excluded.state, since = excluded.since, call_id = excluded.call_id`,
			a.CAID, a.State, s.d.Time(a.Since), a.CallID)
		return err
	})
	if err != nil {
		return acd.Agent{}, err
	}
	return a, nil
}

// Agent returns one agent, or store.ErrNotFound.
func (s *Store) Agent(ctx context.Context, caID string) (acd.Agent, error) {
	a, err := scanAgent(s.read.QueryRowContext(ctx, `SELECT `+agentCols+` FROM acd_agents WHERE ca_id = $1`, caID))
	if err != nil {
		return acd.Agent{}, s.readErr(fmt.Sprintf("agent %q", caID), err)
	}
	return a, nil
}

// Agents lists every agent by CA ID.
func (s *Store) Agents(ctx context.Context) ([]acd.Agent, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+agentCols+` FROM acd_agents ORDER BY ca_id`)
	as, err := collect(rows, err, scanAgent)
	if err != nil {
		return nil, s.readErr("agents", err)
	}
	return as, nil
}

// Enqueue adds a waiting call; a Call-ID already queued is store.ErrExists.
func (s *Store) Enqueue(ctx context.Context, e acd.Entry) error {
	if e.CallID == "" {
		return s.errorf("enqueue: empty call id")
	}
	e.QueuedAt = orNow(e.QueuedAt)
	return s.update(ctx, fmt.Sprintf("enqueue %q", e.CallID), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO acd_queue (`+queueCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
			e.CallID, e.Node, e.Priority, s.d.Time(e.QueuedAt), acd.Waiting, e.Direction, e.Dialed, e.User,
			e.Caller, e.Display, e.UserIP, e.Location)
		return err
	})
}

// Dequeue removes a call from the queue; one not there is no error.
func (s *Store) Dequeue(ctx context.Context, callID string) error {
	return s.update(ctx, fmt.Sprintf("dequeue %q", callID), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM acd_queue WHERE call_id = $1`, callID)
		return err
	})
}

// Queue lists the queue in service order.
func (s *Store) Queue(ctx context.Context) ([]acd.Entry, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+queueCols+` FROM acd_queue ORDER BY priority DESC, queued_at, call_id`)
	q, err := collect(rows, err, scanEntry)
	if err != nil {
		return nil, s.readErr("queue", err)
	}
	return acd.Ordered(q), nil
}

// ClaimOffer marks a waiting call offered to those of caIDs still ready.
func (s *Store) ClaimOffer(ctx context.Context, callID string, caIDs []string, now time.Time) ([]string, error) {
	now = orNow(now)
	var claimed []string
	err := s.update(ctx, fmt.Sprintf("claim %q", callID), func(tx *sql.Tx) error {
		claimed = nil
		var state string
		err := tx.QueryRowContext(ctx, `SELECT state FROM acd_queue WHERE call_id = $1`+s.d.ForUpdate, callID).Scan(&state)
		if err == sql.ErrNoRows || err == nil && state != acd.Waiting {
			return acd.ErrTaken
		} else if err != nil {
			return err
		}
		for _, id := range caIDs {
			var st string
			err := tx.QueryRowContext(ctx, `SELECT state FROM acd_agents WHERE ca_id = $1`+s.d.ForUpdate, id).Scan(&st)
			if err == sql.ErrNoRows || err == nil && st != acd.Ready {
				continue
			} else if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE acd_agents SET state = $2, since = $3, call_id = $4 WHERE ca_id = $1`,
				id, acd.Offered, s.d.Time(now), callID); err != nil {
				return err
			}
			claimed = append(claimed, id)
		}
		if len(claimed) == 0 {
			return acd.ErrTaken
		}
		_, err = tx.ExecContext(ctx, `UPDATE acd_queue SET state = $2 WHERE call_id = $1`, callID, acd.Offering)
		return err
	})
	if err != nil {
		return nil, err
	}
	return claimed, nil
}

// ReleaseOffer ends one agent's offer; the call waits again once no agent
// is offered it.
func (s *Store) ReleaseOffer(ctx context.Context, callID, caID, state string, now time.Time) error {
	if !slices.Contains(acd.States, state) {
		return s.errorf("release %q: unknown state %q", callID, state)
	}
	now = orNow(now)
	return s.update(ctx, fmt.Sprintf("release %q from %q", callID, caID), func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE acd_agents SET state = $3, since = $4, call_id = ''
			WHERE ca_id = $1 AND call_id = $2 AND state = $5`, caID, callID, state, s.d.Time(now), acd.Offered); err != nil {
			return err
		}
		// Lock the call's row before counting its offers, so two releases
		// on two nodes cannot both see the other's offer still open.
		var qs string
		err := tx.QueryRowContext(ctx, `SELECT state FROM acd_queue WHERE call_id = $1`+s.d.ForUpdate, callID).Scan(&qs)
		if err == sql.ErrNoRows {
			return nil
		} else if err != nil {
			return err
		}
		var open int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM acd_agents WHERE call_id = $1 AND state = $2`,
			callID, acd.Offered).Scan(&open); err != nil {
			return err
		}
		if open == 0 {
			_, err = tx.ExecContext(ctx, `UPDATE acd_queue SET state = $2 WHERE call_id = $1`, callID, acd.Waiting)
		}
		return err
	})
}

// AnswerOffer gives the call to the agent that answered.
func (s *Store) AnswerOffer(ctx context.Context, callID, caID string, now time.Time) error {
	now = orNow(now)
	return s.update(ctx, fmt.Sprintf("answer %q by %q", callID, caID), func(tx *sql.Tx) error {
		var st, cid string
		err := tx.QueryRowContext(ctx, `SELECT state, call_id FROM acd_agents WHERE ca_id = $1`+s.d.ForUpdate, caID).Scan(&st, &cid)
		if err == sql.ErrNoRows || err == nil && (st != acd.Offered || cid != callID) {
			return acd.ErrTaken
		} else if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE acd_agents SET state = $2, since = $3 WHERE ca_id = $1`,
			caID, acd.InCall, s.d.Time(now)); err != nil {
			return err
		}
		// The others offered the same call (911) were never away: ready
		// again at once.
		if _, err := tx.ExecContext(ctx, `UPDATE acd_agents SET state = $2, since = $4, call_id = '' WHERE call_id = $1 AND state = $3`,
			callID, acd.Ready, acd.Offered, s.d.Time(now)); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM acd_queue WHERE call_id = $1`, callID)
		return err
	})
}

// FinishWrapUp moves the agents in wrap-up since before `before` to ready.
func (s *Store) FinishWrapUp(ctx context.Context, before, now time.Time) (int, error) {
	var n int64
	err := s.update(ctx, "finish wrap-up", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE acd_agents SET state = $1, since = $2, call_id = '' WHERE state = $3 AND since <= $4`,
			acd.Ready, s.d.Time(orNow(now)), acd.WrapUp, s.d.Time(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// ChangeCall applies change to the stored record of callID in one write
// transaction, the row locked: a relay record is completed by both legs,
// possibly on two nodes at once, and neither may undo the other's fields.
// A zero StartedAt after change keeps the stored one.
func (s *Store) ChangeCall(ctx context.Context, callID string, change func(*store.Call)) error {
	return s.update(ctx, fmt.Sprintf("change call %q", callID), func(tx *sql.Tx) error {
		c, err := scanCall(tx.QueryRowContext(ctx, `SELECT `+callCols+` FROM calls WHERE call_id = $1`+s.d.ForUpdate, callID))
		if err != nil {
			return err
		}
		change(&c)
		c.CallID = callID
		q, args, err := s.updateCallSQL(c)
		if err != nil {
			return err
		}
		return mustAffect(tx.ExecContext(ctx, q, args...))
	})
}
