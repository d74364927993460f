package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// RecordLicense stores the audit record of an issued license; an ID
// already recorded is store.ErrExists.
func (s *Store) RecordLicense(ctx context.Context, l store.License) error {
	if l.ID == "" {
		return errors.New("sqlite: record license: empty id")
	}
	var features any
	if len(l.Features) > 0 {
		b, err := json.Marshal(l.Features)
		if err != nil {
			return fmt.Errorf("sqlite: record license %s: %w", l.ID, err)
		}
		features = string(b)
	}
	l.IssuedAt = orNow(l.IssuedAt)
	return s.write(ctx, "record license "+l.ID, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO licenses (id, number, device_id, features, not_before, not_after, issued_at)
			VALUES (?, ?, ?, ?, ?, ?, ?)`,
			l.ID, l.Number, l.DeviceID, features, dbTime(l.NotBefore), dbTime(l.NotAfter), dbTime(l.IssuedAt))
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
	return s.write(ctx, fmt.Sprintf("put registration %s/%d on %s", r.Number, r.DeviceID, r.Node), func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM registrations WHERE number = ? AND expires_at <= ?`,
			r.Number, dbTime(r.UpdatedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO registrations
			(number, device_id, node, flow_id, contact, instance, expires_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (number, device_id, node, flow_id) DO UPDATE SET
			contact = excluded.contact, instance = excluded.instance,
			expires_at = excluded.expires_at, updated_at = excluded.updated_at`,
			r.Number, r.DeviceID, r.Node, r.FlowID, r.Contact, r.Instance, dbTime(r.ExpiresAt), dbTime(r.UpdatedAt))
		return err
	})
}

// DeleteRegistration removes one flow's registration. Removing one that is
// already gone is not an error: a flow may close after its binding expired.
func (s *Store) DeleteRegistration(ctx context.Context, number string, deviceID int64, node, flowID string) error {
	return s.write(ctx, fmt.Sprintf("delete registration %s/%d on %s", number, deviceID, node), func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `DELETE FROM registrations WHERE number = ? AND device_id = ? AND node = ? AND flow_id = ?`,
			number, deviceID, node, flowID)
		return err
	})
}

// Registrations returns the number's registrations unexpired at now,
// ordered by device, node and flow.
func (s *Store) Registrations(ctx context.Context, number string, now time.Time) ([]store.Registration, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT number, device_id, node, flow_id, contact, instance, expires_at, updated_at
		FROM registrations WHERE number = ? AND expires_at > ? ORDER BY device_id, node, flow_id`, number, dbTime(now))
	rs, err := collect(rows, err, func(sc scanner) (store.Registration, error) {
		var r store.Registration
		var expires, updated int64
		err := sc.Scan(&r.Number, &r.DeviceID, &r.Node, &r.FlowID, &r.Contact, &r.Instance, &expires, &updated)
		r.ExpiresAt, r.UpdatedAt = goTime(expires), goTime(updated)
		return r, err
	})
	if err != nil {
		return nil, readErr("registrations of "+number, err)
	}
	return rs, nil
}

// Heartbeat records a node's status, replacing its previous one. LastSeen
// defaults to now.
func (s *Store) Heartbeat(ctx context.Context, n store.NodeStatus) error {
	if n.Name == "" {
		return errors.New("sqlite: heartbeat: empty node name")
	}
	n.LastSeen = orNow(n.LastSeen)
	return s.write(ctx, "heartbeat of "+n.Name, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO nodes (name, site, address, healthy, last_seen) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (name) DO UPDATE SET site = excluded.site, address = excluded.address,
			healthy = excluded.healthy, last_seen = excluded.last_seen`,
			n.Name, n.Site, n.Address, boolInt(n.Healthy), dbTime(n.LastSeen))
		return err
	})
}

// Nodes returns every node's last heartbeat in name order; callers judge
// liveness from LastSeen.
func (s *Store) Nodes(ctx context.Context) ([]store.NodeStatus, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, site, address, healthy, last_seen FROM nodes ORDER BY name`)
	ns, err := collect(rows, err, func(sc scanner) (store.NodeStatus, error) {
		var n store.NodeStatus
		var seen int64
		err := sc.Scan(&n.Name, &n.Site, &n.Address, &n.Healthy, &seen)
		n.LastSeen = goTime(seen)
		return n, err
	})
	if err != nil {
		return nil, readErr("nodes", err)
	}
	return ns, nil
}
