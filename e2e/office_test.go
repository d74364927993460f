package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/backoffice"
	"github.com/z5vrs/z5/internal/client"
	"github.com/z5vrs/z5/internal/location"
	"github.com/z5vrs/z5/internal/profile"
	"github.com/z5vrs/z5/internal/store/sqlite"
)

// officeAddress is the registered location of every office customer.
var officeAddress = location.Address{Street: "1 Test Plaza", City: "Springfield", State: "IL", Zip: "62701"}

// TestOfficeBehindOneAddress: a business whose 200 Z5 phones share one
// public address (here 127.0.0.1, the source every loopback client gets)
// logs all of them in and registers them within 60 s on the default
// config, while 20 password guesses at one colleague's account from the
// same address are stopped and cut nobody off.
func TestOfficeBehindOneAddress(t *testing.T) {
	if testing.Short() {
		t.Skip("200 logins: not in -short")
	}
	const office = 200
	s := startStack(t)

	// Provision through the back office's own code on the node's database
	// (what `z5d admin` does), concurrently: 400 admin processes would
	// spend most of the test starting up.
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(s.dir, "z5.db"))
	if err != nil {
		t.Fatal(err)
	}
	user := func(i int) string { return fmt.Sprintf("office%03d", i) }
	pass := func(i int) string { return fmt.Sprintf("office-secret-%03d", i) }
	number := func(i int) string { return fmt.Sprintf("202555%04d", 3000+i) }
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	errs := make(chan error, office+1)
	for i := range office + 1 { // one more: the colleague whose password is guessed
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if _, err := backoffice.AddCustomer(ctx, st, user(i), "", pass(i)); err != nil {
				errs <- err
				return
			}
			if _, err := backoffice.AddNumber(ctx, st, user(i), number(i), ""); err != nil {
				errs <- err
				return
			}
			if _, err := backoffice.SetLocation(ctx, st, user(i), officeAddress, "test"); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	// The colleague also has a standard SIP phone, whose password is
	// guessed over SIP.
	if _, err := backoffice.AddSIPDevice(ctx, st, "mcs.z5.test", number(office), "desk-phone", "desk-phone-pw", "desk"); err != nil {
		t.Fatal(err)
	}
	st.Close()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	prof, err := profile.Load(s.profilePath())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	phones := make([]*client.Phone, office)
	var failed atomic.Int32
	fail := make(chan string, office)
	for i := range office {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := client.Open(client.Options{Home: t.TempDir()})
			if err == nil {
				err = c.Login(ctx, client.LoginRequest{Profile: prof, Username: user(i), Password: pass(i)})
			}
			if err == nil {
				phones[i], err = c.Connect(ctx, client.PhoneOptions{})
			}
			if err != nil {
				failed.Add(1)
				fail <- fmt.Sprintf("%s: %v", user(i), err)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	close(fail)
	t.Cleanup(func() {
		for _, p := range phones {
			if p != nil {
				p.Close()
			}
		}
	})
	for msg := range fail {
		t.Error(msg)
	}
	t.Logf("%d of %d phones behind one address logged in and registered in %s", office-int(failed.Load()), office, took.Round(time.Millisecond))
	if failed.Load() > 0 {
		t.Fatalf("%d of %d phones failed", failed.Load(), office)
	}
	if took > 60*time.Second {
		t.Fatalf("the office took %s to come up, want under 60s", took)
	}
	if n := s.metric(t, "z5_sip_registrations"); n != office {
		t.Fatalf("z5_sip_registrations = %v, want %d", n, office)
	}

	// 20 guesses at the colleague's account from the same address, the
	// correct password last: none gets in.
	pool, err := prof.CAPool()
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "zdial.z5.test"},
	}}
	victim := user(office)
	codes := map[int]int{}
	for i := range 20 {
		pw := fmt.Sprintf("guess-%02d", i)
		if i == 19 {
			pw = pass(office)
		}
		body, _ := json.Marshal(map[string]string{"username": victim, "password": pw})
		res, err := hc.Post("https://"+s.ip+":8443/api/v1/login", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		codes[res.StatusCode]++
		if i == 19 && res.StatusCode == 200 {
			t.Fatalf("the 20th guess (the right password) got in: %v", codes)
		}
	}
	if codes[200] != 0 || codes[429] == 0 {
		t.Fatalf("20 guesses from the office's address: answers %v, want none accepted and the rest refused (429)", codes)
	}
	t.Logf("20 guesses at %s from the office's address: %v", victim, codes)

	// 20 digest guesses at the colleague's SIP phone from the same
	// address, the right password last: none registers, and no ban cuts
	// the office's flows.
	sipCodes := map[int]int{}
	c := dialSIP(t, "127.0.0.1", s.ip)
	for i := range 20 {
		pw := fmt.Sprintf("guess-%02d", i)
		if i == 19 {
			pw = "desk-phone-pw"
		}
		code, _ := c.registerOnce(number(office), "desk-phone", pw, "127.0.0.1")
		sipCodes[code]++
	}
	if sipCodes[200] != 0 || sipCodes[403] == 0 {
		t.Fatalf("20 SIP guesses from the office's address: answers %v, want none accepted and the rest refused (403)", sipCodes)
	}
	t.Logf("20 SIP digest guesses at %s from the office's address: %v", number(office), sipCodes)

	// Every colleague's phone is still registered on its own flow.
	if n := s.metric(t, "z5_sip_registrations"); n != office {
		t.Fatalf("after the guesses z5_sip_registrations = %v, want %d", n, office)
	}
	if n := s.metric(t, `z5_floodguard_bans_total{reason="auth_failure",service="sip"}`); n != 0 {
		t.Fatalf("the office's address was banned (%v bans)", n)
	}
}
