package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/z5vrs/z5/internal/store"
)

// ChangeRegistrations applies cs in order in one transaction, each as
// PutRegistration (expired rows of its number swept) or, with Delete, as
// DeleteRegistration. A node's location writer hands it everything queued
// since its last write, so a burst of new bindings costs one commit.
func (s *Store) ChangeRegistrations(ctx context.Context, cs []store.RegistrationChange) error {
	if len(cs) == 0 {
		return nil
	}
	return s.update(ctx, fmt.Sprintf("change %d registrations", len(cs)), func(tx *sql.Tx) error {
		// Bound to the transaction from the statements Prepare made, or
		// else prepared once per transaction: statement preparation, not
		// the row, is most of the cost of a small write.
		var sweep, put, del *sql.Stmt
		prepare := func(st **sql.Stmt, query string, made *sql.Stmt) error {
			if *st != nil {
				return nil
			}
			if made != nil {
				*st = tx.StmtContext(ctx, made)
				return nil
			}
			var err error
			*st, err = tx.PrepareContext(ctx, query)
			return err
		}
		regs := s.regs
		if regs == nil {
			regs = &regStmts{}
		}
		defer func() {
			for _, st := range []*sql.Stmt{sweep, put, del} {
				if st != nil {
					st.Close() // a statement Prepare made stays open
				}
			}
		}()
		for _, c := range cs {
			r := c.Registration
			if c.Delete {
				if err := prepare(&del, regDeleteSQL, regs.del); err != nil {
					return err
				}
				if _, err := del.ExecContext(ctx, r.Number, r.DeviceID, r.Node, r.FlowID); err != nil {
					return err
				}
				continue
			}
			r.UpdatedAt = orNow(r.UpdatedAt)
			if err := prepare(&sweep, regSweepSQL, regs.sweep); err != nil {
				return err
			}
			if _, err := sweep.ExecContext(ctx, r.Number, s.d.Time(r.UpdatedAt)); err != nil {
				return err
			}
			if err := prepare(&put, regPutSQL, regs.put); err != nil {
				return err
			}
			if _, err := put.ExecContext(ctx, r.Number, r.DeviceID, r.Node, r.FlowID, r.Contact, r.Instance,
				s.d.Time(r.ExpiresAt), s.d.Time(r.UpdatedAt)); err != nil {
				return err
			}
		}
		return nil
	})
}

// regStmts are ChangeRegistrations' statements as Prepare made them.
type regStmts struct{ sweep, put, del *sql.Stmt }

const (
	regDeleteSQL = `DELETE FROM registrations WHERE number = $1 AND device_id = $2 AND node = $3 AND flow_id = $4`
	regSweepSQL  = `DELETE FROM registrations WHERE number = $1 AND expires_at <= $2`
	regPutSQL    = `INSERT INTO registrations
		(number, device_id, node, flow_id, contact, instance, expires_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		ON CONFLICT (number, device_id, node, flow_id) DO UPDATE SET
		contact = excluded.contact, instance = excluded.instance,
		expires_at = excluded.expires_at, updated_at = excluded.updated_at`
)
