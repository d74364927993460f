package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// shortHash names a session in errors without revealing its full hash.
func shortHash(h []byte) string {
	if len(h) > 4 {
		h = h[:4]
	}
	return fmt.Sprintf("%x…", h)
}

// CreateSession stores s. A token hash already stored is store.ErrExists;
// an unknown customer is store.ErrNotFound.
func (s *Store) CreateSession(ctx context.Context, se store.Session) error {
	if len(se.TokenHash) == 0 {
		return s.errorf("create session: empty token hash")
	}
	if se.Kind != store.SessionZDial && se.Kind != store.SessionMCS {
		return s.errorf("create session: kind %q is neither %q nor %q", se.Kind, store.SessionZDial, store.SessionMCS)
	}
	se.CreatedAt = orNow(se.CreatedAt)
	var parent any // NULL when there is no parent
	if len(se.ParentHash) > 0 {
		parent = se.ParentHash
	}
	return s.update(ctx, "create session "+shortHash(se.TokenHash), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO sessions
			(token_hash, kind, customer_id, number, device_id, parent_hash, created_at, expires_at, revoked_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			se.TokenHash, se.Kind, se.CustomerID, se.Number, se.DeviceID, parent,
			s.d.Time(se.CreatedAt), s.d.Time(se.ExpiresAt), s.d.NullTime(se.RevokedAt))
		return err
	})
}

// Session returns the session with tokenHash, valid or not (see
// store.Session.Valid), or store.ErrNotFound.
func (s *Store) Session(ctx context.Context, tokenHash []byte) (store.Session, error) {
	var se store.Session
	err := s.read.QueryRowContext(ctx, `SELECT token_hash, kind, customer_id, number, device_id, parent_hash,
		created_at, expires_at, revoked_at FROM sessions WHERE token_hash = $1`, tokenHash).Scan(
		&se.TokenHash, &se.Kind, &se.CustomerID, &se.Number, &se.DeviceID, &se.ParentHash,
		timeCol{&se.CreatedAt}, timeCol{&se.ExpiresAt}, timeCol{&se.RevokedAt})
	if err != nil {
		return store.Session{}, s.readErr("session "+shortHash(tokenHash), err)
	}
	if len(se.ParentHash) == 0 {
		se.ParentHash = nil
	}
	return se, nil
}

// RevokeSession marks the session and its children (ParentHash) revoked at
// now. Sessions revoked earlier keep their first revocation time.
func (s *Store) RevokeSession(ctx context.Context, tokenHash []byte, now time.Time) error {
	return s.update(ctx, "revoke session "+shortHash(tokenHash), func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM sessions WHERE token_hash = $1`, tokenHash).Scan(&one); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE sessions SET revoked_at = $1
			WHERE (token_hash = $2 OR parent_hash = $2) AND revoked_at IS `+s.d.Never, s.d.NullTime(now), tokenHash)
		return err
	})
}

// DeleteExpiredSessions removes sessions whose expiry is at or before now
// and reports how many went.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	var n int64
	err := s.update(ctx, "delete expired sessions", func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, s.d.Time(now))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}
