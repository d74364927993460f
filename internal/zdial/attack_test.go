package zdial

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/config"
)

// defaultConfig is the Config a deployment gets when [zdial] sets nothing:
// the limits internal/config fills in.
func defaultConfig(t *testing.T) func(*Config) {
	z := config.Dev(t.TempDir()).ZDial
	return func(c *Config) {
		c.SessionTTL, c.MCSTokenTTL, c.Lockout = z.SessionTTL, z.SessionTTL, z.Lockout
		c.MaxFailures, c.AccountMaxFailures, c.SourceMaxFailures = z.MaxFailures, z.AccountMaxFailures, z.SourceMaxFailures
		c.PerIPRate, c.PerIPBurst = z.PerIPRate, z.PerIPBurst
		c.RateLimit, c.RateBurst = float64(z.RateLimit), z.RateBurst
	}
}

// cheapParams keeps the hashes of many logins cheap: a login rehashes to
// the Service's parameters, which would otherwise be the full default.
func cheapParams(d *Deps) { d.PasswordParams = cheapHash }

// loopback returns a client whose connections come from 127.0.0.x.
func (e *env) loopback(x byte) *http.Client {
	return e.newClient(&net.TCPAddr{IP: net.IPv4(127, 0, 0, x)})
}

func loginBody(user, pw string) string {
	b, _ := json.Marshal(loginRequest{Username: user, Password: pw})
	return string(b)
}

func errorCode(r response) string {
	var eb errorBody
	_ = json.Unmarshal(r.body, &eb)
	return eb.Error.Code
}

// TestConcurrentGuessesLockout mounts the reported race: 80 guesses at one
// account at once from 8 sources (127.0.0.1-8, 10 each), the right
// password sent last, while every argon2 slot is busy so that guesses
// which pass the checks queue for a slot. Before the fix every guess passed
// the lock check and the 80th was accepted. Now each attempt is counted as
// a failure before it is hashed: exactly AccountMaxFailures passwords are
// checked, none is accepted, and the lock holds for every source.
func TestConcurrentGuessesLockout(t *testing.T) {
	e := newEnv(t, defaultConfig(t), cheapParams)
	e.svc.hashWait = 10 * time.Minute // the held slots must not time the guesses out
	const user, pw = "victim", "victim-secret-1"
	e.customer(user, pw, "5552000101")
	const sources, perSource = 8, 10
	clients := make([]*http.Client, sources)
	for i := range clients {
		clients[i] = e.loopback(byte(i + 1))
	}

	for range cap(e.svc.hashSem) {
		e.svc.hashSem <- struct{}{}
	}
	var (
		wg       sync.WaitGroup
		answered atomic.Int64
		mu       sync.Mutex
		results  []response
		last     response
	)
	fire := func(c *http.Client, guess string, isLast bool) {
		e.secret(guess)
		wg.Go(func() {
			r, err := e.try(c, "POST", "/api/v1/login", "", loginBody(user, guess))
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			results = append(results, r)
			if isLast {
				last = r
			}
			mu.Unlock()
			answered.Add(1)
		})
	}
	// settle waits until n guesses are answered or queued for a slot.
	settle := func(n int64) {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute) // a hang guard, not a speed assertion
		for answered.Load()+e.svc.hashWaiting.Load() < n {
			if time.Now().After(deadline) {
				t.Fatalf("guesses did not arrive: %d answered, %d waiting of %d", answered.Load(), e.svc.hashWaiting.Load(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i := range sources*perSource - 1 {
		fire(clients[i%sources], "guess-"+strconv.Itoa(i), false)
	}
	settle(sources*perSource - 1)
	fire(clients[sources-1], pw, true)
	settle(sources * perSource)
	for range cap(e.svc.hashSem) {
		<-e.svc.hashSem
	}
	wg.Wait()

	byCode := map[string]int{}
	for _, r := range results {
		byCode[strconv.Itoa(r.status)+" "+errorCode(r)]++
	}
	t.Logf("80 concurrent guesses from 8 sources: %v", byCode)
	if byCode["200 "] != 0 {
		t.Errorf("%d guesses accepted, want 0", byCode["200 "])
	}
	if last.status != 429 || errorCode(last) != "account_locked" {
		t.Errorf("the right password, sent last: %d %s, want 429 account_locked", last.status, last.body)
	}
	if got, want := byCode["401 invalid_credentials"], e.cfg.AccountMaxFailures; got != want {
		t.Errorf("%d passwords checked, want exactly %d (AccountMaxFailures)", got, want)
	}
	if got := byCode["429 account_locked"]; got != sources*perSource-e.cfg.AccountMaxFailures {
		t.Errorf("%d refused as locked, want %d", got, sources*perSource-e.cfg.AccountMaxFailures)
	}

	// The lock holds: the right password from a ninth source is refused.
	wantError(t, e.loginFrom(e.loopback(9), user, pw), 429, "account_locked")
	e.clock.Advance(e.cfg.Lockout + time.Second)
	if r := e.loginFrom(e.loopback(9), user, pw); r.status != 200 {
		t.Errorf("after the lockout: %d %s", r.status, r.body)
	}
}

// TestOfficeBehindOneAddress: 200 Z5 clients of 200 customers behind one
// public address (127.0.0.1) log in and select a number on the default
// config, each retrying after the Retry-After it is told, while a 201st
// host there guesses the password of a colleague's account 20 times, the
// right password last. All 200 must be in within 60 s (on the fake clock,
// which moves only by the Retry-After waits); in fact the defaults let
// the whole office through at once, none of them told to wait (the Z5
// client does not retry a 429). The guesser must be stopped after
// MaxFailures checked passwords.
func TestOfficeBehindOneAddress(t *testing.T) {
	e := newEnv(t, defaultConfig(t), cheapParams)
	const n, guesses = 200, 20
	type client struct {
		c                *http.Client
		user, pw, number string
		token            string
		done             bool
	}
	clients := make([]*client, n)
	for i := range clients {
		cl := &client{c: e.loopback(1), user: fmt.Sprintf("office-%03d", i), pw: fmt.Sprintf("office-secret-%03d", i),
			number: fmt.Sprintf("55530%05d", i)}
		e.customer(cl.user, cl.pw, cl.number)
		clients[i] = cl
	}
	const boss, bossPW = "boss", "boss-secret-1"
	e.customer(boss, bossPW, "5553100000")
	guesser := e.loopback(1)
	guessesLeft, accepted, checked, stopped := guesses, 0, 0, 0
	var officeThrottled atomic.Int64

	var elapsed time.Duration
	for round := 0; ; round++ {
		if round > 1000 {
			t.Fatalf("no end after %d rounds", round)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var wait time.Duration // least Retry-After told this round
		throttled := func(r response) {
			ra, err := strconv.Atoi(r.header.Get("Retry-After"))
			if err != nil || ra < 1 {
				t.Errorf("429 without a Retry-After: %v", r.header)
				ra = 1
			}
			mu.Lock()
			if d := time.Duration(ra) * time.Second; wait == 0 || d < wait {
				wait = d
			}
			mu.Unlock()
		}
		pending := 0
		for _, cl := range clients {
			if cl.done {
				continue
			}
			pending++
			wg.Go(func() {
				var r response
				var err error
				if cl.token == "" {
					r, err = e.try(cl.c, "POST", "/api/v1/login", "", loginBody(cl.user, cl.pw))
				} else {
					b, _ := json.Marshal(selectRequest{Number: cl.number, InstanceID: "<urn:uuid:" + cl.user + ">"})
					r, err = e.try(cl.c, "POST", "/api/v1/select", cl.token, string(b))
				}
				switch {
				case err != nil:
					t.Error(err)
					cl.done = true
				case r.status == 429 && errorCode(r) == "rate_limited":
					officeThrottled.Add(1)
					throttled(r)
				case r.status != 200:
					t.Errorf("%s: %d %s", cl.user, r.status, r.body)
					cl.done = true
				case cl.token == "":
					var lr loginResponse
					if err := json.Unmarshal(r.body, &lr); err != nil || lr.Token == "" {
						t.Errorf("%s login: %s", cl.user, r.body)
						cl.done = true
						return
					}
					cl.token = lr.Token
					e.secret(lr.Token)
				default:
					var sr selectResponse
					if err := json.Unmarshal(r.body, &sr); err != nil || sr.MCSToken == "" {
						t.Errorf("%s select: %s", cl.user, r.body)
					}
					e.secret(sr.SIP.Password, sr.MCSToken)
					cl.done = true
				}
			})
		}
		if guessesLeft > 0 {
			pending++
			guess := "boss-guess-" + strconv.Itoa(guessesLeft)
			if guessesLeft == 1 {
				guess = bossPW
			}
			e.secret(guess)
			wg.Go(func() {
				r, err := e.try(guesser, "POST", "/api/v1/login", "", loginBody(boss, guess))
				if err != nil {
					t.Error(err)
					return
				}
				switch code := errorCode(r); {
				case r.status == 200:
					accepted++
				case r.status == 401:
					checked++
				case code == "account_locked":
					stopped++
				case code == "rate_limited":
					throttled(r)
					return // the same guess again next round
				default:
					t.Errorf("guess: %d %s", r.status, r.body)
				}
				guessesLeft--
			})
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		if pending == 0 {
			break
		}
		if wait > 0 {
			e.clock.Advance(wait)
			elapsed += wait
		}
	}
	t.Logf("%d clients behind one address logged in and selected in %s (fake clock), %d told to wait; guesser: %d accepted, %d checked, %d stopped of %d",
		n, elapsed, officeThrottled.Load(), accepted, checked, stopped, guesses)
	if elapsed > 60*time.Second {
		t.Errorf("%d logins from one address took %s, want at most 60s", n, elapsed)
	}
	if officeThrottled.Load() != 0 {
		t.Errorf("%d office requests refused with 429 on the default config, want 0", officeThrottled.Load())
	}
	if accepted != 0 || checked > e.cfg.MaxFailures || stopped < guesses-e.cfg.MaxFailures {
		t.Errorf("guesser: %d accepted, %d checked, %d stopped; want 0, at most %d, at least %d",
			accepted, checked, stopped, e.cfg.MaxFailures, guesses-e.cfg.MaxFailures)
	}
	// The guesser locked only itself out of boss's account: from another
	// address the owner still logs in.
	if r := e.loginFrom(e.loopback(2), boss, bossPW); r.status != 200 {
		t.Errorf("boss from another address: %d %s", r.status, r.body)
	}
}

// TestSourceFailureLimit: guessing one password at many usernames (known
// and unknown) from one source is stopped after SourceMaxFailures
// failures, while successful logins from it never count.
func TestSourceFailureLimit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.SourceMaxFailures = 30 }, cheapParams)
	e.customer("pat", "pat-secret-1")
	for range 40 {
		e.mustLogin("pat", "pat-secret-1")
	}
	codes := map[string]int{}
	for i := range 40 {
		user := "spray-" + strconv.Itoa(i)
		if i%2 == 0 {
			e.customer(user, "spray-secret-"+strconv.Itoa(i))
		}
		r := e.login(user, "Password1!")
		codes[strconv.Itoa(r.status)+" "+errorCode(r)]++
	}
	t.Logf("40 usernames sprayed from one source: %v", codes)
	if codes["401 invalid_credentials"] != 30 || codes["429 rate_limited"] != 10 {
		t.Errorf("spray: %v, want 30 checked and 10 refused", codes)
	}
	// The source is stopped for everyone until failures drain: 15m / 30.
	r := e.login("pat", "pat-secret-1")
	wantError(t, r, 429, "rate_limited")
	if ra := r.header.Get("Retry-After"); ra != "30" {
		t.Errorf("Retry-After %q, want 30", ra)
	}
	e.clock.Advance(30 * time.Second)
	e.mustLogin("pat", "pat-secret-1")
	// Another source is not affected.
	if r := e.loginFrom(e.loopback(2), "pat", "pat-secret-1"); r.status != 200 {
		t.Errorf("another source: %d %s", r.status, r.body)
	}
}

// TestIPv6SourceSharesLimits: addresses of one IPv6 /64 are one source for
// every per-source limit (requests, login attempts, failures per source and
// per (source, username)); the next /64 is another source. Unit level: the
// Service is called directly with the peer address set, since loopback has
// only ::1.
func TestIPv6SourceSharesLimits(t *testing.T) {
	post := func(svc *Service, from, user, pw string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", "/api/v1/login", strings.NewReader(loginBody(user, pw)))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = "[" + from + "]:40000"
		w := httptest.NewRecorder()
		svc.ServeHTTP(w, req)
		return w
	}
	code := func(w *httptest.ResponseRecorder) string {
		return strconv.Itoa(w.Code) + " " + errorCode(response{body: w.Body.Bytes()})
	}
	same := func(i int) string { return fmt.Sprintf("2001:db8:1:2:%x::%x", i*0x1111, i+1) }
	const other = "2001:db8:1:3::1"

	// Each limit lets three tries from the /64 through, stops the fourth
	// and leaves the next /64 alone.
	for _, tt := range []struct {
		name  string
		limit func(*Config)
		try   func(i int) (user, pw string) // the three tries within the limit
		user  string                        // of the fourth try and of the other /64's
		other int                           // the other /64's status; 0: any but 429
	}{
		{"requests", func(c *Config) { c.RateLimit, c.RateBurst = 1, 3 },
			func(i int) (string, string) { return "u", "p-" + strconv.Itoa(i) }, "u", 0},
		{"login attempts", func(c *Config) { c.PerIPBurst = 3 },
			func(i int) (string, string) { return "u" + strconv.Itoa(i), "p" }, "u", 401},
		{"failures per source", func(c *Config) { c.SourceMaxFailures = 3 },
			func(i int) (string, string) { return "u" + strconv.Itoa(i), "p" }, "u9", 401},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.limit)
			for i := range 3 {
				user, pw := tt.try(i)
				if w := post(e.svc, same(i), user, pw); w.Code == 429 {
					t.Fatalf("try %d: %s", i, code(w))
				}
			}
			if w := post(e.svc, same(3), tt.user, "p"); code(w) != "429 rate_limited" {
				t.Errorf("4th try from the /64: %s", code(w))
			}
			w := post(e.svc, other, tt.user, "p")
			if (tt.other == 0 && w.Code == 429) || (tt.other != 0 && w.Code != tt.other) {
				t.Errorf("other /64: %s", code(w))
			}
		})
	}
	t.Run("failures per source and user", func(t *testing.T) {
		e := newEnv(t, nil) // MaxFailures 3
		e.customer("dana", "dana-secret-1")
		for i := range 3 {
			if w := post(e.svc, same(i), "dana", "guess"); w.Code != 401 {
				t.Fatalf("guess %d: %s", i, code(w))
			}
		}
		if w := post(e.svc, same(3), "dana", "dana-secret-1"); code(w) != "429 account_locked" {
			t.Errorf("right password from the same /64 after 3 failures: %s", code(w))
		}
		if w := post(e.svc, other, "dana", "dana-secret-1"); w.Code != 200 {
			t.Errorf("owner from another /64: %s", code(w))
		}
	})
}
