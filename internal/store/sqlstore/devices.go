package sqlstore

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/z5vrs/z5/internal/store"
)

// AddNumber gives a customer a phone number. The number must match
// store.NumberPattern, or be the station number (store.StationNumber) of
// the interpreter it is given to; an unknown customer is
// store.ErrNotFound and a number already held is store.ErrExists.
func (s *Store) AddNumber(ctx context.Context, n store.Number) error {
	station := store.StationPattern.MatchString(n.Number)
	if !station && !store.NumberPattern.MatchString(n.Number) {
		return s.errorf("add number %q: not a 10-digit NANP number", n.Number)
	}
	n.CreatedAt = orNow(n.CreatedAt)
	return s.update(ctx, "add number "+n.Number, func(tx *sql.Tx) error {
		if station {
			var role, caID string
			err := tx.QueryRowContext(ctx, `SELECT role, ca_id FROM customers WHERE id = $1`, n.CustomerID).Scan(&role, &caID)
			if err != nil {
				return err
			}
			if role != store.RoleInterpreter || n.Number != store.StationNumber(caID) {
				return fmt.Errorf("station number %s is only for the interpreter with CA ID %s", n.Number, n.Number[len("ca-"):])
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO numbers (number, customer_id, label, created_at) VALUES ($1, $2, $3, $4)`,
			n.Number, n.CustomerID, n.Label, s.d.Time(n.CreatedAt))
		return err
	})
}

const numberCols = `number, customer_id, label, created_at`

func scanNumber(sc scanner) (store.Number, error) {
	var n store.Number
	err := sc.Scan(&n.Number, &n.CustomerID, &n.Label, timeCol{&n.CreatedAt})
	return n, err
}

// Number returns a number's record, or store.ErrNotFound.
func (s *Store) Number(ctx context.Context, number string) (store.Number, error) {
	n, err := scanNumber(s.read.QueryRowContext(ctx, `SELECT `+numberCols+` FROM numbers WHERE number = $1`, number))
	if err != nil {
		return store.Number{}, s.readErr("number "+number, err)
	}
	return n, nil
}

// NumbersOf returns a customer's numbers in numeric order (none for an
// unknown customer).
func (s *Store) NumbersOf(ctx context.Context, customerID int64) ([]store.Number, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+numberCols+` FROM numbers WHERE customer_id = $1 ORDER BY number`, customerID)
	ns, err := collect(rows, err, scanNumber)
	if err != nil {
		return nil, s.readErr(fmt.Sprintf("numbers of customer %d", customerID), err)
	}
	return ns, nil
}

const deviceCols = `id, number, kind, name, sip_user, realm, ha1_md5, ha1_sha256, ha1_sha512_256, instance_id, created_at`

func scanDevice(sc scanner) (store.Device, error) {
	var d store.Device
	err := sc.Scan(&d.ID, &d.Number, &d.Kind, &d.Name, &d.SIPUser,
		&d.Cred.Realm, &d.Cred.HA1MD5, &d.Cred.HA1SHA256, &d.Cred.HA1SHA512_256, &d.InstanceID, timeCol{&d.CreatedAt})
	return d, err
}

// CreateDevice stores d under a new ID. Its number must exist
// (store.ErrNotFound) and its SIP username be free (store.ErrExists).
func (s *Store) CreateDevice(ctx context.Context, d store.Device) (store.Device, error) {
	if d.Kind != store.DeviceZ5 && d.Kind != store.DeviceSIP {
		return store.Device{}, s.errorf("create device %q: kind %q is neither %q nor %q", d.SIPUser, d.Kind, store.DeviceZ5, store.DeviceSIP)
	}
	if d.SIPUser == "" {
		return store.Device{}, s.errorf("create device of %s: empty SIP username", d.Number)
	}
	d.CreatedAt = s.d.Round(orNow(d.CreatedAt))
	err := s.update(ctx, fmt.Sprintf("create device %q", d.SIPUser), func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `INSERT INTO devices
			(number, kind, name, sip_user, realm, ha1_md5, ha1_sha256, ha1_sha512_256, instance_id, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id`,
			d.Number, d.Kind, d.Name, d.SIPUser, d.Cred.Realm, d.Cred.HA1MD5, d.Cred.HA1SHA256, d.Cred.HA1SHA512_256,
			d.InstanceID, s.d.Time(d.CreatedAt),
		).Scan(&d.ID)
	})
	if err != nil {
		return store.Device{}, err
	}
	return d, nil
}

// Device returns the device with id, or store.ErrNotFound.
func (s *Store) Device(ctx context.Context, id int64) (store.Device, error) {
	d, err := scanDevice(s.read.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = $1`, id))
	if err != nil {
		return store.Device{}, s.readErr(fmt.Sprintf("device %d", id), err)
	}
	return d, nil
}

// DeviceBySIPUser returns the device whose digest username is sipUser, or
// store.ErrNotFound.
func (s *Store) DeviceBySIPUser(ctx context.Context, sipUser string) (store.Device, error) {
	d, err := scanDevice(s.read.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE sip_user = $1`, sipUser))
	if err != nil {
		return store.Device{}, s.readErr(fmt.Sprintf("device %q", sipUser), err)
	}
	return d, nil
}

// DevicesOf returns a number's devices in ID order.
func (s *Store) DevicesOf(ctx context.Context, number string) ([]store.Device, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+deviceCols+` FROM devices WHERE number = $1 ORDER BY id`, number)
	ds, err := collect(rows, err, scanDevice)
	if err != nil {
		return nil, s.readErr("devices of "+number, err)
	}
	return ds, nil
}

// UpdateDeviceCredentials replaces a device's HA1 values.
func (s *Store) UpdateDeviceCredentials(ctx context.Context, id int64, cred store.Credentials) error {
	return s.update(ctx, fmt.Sprintf("update credentials of device %d", id), func(tx *sql.Tx) error {
		if err := mustAffect(tx.ExecContext(ctx, `UPDATE devices SET realm = $1, ha1_md5 = $2, ha1_sha256 = $3, ha1_sha512_256 = $4 WHERE id = $5`,
			cred.Realm, cred.HA1MD5, cred.HA1SHA256, cred.HA1SHA512_256, id)); err != nil {
			return err
		}
		return logDeviceChanges(ctx, tx, `SELECT sip_user FROM devices WHERE id = $1`, id)
	})
}

// deviceChangesKept is how long the device change log is: a node that
// falls further behind than this drops its whole cache.
const deviceChangesKept = 10000

// deviceChangesOverlap is how far below the last entry it saw a node
// reads the log again: on PostgreSQL a transaction that took a lower seq
// may commit after one that took a higher one.
const deviceChangesOverlap = 64

// logDeviceChanges appends the SIP users that devicesQuery selects to the
// device change log, in tx, and trims the log.
func logDeviceChanges(ctx context.Context, tx *sql.Tx, devicesQuery string, args ...any) error {
	if _, err := tx.ExecContext(ctx, `INSERT INTO device_changes (sip_user) `+devicesQuery, args...); err != nil {
		return fmt.Errorf("log device change: %w", err)
	}
	_, err := tx.ExecContext(ctx, fmt.Sprintf(`DELETE FROM device_changes WHERE seq <= (SELECT MAX(seq) FROM device_changes) - %d`, deviceChangesKept))
	return err
}

// DeviceChanges returns the SIP users of devices changed after the log
// entry after (and a few before it, see deviceChangesOverlap), the last
// entry, and whether the users are all that changed: false when the log
// was trimmed past after, or reset. after < 0 asks only for the last
// entry, a starting point.
func (s *Store) DeviceChanges(ctx context.Context, after int64) ([]string, int64, bool, error) {
	var first, last int64
	if err := s.read.QueryRowContext(ctx, `SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM device_changes`).Scan(&first, &last); err != nil {
		return nil, 0, false, s.readErr("device changes", err)
	}
	if after < 0 {
		return nil, last, true, nil
	}
	if last < after || first > after+1 {
		return nil, last, false, nil
	}
	rows, err := s.read.QueryContext(ctx, `SELECT DISTINCT sip_user FROM device_changes WHERE seq > $1 AND seq <= $2`, after-deviceChangesOverlap, last)
	if err != nil {
		return nil, 0, false, s.readErr("device changes", err)
	}
	defer rows.Close()
	var users []string
	for rows.Next() {
		var u string
		if err := rows.Scan(&u); err != nil {
			return nil, 0, false, s.readErr("device changes", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, s.readErr("device changes", err)
	}
	return users, last, true, nil
}
