package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/z5vrs/z5/internal/cli"
	"github.com/z5vrs/z5/internal/client"
	"github.com/z5vrs/z5/internal/location"
)

// locationCmd is "z5 location show|set": the account's registered
// location, which 911 calls carry and other calls require.
func (e *env) locationCmd() *cobra.Command {
	cmd := cli.Group(&cobra.Command{Use: "location", Short: "the registered location (for 911): show, set"})
	cmd.Long = `The account's registered location: the civic address the provider sends
to the emergency service (PSAP) with a 911 call. Until one is set, the
account's numbers can call only 911.`

	show := command("show", "show the registered location", 0, 0)
	show.RunE = func(c *cobra.Command, _ []string) error {
		cl, err := e.open(nil)
		if err != nil {
			return err
		}
		l, err := cl.Location(c.Context())
		if err != nil {
			return err
		}
		return e.printLocation(l)
	}

	var street, city, state, zip string
	set := command("set [--street S] [--city C] [--state ST] [--zip Z]", "set or change the registered location", 0, 0)
	set.Long = `Set the registered location, or change the fields given (the first time,
all four are needed). The address is checked before it is sent: a USPS
state code (e.g. NY, DC, PR), a ZIP code of 5 digits or 5+4.`
	set.Example = `  z5 location set --street "350 Fifth Avenue" --city "New York" --state NY --zip 10118
  z5 location set --zip 10118-0110`
	set.Flags().StringVar(&street, "street", "", "street address, e.g. \"350 Fifth Avenue\" (with apartment or suite)")
	set.Flags().StringVar(&city, "city", "", "city")
	set.Flags().StringVar(&state, "state", "", "USPS state code, e.g. NY")
	set.Flags().StringVar(&zip, "zip", "", "ZIP code, 12345 or 12345-6789")
	set.RunE = func(c *cobra.Command, _ []string) error {
		given := map[string]string{}
		for name, v := range map[string]string{"street": street, "city": city, "state": state, "zip": zip} {
			if c.Flags().Changed(name) {
				given[name] = v
			}
		}
		if len(given) == 0 {
			return usagef("location set: give the address with --street, --city, --state and --zip")
		}
		cl, err := e.open(nil)
		if err != nil {
			return err
		}
		var a location.Address
		if len(given) < 4 {
			// Change some fields: start from the location as registered.
			cur, err := cl.Location(c.Context())
			switch {
			case errors.Is(err, client.ErrNoLocation):
			case err != nil:
				return err
			default:
				a = cur.Address
			}
		}
		for name, p := range map[string]*string{"street": &a.Street, "city": &a.City, "state": &a.State, "zip": &a.Zip} {
			if v, ok := given[name]; ok {
				*p = v
			}
		}
		l, err := cl.SetLocation(c.Context(), a)
		if fe, ok := errors.AsType[location.Errors](err); ok {
			parts := make([]string, len(fe))
			for i, f := range fe {
				parts[i] = "--" + f.Field + ": " + f.Message
			}
			return fmt.Errorf("the address was not sent: %s", strings.Join(parts, "; "))
		}
		if err != nil {
			return err
		}
		return e.printLocation(l)
	}
	cmd.AddCommand(show, set)
	return cmd
}

func (e *env) printLocation(l client.Location) error {
	if e.json {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(l)
	}
	_, err := fmt.Fprintf(e.stdout, "registered location: %s, %s (set %s)\n", l.OneLine(), l.Country, l.UpdatedAt.Local().Format(time.DateTime))
	return err
}
