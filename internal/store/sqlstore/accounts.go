package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
)

// DeleteCustomer removes the account customerID and everything that hangs
// off it, in one transaction: sessions, the registrations, devices and
// address books of its numbers, the numbers, its registered location.
// Call records, licenses and the location audit trail stay.
func (s *Store) DeleteCustomer(ctx context.Context, customerID int64) error {
	// Rows keyed by one of the account's numbers.
	const ofNumbers = ` IN (SELECT number FROM numbers WHERE customer_id = $1)`
	steps := []string{
		`DELETE FROM sessions WHERE customer_id = $1`,
		`DELETE FROM registrations WHERE number` + ofNumbers,
		`INSERT INTO device_changes (sip_user) SELECT sip_user FROM devices WHERE number` + ofNumbers,
		`DELETE FROM devices WHERE number` + ofNumbers,
		`DELETE FROM contacts WHERE owner` + ofNumbers,
		`DELETE FROM contact_tombstones WHERE owner` + ofNumbers,
		`DELETE FROM book_revs WHERE owner` + ofNumbers,
		`DELETE FROM numbers WHERE customer_id = $1`,
		`DELETE FROM locations WHERE customer_id = $1`,
	}
	return s.update(ctx, fmt.Sprintf("delete customer %d", customerID), func(tx *sql.Tx) error {
		// Lock the account first, so a number added to it meanwhile on
		// another node waits rather than outliving it.
		var id int64
		if err := tx.QueryRowContext(ctx, `SELECT id FROM customers WHERE id = $1`+s.d.ForUpdate, customerID).Scan(&id); err != nil {
			return err
		}
		for _, q := range steps {
			if _, err := tx.ExecContext(ctx, q, customerID); err != nil {
				return err
			}
		}
		return mustAffect(tx.ExecContext(ctx, `DELETE FROM customers WHERE id = $1`, customerID))
	})
}
