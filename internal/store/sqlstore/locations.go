package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/z5vrs/z5/internal/store"
)

const locationCols = `customer_id, street, city, state, zip, country, updated_at, updated_by`

func scanLocation(sc scanner) (store.Location, error) {
	var l store.Location
	err := sc.Scan(&l.CustomerID, &l.Street, &l.City, &l.State, &l.Zip, &l.Country, timeCol{&l.UpdatedAt}, &l.UpdatedBy)
	return l, err
}

// dbAddress is the stored JSON form of an address in the audit trail.
type dbAddress struct {
	Street  string `json:"street"`
	City    string `json:"city"`
	State   string `json:"state"`
	Zip     string `json:"zip"`
	Country string `json:"country"`
}

func addressJSON(l store.Location) (string, error) {
	b, err := json.Marshal(dbAddress{l.Street, l.City, l.State, l.Zip, l.Country})
	return string(b), err
}

// Location returns the registered location of customerID, or
// store.ErrNotFound when none is set.
func (s *Store) Location(ctx context.Context, customerID int64) (store.Location, error) {
	l, err := scanLocation(s.read.QueryRowContext(ctx, `SELECT `+locationCols+` FROM locations WHERE customer_id = $1`, customerID))
	if err != nil {
		return store.Location{}, s.readErr(fmt.Sprintf("location of customer %d", customerID), err)
	}
	return l, nil
}

// SetLocation replaces the registered location of loc.CustomerID and
// appends the change to the audit trail in the same transaction. The
// address is validated by the caller (package location); the store only
// refuses empty fields. A missing customer is store.ErrNotFound.
func (s *Store) SetLocation(ctx context.Context, loc store.Location) error {
	if loc.Street == "" || loc.City == "" || loc.State == "" || loc.Zip == "" {
		return s.errorf("set location of customer %d: street, city, state and zip are required", loc.CustomerID)
	}
	if loc.Country == "" {
		loc.Country = "US"
	}
	loc.UpdatedAt = s.d.Round(orNow(loc.UpdatedAt))
	newJSON, err := addressJSON(loc)
	if err != nil {
		return s.errorf("set location of customer %d: %w", loc.CustomerID, err)
	}
	return s.update(ctx, fmt.Sprintf("set location of customer %d", loc.CustomerID), func(tx *sql.Tx) error {
		old, err := scanLocation(tx.QueryRowContext(ctx, `SELECT `+locationCols+` FROM locations WHERE customer_id = $1`+s.d.ForUpdate, loc.CustomerID))
		var oldJSON any
		switch {
		case errors.Is(err, sql.ErrNoRows):
			_, err = tx.ExecContext(ctx, `INSERT INTO locations (`+locationCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
				loc.CustomerID, loc.Street, loc.City, loc.State, loc.Zip, loc.Country, s.d.Time(loc.UpdatedAt), loc.UpdatedBy)
		case err == nil:
			if oldJSON, err = addressJSON(old); err != nil {
				return err
			}
			_, err = tx.ExecContext(ctx, `UPDATE locations SET street = $2, city = $3, state = $4, zip = $5, country = $6,
				updated_at = $7, updated_by = $8 WHERE customer_id = $1`,
				loc.CustomerID, loc.Street, loc.City, loc.State, loc.Zip, loc.Country, s.d.Time(loc.UpdatedAt), loc.UpdatedBy)
		}
		if err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO location_audit (customer_id, changed_at, changed_by, old_value, new_value)
			VALUES ($1, $2, $3, $4, $5)`, loc.CustomerID, s.d.Time(loc.UpdatedAt), loc.UpdatedBy, oldJSON, newJSON)
		return err
	})
}

// LocationHistory returns the audit trail of customerID's registered
// location, oldest first (empty when it was never set).
func (s *Store) LocationHistory(ctx context.Context, customerID int64) ([]store.LocationChange, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT customer_id, changed_at, changed_by, old_value, new_value
		FROM location_audit WHERE customer_id = $1 ORDER BY id`, customerID)
	cs, err := collect(rows, err, func(sc scanner) (store.LocationChange, error) {
		var c store.LocationChange
		var oldB, newB []byte
		if err := sc.Scan(&c.CustomerID, timeCol{&c.At}, &c.By, &oldB, &newB); err != nil {
			return c, err
		}
		var err error
		if c.Old, err = addressFromJSON(oldB, c.CustomerID); err != nil {
			return c, err
		}
		c.New, err = addressFromJSON(newB, c.CustomerID)
		c.New.UpdatedAt, c.New.UpdatedBy = c.At, c.By
		return c, err
	})
	if err != nil {
		return nil, s.readErr(fmt.Sprintf("location history of customer %d", customerID), err)
	}
	return cs, nil
}

// addressFromJSON decodes an audit address; NULL is the zero Location.
func addressFromJSON(b []byte, customerID int64) (store.Location, error) {
	if len(b) == 0 {
		return store.Location{}, nil
	}
	var a dbAddress
	if err := json.Unmarshal(b, &a); err != nil {
		return store.Location{}, fmt.Errorf("decode audit address: %w", err)
	}
	return store.Location{CustomerID: customerID, Street: a.Street, City: a.City, State: a.State, Zip: a.Zip, Country: a.Country}, nil
}
