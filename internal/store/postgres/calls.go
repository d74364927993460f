package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/z5vrs/z5/internal/store"
)

// dbStreamStats is the stored JSON form of store.StreamStats (the same as
// SQLite's). jsonb keeps numbers exact, so 64-bit counters survive.
type dbStreamStats struct {
	Leg       string  `json:"leg"`
	Media     string  `json:"media"`
	Packets   uint64  `json:"packets"`
	Bytes     uint64  `json:"bytes"`
	Lost      int64   `json:"lost"`
	JitterMS  float64 `json:"jitter_ms"`
	Dropped   uint64  `json:"dropped"`
	RTCPCount uint64  `json:"rtcp_count"`
}

func statsJSON(ss []store.StreamStats) (any, error) {
	if len(ss) == 0 {
		return nil, nil
	}
	out := make([]dbStreamStats, len(ss))
	for i, s := range ss {
		out[i] = dbStreamStats(s)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func statsFromJSON(b []byte) ([]store.StreamStats, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var in []dbStreamStats
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("decode media stats: %w", err)
	}
	if len(in) == 0 {
		return nil, nil
	}
	out := make([]store.StreamStats, len(in))
	for i, s := range in {
		out[i] = store.StreamStats(s)
	}
	return out, nil
}

const callCols = `call_id, from_number, to_number, node, started_at, answered_at, ended_at, end_reason, status, media_stats`

func scanCall(sc scanner) (store.Call, error) {
	var c store.Call
	var started, answered, ended pgtype.Timestamptz
	var stats []byte
	if err := sc.Scan(&c.CallID, &c.From, &c.To, &c.Node, &started, &answered, &ended, &c.EndReason, &c.Status, &stats); err != nil {
		return store.Call{}, err
	}
	c.StartedAt, c.AnsweredAt, c.EndedAt = goTime(started), goTime(answered), goTime(ended)
	var err error
	c.MediaStats, err = statsFromJSON(stats)
	return c, err
}

// CreateCall stores a new call record; StartedAt defaults to now and a
// Call-ID already stored is store.ErrExists.
func (s *Store) CreateCall(ctx context.Context, c store.Call) error {
	if c.CallID == "" {
		return errors.New("postgres: create call: empty call id")
	}
	stats, err := statsJSON(c.MediaStats)
	if err != nil {
		return fmt.Errorf("postgres: create call %q: %w", c.CallID, err)
	}
	c.StartedAt = orNow(c.StartedAt)
	return s.write(ctx, fmt.Sprintf("create call %q", c.CallID), func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO calls (`+callCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			c.CallID, c.From, c.To, c.Node, pgTime(c.StartedAt), nullTime(c.AnsweredAt), nullTime(c.EndedAt),
			c.EndReason, c.Status, stats)
		return err
	})
}

// UpdateCall replaces the record of c.CallID (store.ErrNotFound when
// missing). A zero StartedAt keeps the stored one.
func (s *Store) UpdateCall(ctx context.Context, c store.Call) error {
	stats, err := statsJSON(c.MediaStats)
	if err != nil {
		return fmt.Errorf("postgres: update call %q: %w", c.CallID, err)
	}
	return s.write(ctx, fmt.Sprintf("update call %q", c.CallID), func(tx pgx.Tx) error {
		return mustAffect(tx.Exec(ctx, `UPDATE calls SET from_number = $1, to_number = $2, node = $3,
			started_at = COALESCE($4, started_at),
			answered_at = $5, ended_at = $6, end_reason = $7, status = $8, media_stats = $9 WHERE call_id = $10`,
			c.From, c.To, c.Node, nullTime(c.StartedAt), nullTime(c.AnsweredAt), nullTime(c.EndedAt),
			c.EndReason, c.Status, stats, c.CallID))
	})
}

// Call returns the record of callID, or store.ErrNotFound.
func (s *Store) Call(ctx context.Context, callID string) (store.Call, error) {
	c, err := scanCall(s.pool.QueryRow(ctx, `SELECT `+callCols+` FROM calls WHERE call_id = $1`, callID))
	if err != nil {
		return store.Call{}, readErr(fmt.Sprintf("call %q", callID), err)
	}
	return c, nil
}

// ListCalls returns the calls matching f, newest (StartedAt) first.
func (s *Store) ListCalls(ctx context.Context, f store.CallFilter) ([]store.Call, error) {
	var limit any // NULL: LIMIT ALL
	if f.Limit > 0 {
		limit = int64(f.Limit)
	}
	rows, err := s.pool.Query(ctx, `SELECT `+callCols+` FROM calls
		WHERE ($1::text = '' OR from_number = $1 OR to_number = $1) AND ($2::timestamptz IS NULL OR started_at >= $2)
		ORDER BY started_at DESC, call_id DESC LIMIT $3`, f.Number, nullTime(f.Since), limit)
	cs, err := collect(rows, err, scanCall)
	if err != nil {
		return nil, readErr("list calls", err)
	}
	return cs, nil
}
