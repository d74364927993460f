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
		for _, c := range cs {
			r := c.Registration
			if c.Delete {
				if _, err := s.txExec(ctx, tx, regDeleteSQL, r.Number, r.DeviceID, r.Node, r.FlowID); err != nil {
					return err
				}
				continue
			}
			r.UpdatedAt = orNow(r.UpdatedAt)
			if _, err := s.txExec(ctx, tx, regSweepSQL, r.Number, s.d.Time(r.UpdatedAt)); err != nil {
				return err
			}
			if _, err := s.txExec(ctx, tx, regPutSQL, r.Number, r.DeviceID, r.Node, r.FlowID, r.Contact, r.Instance,
				s.d.Time(r.ExpiresAt), s.d.Time(r.UpdatedAt)); err != nil {
				return err
			}
		}
		return nil
	})
}

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
