// Command provision fills a deployment's store with numbered benchmark
// users (one customer, number and standard SIP device each), and writes
// the same users as a SIPp injection file and a Kamailio db_text
// subscriber table, so both registrars authenticate the same credentials.
//
//	provision --config z5.toml --count 10000 --first 2125550000 --sipp users.csv --kamailio dbtext/
//
// User i is SIP user (first+i) with password "pw-(first+i)". It goes
// through the store directly (z5d admin would hash a customer password
// with argon2 per user), with the same validation for numbers and devices.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/z5vrs/z5/internal/backoffice"
	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/password"
	"github.com/z5vrs/z5/internal/provider"
	"github.com/z5vrs/z5/internal/store"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "provision:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	cfgPath := flag.String("config", "", "deployment config (TOML); empty: write the files only")
	count := flag.Int("count", 1000, "users")
	first := flag.Int("first", 2125550000, "first number (10-digit NANP)")
	sippCSV := flag.String("sipp", "", "SIPp injection file to write")
	kam := flag.String("kamailio", "", "directory for Kamailio's db_text tables (subscriber, location, version)")
	domain := flag.String("domain", "mcs.z5.test", "SIP domain and realm, for the files")
	flag.Parse()

	users := make([]string, *count)
	for i := range users {
		users[i] = strconv.Itoa(*first + i)
	}
	pw := func(u string) string { return "pw-" + u }

	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		st, err := provider.OpenStore(ctx, cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		// Customers never log in here; one argon2 hash serves them all.
		hash, err := password.Hash("bench-customer-password")
		if err != nil {
			return err
		}
		start := time.Now()
		for _, u := range users {
			c, err := st.CreateCustomer(ctx, store.Customer{Username: "u" + u, DisplayName: u, PasswordHash: hash, CreatedAt: time.Now()})
			if err != nil {
				return fmt.Errorf("customer u%s: %w", u, err)
			}
			// A registered location lets the numbers place calls.
			if err := st.SetLocation(ctx, store.Location{CustomerID: c.ID, Street: "1 Test Plaza", City: "Springfield", State: "IL",
				Zip: "62701", Country: "US", UpdatedBy: "bench"}); err != nil {
				return fmt.Errorf("location of u%s: %w", u, err)
			}
			if _, err := backoffice.AddNumber(ctx, st, "u"+u, u, ""); err != nil {
				return err
			}
			if _, err := backoffice.AddSIPDevice(ctx, st, cfg.SIP.Realm, u, u, pw(u), "bench"); err != nil {
				return err
			}
		}
		fmt.Fprintf(os.Stderr, "provisioned %d users in %s\n", len(users), time.Since(start).Round(time.Millisecond))
	}
	if *sippCSV != "" {
		err := writeFile(*sippCSV, func(w *bufio.Writer) {
			fmt.Fprintln(w, "SEQUENTIAL")
			for _, u := range users {
				fmt.Fprintf(w, "%s;%s;[authentication username=%s password=%s]\n", u, *domain, u, pw(u))
			}
		})
		if err != nil {
			return err
		}
	}
	if *kam != "" {
		if err := os.MkdirAll(*kam, 0o755); err != nil {
			return err
		}
		err := writeFile(filepath.Join(*kam, "subscriber"), func(w *bufio.Writer) {
			fmt.Fprintln(w, "id(int,auto) username(string) domain(string) password(string) ha1(string,null) ha1b(string,null)")
			for i, u := range users {
				fmt.Fprintf(w, "%d:%s:%s:%s::\n", i+1, u, *domain, pw(u))
			}
		})
		if err != nil {
			return err
		}
		err = writeFile(filepath.Join(*kam, "version"), func(w *bufio.Writer) {
			fmt.Fprintln(w, "table_name(string) table_version(int)")
			fmt.Fprintln(w, "subscriber:7")
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, fill func(*bufio.Writer)) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	fill(w)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
