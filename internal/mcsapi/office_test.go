package mcsapi

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/testenv/teststore"
)

// TestOfficeBehindOneAddress: 200 Z5 clients of 200 customers behind one
// public address (127.0.0.1) start at once on the default rate limit: each
// fetches its license and its contacts. None may be refused: the Z5 client
// does not retry a 429, and the office shares one address.
func TestOfficeBehindOneAddress(t *testing.T) {
	def := config.Dev(t.TempDir()).MCS
	e := newEnv(t, func(c *Config) { c.RateLimit, c.RateBurst = float64(def.RateLimit), def.RateBurst })
	const n = 200
	tokens := make([]string, n)
	for i := range tokens {
		_, tokens[i], _ = teststore.Provision(t, e.st, fmt.Sprintf("office-%03d", i), fmt.Sprintf("55540%05d", i))
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[int]int{}
	)
	call := func(method, path, token string) {
		req, err := http.NewRequest(method, e.base+path, nil)
		if err != nil {
			t.Error(err)
			return
		}
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := e.client.Do(req)
		if err != nil {
			t.Error(err)
			return
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		mu.Lock()
		codes[res.StatusCode]++
		mu.Unlock()
	}
	for _, tok := range tokens {
		wg.Go(func() {
			call(http.MethodPost, PathLicense, tok)
			call(http.MethodGet, PathContacts, tok)
		})
	}
	wg.Wait()
	t.Logf("%d clients behind one address, license and contacts each: %v", n, codes)
	if codes[http.StatusOK] != 2*n {
		t.Errorf("answers %v, want %d times 200", codes, 2*n)
	}
}

// TestRateLimitIPv6Slash64: the request limit counts an IPv6 /64 as one
// source, so a host rotating through its /64 gains nothing; the next /64
// is another source. On the fake clock of a synctest bubble, so no token
// refills between the requests however slow the machine.
func TestRateLimitIPv6Slash64(t *testing.T) {
	st := teststore.SQLite(t)
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	synctest.Test(t, func(t *testing.T) {
		cfg := testConfig()
		cfg.RateLimit, cfg.RateBurst = 1, 3
		svc, err := New(cfg, Deps{Store: st, LicenseKey: key})
		if err != nil {
			t.Fatal(err)
		}
		get := func(from string) int {
			req := httptest.NewRequest(http.MethodGet, PathHealth, nil)
			req.RemoteAddr = "[" + from + "]:40000"
			w := httptest.NewRecorder()
			svc.ServeHTTP(w, req)
			return w.Code
		}
		for i := range 3 {
			if c := get("2001:db8:1:2::" + strconv.Itoa(i+1)); c != http.StatusOK {
				t.Fatalf("request %d: %d", i, c)
			}
		}
		if c := get("2001:db8:1:2:ffff:ffff:ffff:ffff"); c != http.StatusTooManyRequests {
			t.Errorf("4th request from the /64: %d, want 429", c)
		}
		if c := get("2001:db8:1:3::1"); c != http.StatusOK {
			t.Errorf("another /64: %d", c)
		}
	})
}
