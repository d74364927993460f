package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// RecordLicense stores the audit record of an issued license; an ID
// already recorded is store.ErrExists.
func (s *Store) RecordLicense(ctx context.Context, l store.License) error {
	if l.ID == "" {
		return s.errorf("record license: empty id")
	}
	var features any // NULL when there are none
	if len(l.Features) > 0 {
		var err error
		if features, err = s.d.Strings(l.Features); err != nil {
			return s.errorf("record license %s: %w", l.ID, err)
		}
	}
	l.IssuedAt = orNow(l.IssuedAt)
	return s.update(ctx, "record license "+l.ID, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO licenses (id, number, device_id, features, not_before, not_after, issued_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			l.ID, l.Number, l.DeviceID, features, s.d.Time(l.NotBefore), s.d.Time(l.NotAfter), s.d.Time(l.IssuedAt))
		return err
	})
}

// PutRegistration inserts or replaces the registration of one flow
// (Number, DeviceID, Node, FlowID). UpdatedAt defaults to now.
// Registrations of the same number that expired by UpdatedAt (the caller's
// clock) are swept in the same transaction, so the table does not grow
// with every dropped flow.
func (s *Store) PutRegistration(ctx context.Context, r store.Registration) error {
	r.UpdatedAt = orNow(r.UpdatedAt)
	return s.update(ctx, fmt.Sprintf("put registration %s/%d on %s", r.Number, r.DeviceID, r.Node), func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM registrations WHERE number = $1 AND expires_at <= $2`,
			r.Number, s.d.Time(r.UpdatedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO registrations
			(number, device_id, node, flow_id, contact, instance, expires_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (number, device_id, node, flow_id) DO UPDATE SET
			contact = excluded.contact, instance = excluded.instance,
			expires_at = excluded.expires_at, updated_at = excluded.updated_at`,
			r.Number, r.DeviceID, r.Node, r.FlowID, r.Contact, r.Instance, s.d.Time(r.ExpiresAt), s.d.Time(r.UpdatedAt))
		return err
	})
}

// DeleteRegistration removes one flow's registration. Removing one that is
// already gone is not an error: a flow may close after its binding expired.
func (s *Store) DeleteRegistration(ctx context.Context, number string, deviceID int64, node, flowID string) error {
	return s.update(ctx, fmt.Sprintf("delete registration %s/%d on %s", number, deviceID, node), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM registrations WHERE number = $1 AND device_id = $2 AND node = $3 AND flow_id = $4`,
			number, deviceID, node, flowID)
		return err
	})
}

// Registrations returns the number's registrations unexpired at now,
// ordered by device, node and flow.
func (s *Store) Registrations(ctx context.Context, number string, now time.Time) ([]store.Registration, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT number, device_id, node, flow_id, contact, instance, expires_at, updated_at
		FROM registrations WHERE number = $1 AND expires_at > $2 ORDER BY device_id, node, flow_id`, number, s.d.Time(now))
	rs, err := collect(rows, err, func(sc scanner) (store.Registration, error) {
		var r store.Registration
		err := sc.Scan(&r.Number, &r.DeviceID, &r.Node, &r.FlowID, &r.Contact, &r.Instance,
			timeCol{&r.ExpiresAt}, timeCol{&r.UpdatedAt})
		return r, err
	})
	if err != nil {
		return nil, s.readErr("registrations of "+number, err)
	}
	return rs, nil
}

// Heartbeat records a node's status, replacing its previous one. LastSeen
// defaults to now.
func (s *Store) Heartbeat(ctx context.Context, n store.NodeStatus) error {
	if n.Name == "" {
		return s.errorf("heartbeat: empty node name")
	}
	n.LastSeen = orNow(n.LastSeen)
	return s.update(ctx, "heartbeat of "+n.Name, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO nodes (name, site, address, healthy, last_seen) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (name) DO UPDATE SET site = excluded.site, address = excluded.address,
			healthy = excluded.healthy, last_seen = excluded.last_seen`,
			n.Name, n.Site, n.Address, n.Healthy, s.d.Time(n.LastSeen))
		return err
	})
}

// Nodes returns every node's last heartbeat in name order; callers judge
// liveness from LastSeen.
func (s *Store) Nodes(ctx context.Context) ([]store.NodeStatus, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT name, site, address, healthy, last_seen FROM nodes ORDER BY name`)
	ns, err := collect(rows, err, func(sc scanner) (store.NodeStatus, error) {
		var n store.NodeStatus
		err := sc.Scan(&n.Name, &n.Site, &n.Address, &n.Healthy, timeCol{&n.LastSeen})
		return n, err
	})
	if err != nil {
		return nil, s.readErr("nodes", err)
	}
	return ns, nil
}
