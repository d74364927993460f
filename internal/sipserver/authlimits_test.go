package sipserver

import (
	"context"
	"fmt"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/store"
)

// gateStore holds every digest check of one user at the store lookup
// (which comes after the failure limits are consulted) until gate closes,
// and says on entered each time one arrives there.
type gateStore struct {
	Store
	user    string
	entered chan struct{}
	gate    chan struct{}
}

func (s *gateStore) DeviceBySIPUser(ctx context.Context, user string) (store.Device, error) {
	if user == s.user {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		select {
		case <-s.gate:
		case <-ctx.Done():
		}
	}
	return s.Store.DeviceBySIPUser(ctx, user)
}

// TestConcurrentGuessesReserveFailures: 20 wrong digests for one user
// sent at once over four TCP connections are all in flight together
// (held at the store lookup); exactly the limit of them are checked, the
// rest refused 403 at once, and the right password sent last is refused
// too. Once per limit: per (source, user), and per account with the
// guesses spread over four sources.
func TestConcurrentGuessesReserveFailures(t *testing.T) {
	for _, tc := range []struct {
		name  string
		limit int
		cfg   func(*Config)
		srcs  []string // one connection from each
		last  string   // source of the right password
	}{
		{"per source and user", 5, func(c *Config) { c.MaxAuthFailures = 5 },
			[]string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1"}, "127.0.0.1"},
		{"per account", 3, func(c *Config) { c.MaxAuthFailures = 5; c.MaxAuthFailuresPerAccount = 3 },
			[]string{"127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"}, "127.0.0.25"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const perConn = 5
			n := perConn * len(tc.srcs)
			gs := &gateStore{user: "alice", entered: make(chan struct{}, n+1), gate: make(chan struct{})}
			e := newEnvWith(t, tc.cfg, func(d *Deps) { gs.Store = d.Store; d.Store = gs })
			d := e.provision(alice, store.DeviceSIP, "alice", "secret-a")

			// One challenge per connection, then its guesses back to back.
			var clients []*officeClient
			for _, src := range tc.srcs {
				c := dialOffice(t, src, e.addr, d.Number, "alice", "wrong")
				c.send(t, c.registerText(""))
				m, err := c.read(5 * time.Second)
				if err != nil || status(m) != 401 {
					t.Fatalf("challenge from %s: %v %v", src, m, err)
				}
				nonce, opaque, _ := challengeParams(m.(*sipmsg.Response))
				var batch string
				for i := range perConn {
					batch += c.registerText(digestHeader("alice", "wrong", nonce, opaque, "sip:"+testDomain, fmt.Sprintf("%08x", i+1)))
				}
				clients = append(clients, c)
				c.send(t, batch)
			}
			statuses := make(chan int, n)
			for _, c := range clients {
				go func() {
					for range perConn {
						m, err := c.read(10 * time.Second)
						if err != nil || m == nil {
							statuses <- 0
							continue
						}
						statuses <- status(m)
					}
				}()
			}

			// While the checked guesses wait at the store, every other
			// one must already have been refused: none may join them.
			timeout := time.After(10 * time.Second)
			for range tc.limit {
				select {
				case <-gs.entered:
				case <-timeout:
					t.Fatalf("fewer than %d guesses reached the digest check", tc.limit)
				}
			}
			for range n - tc.limit {
				select {
				case <-gs.entered:
					t.Fatalf("more than %d guesses checked at once", tc.limit)
				case code := <-statuses:
					if code != 403 {
						t.Fatalf("a guess beyond the limit got %d, want 403", code)
					}
				case <-timeout:
					t.Fatal("guesses beyond the limit were not refused while the others were checked")
				}
			}
			close(gs.gate)
			for range tc.limit {
				if code := <-statuses; code != 401 && code != 403 {
					t.Fatalf("a checked wrong guess got %d", code)
				}
			}

			right := dialOffice(t, tc.last, e.addr, d.Number, "alice", "secret-a")
			if code := right.register(t); code != 403 {
				t.Fatalf("the right password after the guesses: %d, want 403", code)
			}
			checked := metricValue(e, "z5_sip_auth_failures_total", "reason", "mismatch")
			t.Logf("%d wrong digests at once over %d connections, limit %d: %v checked, %v refused; the right one refused",
				n, len(tc.srcs), tc.limit, checked, metricValue(e, "z5_sip_auth_failures_total", "reason", "blocked"))
			if checked != float64(tc.limit) {
				t.Fatalf("%v digests checked, want exactly %d", checked, tc.limit)
			}
		})
	}
}
