package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// dbStreamStats is the stored JSON form of store.StreamStats. (PostgreSQL's
// jsonb keeps numbers exact, so 64-bit counters survive there too.)
type dbStreamStats struct {
	Leg       string  `json:"leg"`
	Media     string  `json:"media"`
	Packets   uint64  `json:"packets"`
	Bytes     uint64  `json:"bytes"`
	Lost      int64   `json:"lost"`
	JitterMS  float64 `json:"jitter_ms"`
	Dropped   uint64  `json:"dropped"`
	RTCPCount uint64  `json:"rtcp_count"`
	Encrypted bool    `json:"encrypted"`
}

func statsJSON(ss []store.StreamStats) (any, error) {
	return listJSON(ss, func(s store.StreamStats) dbStreamStats { return dbStreamStats(s) })
}

func statsFromJSON(b []byte) ([]store.StreamStats, error) {
	ss, err := listFromJSON(b, func(s dbStreamStats) store.StreamStats { return store.StreamStats(s) })
	if err != nil {
		return nil, fmt.Errorf("decode media stats: %w", err)
	}
	return ss, nil
}

const callCols = `call_id, from_number, to_number, node, started_at, answered_at, ended_at, end_reason, status, media_stats,
	direction, ca_id, dialed, user_number, user_ip, queued_at, offered_at, session_start, session_end,
	conversation_start, conversation_end, requeue_of`

func scanCall(sc scanner) (store.Call, error) {
	var c store.Call
	var stats []byte
	if err := sc.Scan(&c.CallID, &c.From, &c.To, &c.Node, timeCol{&c.StartedAt}, timeCol{&c.AnsweredAt}, timeCol{&c.EndedAt},
		&c.EndReason, &c.Status, &stats,
		&c.Direction, &c.CAID, &c.Dialed, &c.UserNumber, &c.UserIP, timeCol{&c.QueuedAt}, timeCol{&c.OfferedAt},
		timeCol{&c.SessionStart}, timeCol{&c.SessionEnd}, timeCol{&c.ConversationStart}, timeCol{&c.ConversationEnd}, &c.RequeueOf); err != nil {
		return store.Call{}, err
	}
	var err error
	c.MediaStats, err = statsFromJSON(stats)
	return c, err
}

// relayArgs are the relay columns' values of c, in callCols order.
func (s *Store) relayArgs(c store.Call) []any {
	return []any{c.Direction, c.CAID, c.Dialed, c.UserNumber, c.UserIP, s.d.NullTime(c.QueuedAt), s.d.NullTime(c.OfferedAt),
		s.d.NullTime(c.SessionStart), s.d.NullTime(c.SessionEnd), s.d.NullTime(c.ConversationStart), s.d.NullTime(c.ConversationEnd), c.RequeueOf}
}

// CreateCall stores a new call record; StartedAt defaults to now and a
// Call-ID already stored is store.ErrExists.
func (s *Store) CreateCall(ctx context.Context, c store.Call) error {
	if c.CallID == "" {
		return s.errorf("create call: empty call id")
	}
	stats, err := statsJSON(c.MediaStats)
	if err != nil {
		return s.errorf("create call %q: %w", c.CallID, err)
	}
	args := s.insertCallArgs(c, stats)
	return s.update(ctx, fmt.Sprintf("create call %q", c.CallID), func(tx *sql.Tx) error {
		_, err := s.txExec(ctx, tx, insertCallSQL, args...)
		return err
	})
}

const insertCallSQL = `INSERT INTO calls (` + callCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
	$11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)`

// insertCallAgainSQL ends insertCallSQL where a record already written
// is not an error (WriteCalls).
const insertCallAgainSQL = ` ON CONFLICT (call_id) DO NOTHING`

// callForUpdateSQL reads a record for a change in the same transaction;
// New writes it out once for the dialect (Store.callForUpdate).
func callForUpdateSQL(d Dialect) string {
	return `SELECT ` + callCols + ` FROM calls WHERE call_id = $1` + d.ForUpdate
}

// insertCallArgs are insertCallSQL's values for c; StartedAt defaults to
// now.
func (s *Store) insertCallArgs(c store.Call, stats any) []any {
	c.StartedAt = orNow(c.StartedAt)
	return append([]any{c.CallID, c.From, c.To, c.Node, s.d.Time(c.StartedAt), s.d.NullTime(c.AnsweredAt), s.d.NullTime(c.EndedAt),
		c.EndReason, c.Status, stats}, s.relayArgs(c)...)
}

// WriteCalls applies ws in order in one write transaction; the writes that
// changed nothing are returned by index (see store.Store).
func (s *Store) WriteCalls(ctx context.Context, ws []store.CallWrite) ([]int, error) {
	for _, w := range ws {
		if w.Call.CallID == "" {
			return nil, s.errorf("write calls: empty call id")
		}
	}
	var skipped []int
	err := s.update(ctx, fmt.Sprintf("write %d call records", len(ws)), func(tx *sql.Tx) error {
		skipped = skipped[:0] // a retried transaction starts afresh
		for i, w := range ws {
			changed, err := s.writeCall(ctx, tx, w)
			if err != nil {
				return fmt.Errorf("call %q: %w", w.Call.CallID, err)
			}
			if !changed {
				skipped = append(skipped, i)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return skipped, nil
}

// writeCall is one write of WriteCalls; it reports whether a row changed.
func (s *Store) writeCall(ctx context.Context, tx *sql.Tx, w store.CallWrite) (bool, error) {
	c := w.Call
	switch w.Kind {
	case store.CallInsert:
		stats, err := statsJSON(c.MediaStats)
		if err != nil {
			return false, err
		}
		// DO NOTHING: a batch whose commit was acknowledged too late to
		// be seen is written again, and must not fail then.
		return affected(s.txExec(ctx, tx, insertCallSQL+insertCallAgainSQL, s.insertCallArgs(c, stats)...))
	case store.CallReplace:
		q, args, err := s.updateCallSQL(c)
		if err != nil {
			return false, err
		}
		return affected(s.txExec(ctx, tx, q, args...))
	case store.CallChange:
		var stored store.Call
		err := s.txScanRow(ctx, tx, s.callForUpdate, func(sc scanner) (err error) {
			stored, err = scanCall(sc)
			return err
		}, c.CallID)
		if errors.Is(err, sql.ErrNoRows) {
			return false, nil
		} else if err != nil {
			return false, err
		}
		w.Change(&stored)
		stored.CallID = c.CallID
		q, args, err := s.updateCallSQL(stored)
		if err != nil {
			return false, err
		}
		return affected(s.txExec(ctx, tx, q, args...))
	}
	return false, fmt.Errorf("unknown call write kind %d", w.Kind)
}

// affected reports whether a statement changed a row.
func affected(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

// CloseLostCalls ends node's open records started before startedBefore
// with end reason store.EndNodeLost (see store.Store).
func (s *Store) CloseLostCalls(ctx context.Context, node string, startedBefore, lastKnown time.Time) ([]string, error) {
	var closed []string
	err := s.update(ctx, "close lost calls of node "+node, func(tx *sql.Tx) error {
		closed = closed[:0]
		rows, err := tx.QueryContext(ctx, `SELECT `+callCols+` FROM calls
			WHERE node = $1 AND ended_at IS `+s.d.Never+` AND started_at < $2 ORDER BY call_id`+s.d.ForUpdate,
			node, s.d.Time(startedBefore))
		cs, err := collect(rows, err, scanCall)
		if err != nil {
			return err
		}
		for _, c := range cs {
			c = lostEnd(c, lastKnown)
			// Still open: another node sweeping at once, or the node
			// itself writing the real end, may have been first.
			ok, err := affected(tx.ExecContext(ctx, `UPDATE calls SET ended_at = $2, end_reason = $3,
				session_end = $4, conversation_end = $5 WHERE call_id = $1 AND ended_at IS `+s.d.Never,
				c.CallID, s.d.NullTime(c.EndedAt), c.EndReason, s.d.NullTime(c.SessionEnd), s.d.NullTime(c.ConversationEnd)))
			if err != nil {
				return err
			}
			if ok {
				closed = append(closed, c.CallID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return closed, nil
}

// lostEnd is the end of an open record whose node was last known alive at
// lastKnown: no end before the record's own start, answer, session or
// conversation start (the node may have died between two heartbeats just
// after those), and the relay session and conversation, when begun, end
// with it. Status stays what the call reached.
func lostEnd(c store.Call, lastKnown time.Time) store.Call {
	end := lastKnown
	for _, t := range []time.Time{c.StartedAt, c.AnsweredAt, c.SessionStart, c.ConversationStart} {
		if t.After(end) {
			end = t
		}
	}
	c.EndedAt, c.EndReason = end, store.EndNodeLost
	if !c.SessionStart.IsZero() && c.SessionEnd.IsZero() {
		c.SessionEnd = end
	}
	if !c.ConversationStart.IsZero() && c.ConversationEnd.IsZero() {
		c.ConversationEnd = end
	}
	return c
}

// UpdateCall replaces the record of c.CallID (store.ErrNotFound when
// missing). A zero StartedAt keeps the stored one.
func (s *Store) UpdateCall(ctx context.Context, c store.Call) error {
	q, args, err := s.updateCallSQL(c)
	if err != nil {
		return err
	}
	return s.update(ctx, fmt.Sprintf("update call %q", c.CallID), func(tx *sql.Tx) error {
		return mustAffect(s.txExec(ctx, tx, q, args...))
	})
}

// updateCallSQL is UpdateCall's statement for c.
func (s *Store) updateCallSQL(c store.Call) (string, []any, error) {
	stats, err := statsJSON(c.MediaStats)
	if err != nil {
		return "", nil, s.errorf("update call %q: %w", c.CallID, err)
	}
	args := append([]any{c.CallID, c.From, c.To, c.Node, s.d.NullTime(c.AnsweredAt), s.d.NullTime(c.EndedAt),
		c.EndReason, c.Status, stats}, s.relayArgs(c)...)
	if !c.StartedAt.IsZero() {
		args = append(args, s.d.Time(c.StartedAt))
	}
	return updateCallQuery(!c.StartedAt.IsZero()), args, nil
}

// updateCallSet is what an update of a call record sets; with
// started_at, $22 too.
const updateCallSet = `from_number = $2, to_number = $3, node = $4, answered_at = $5, ended_at = $6, end_reason = $7,
		status = $8, media_stats = $9, direction = $10, ca_id = $11, dialed = $12, user_number = $13, user_ip = $14,
		queued_at = $15, offered_at = $16, session_start = $17, session_end = $18, conversation_start = $19,
		conversation_end = $20, requeue_of = $21`

// updateCallQuery is updateCallSQL's statement, with started_at or
// without it: constants, so that a write neither builds its query nor
// finds another than Prepare made.
func updateCallQuery(started bool) string {
	if started {
		return `UPDATE calls SET ` + updateCallSet + `, started_at = $22 WHERE call_id = $1`
	}
	return `UPDATE calls SET ` + updateCallSet + ` WHERE call_id = $1`
}

// Call returns the record of callID, or store.ErrNotFound.
func (s *Store) Call(ctx context.Context, callID string) (store.Call, error) {
	c, err := scanCall(s.read.QueryRowContext(ctx, `SELECT `+callCols+` FROM calls WHERE call_id = $1`, callID))
	if err != nil {
		return store.Call{}, s.readErr(fmt.Sprintf("call %q", callID), err)
	}
	return c, nil
}

// ListCalls returns the calls matching f, newest (StartedAt) first. A zero
// Since is the zero time, before every call.
func (s *Store) ListCalls(ctx context.Context, f store.CallFilter) ([]store.Call, error) {
	limit := int64(math.MaxInt64) // both databases take it as "no limit"
	if f.Limit > 0 {
		limit = int64(f.Limit)
	}
	rows, err := s.read.QueryContext(ctx, `SELECT `+callCols+` FROM calls
		WHERE (CAST($1 AS TEXT) = '' OR from_number = $1 OR to_number = $1) AND started_at >= $2
		ORDER BY started_at DESC, call_id DESC LIMIT $3`, f.Number, s.d.Time(f.Since), limit)
	cs, err := collect(rows, err, scanCall)
	if err != nil {
		return nil, s.readErr("list calls", err)
	}
	return cs, nil
}

// RelayCalls returns the relay call records queued in [from, to), oldest
// first.
func (s *Store) RelayCalls(ctx context.Context, from, to time.Time) ([]store.Call, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+callCols+` FROM calls
		WHERE direction <> '' AND queued_at >= $1 AND queued_at < $2
		ORDER BY queued_at, call_id`, s.d.Time(from), s.d.Time(to))
	cs, err := collect(rows, err, scanCall)
	if err != nil {
		return nil, s.readErr("list relay calls", err)
	}
	return cs, nil
}
