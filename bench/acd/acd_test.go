// Package acd benchmarks the interpreter center: the time from an
// interpreter becoming ready to the queued call's offer INVITE reaching
// its station, with many interpreters signed in and many calls waiting,
// on SQLite and on PostgreSQL (BenchmarkOfferLatency); and relay calls a
// second through queue, auto-answering stations and the hearing party
// (BenchmarkRelayRate, rate_test.go). Benchmarks, not tests: there are no
// Test functions, so `go test ./...` only compiles them.
//
//	go test -run '^$' -bench OfferLatency -benchtime 1x ./bench/acd \
//	    -args -interpreters 1000 -queued 10000
//
// One z5d node runs in-process on a loopback address (the provider's own
// wiring, SIP over TLS); the waiting calls come from the voice trunk's
// address (inbound relay calls, which need no account), and each station
// is a Z5 client logged in as an interpreter. A sample: the station says
// ready (PUT /api/v1/acd/state) and waits for the offer; it declines it
// (486), so the MCS makes it not ready and puts the call back at its
// place, and the queue keeps its length. Samples run one after another.
// PostgreSQL needs the server binaries (pgtest); without them that half
// is skipped. The node and every station share this process: each waiting
// call holds four relay sockets, so 10,000 calls need `ulimit -n 100000`.
package acd

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/backoffice"
	"github.com/z5vrs/z5/internal/client"
	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/devstack"
	"github.com/z5vrs/z5/internal/media"
	"github.com/z5vrs/z5/internal/pgtest"
	"github.com/z5vrs/z5/internal/profile"
	"github.com/z5vrs/z5/internal/provider"
)

var (
	interpreters = flag.Int("interpreters", 100, "interpreters signed in (registered, not ready until their sample)")
	queued       = flag.Int("queued", 1000, "calls waiting in the queue")
	samples      = flag.Int("samples", 0, "samples (default: one per interpreter)")
	ipFlag       = flag.String("ip", "127.0.81.1", "loopback address of the MCS node")
	trunkFlag    = flag.String("trunk", "127.0.81.2", "loopback address of the voice trunk (the waiting calls come from it)")
)

func BenchmarkOfferLatency(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) { run(b, "") })
	b.Run("postgres", func(b *testing.B) { run(b, pgtest.Start(b)) })
}

// run measures once however large b.N is: each sample is a real offer.
func run(b *testing.B, dsn string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	dir := b.TempDir()
	cfg, err := benchConfig(dir, dsn, "ring_timeout = \"5m\"\nmax_wait = \"24h\"")
	if err != nil {
		b.Fatal(err)
	}
	n, stopNode := startNode(ctx, b, cfg)
	defer stopNode()
	st := n.Store()
	prof := n.Profile()

	// Provisioning: the interpreters, and one customer whose number the
	// waiting calls dial.
	start := time.Now()
	pw := "bench-interpreter-1"
	for i := range *interpreters {
		if _, err := backoffice.AddInterpreter(ctx, st, fmt.Sprintf("terp%d", i), "", fmt.Sprintf("%d", 1000+i), pw); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := backoffice.AddCustomer(ctx, st, "deaf", "", "bench-customer-1"); err != nil {
		b.Fatal(err)
	}
	if _, err := backoffice.AddNumber(ctx, st, "deaf", "3035550199", ""); err != nil {
		b.Fatal(err)
	}
	b.Logf("provisioned %d interpreters in %s", *interpreters, time.Since(start).Round(time.Millisecond))

	// The stations: logged in, registered, not ready.
	start = time.Now()
	stations := make([]*station, *interpreters)
	defer func() {
		for _, s := range stations {
			if s != nil {
				s.ph.Close()
			}
		}
	}()
	// Four logins at a time: each costs the server an argon2id check.
	var wg sync.WaitGroup
	errs := make([]error, len(stations))
	sem := make(chan struct{}, 4)
	for i := range stations {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			stations[i], errs[i] = newStation(ctx, filepath.Join(dir, "clients", fmt.Sprint(i)), prof, fmt.Sprintf("terp%d", i), pw)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d stations registered in %s", len(stations), time.Since(start).Round(time.Millisecond))

	// The queue: inbound calls from the trunk, held by the MCS.
	start = time.Now()
	q, err := fillQueue(ctx, cfg, *trunkFlag, *queued)
	if err != nil {
		b.Fatal(err)
	}
	defer q.close()
	depth := func() int {
		es, err := st.(interface {
			Queue(context.Context) ([]acd.Entry, error)
		}).Queue(ctx)
		if err != nil {
			b.Fatal(err)
		}
		return len(es)
	}
	// The node queues calls as fast as it can; a queue that stops growing
	// for 30 s (calls the node could not take in time) is measured as it is.
	held, grew := 0, time.Now()
	for held < *queued && time.Since(grew) < 30*time.Second {
		time.Sleep(250 * time.Millisecond)
		if d := depth(); d > held {
			held, grew = d, time.Now()
		}
	}
	if held == 0 {
		b.Fatal("no call queued")
	}
	b.Logf("%d of %d calls queued in %s", held, *queued, time.Since(start).Round(time.Millisecond))

	n1 := *samples
	if n1 <= 0 {
		n1 = len(stations)
	}
	lat := make([]time.Duration, 0, n1)
	b.ResetTimer()
	for i := range n1 {
		s := stations[i%len(stations)]
		t0 := time.Now()
		if _, err := s.c.ACD().SetState(ctx, client.StateReady); err != nil {
			b.Fatal(err)
		}
		select {
		case at := <-s.offers:
			lat = append(lat, at.Sub(t0))
		case <-time.After(30 * time.Second):
			b.Fatalf("sample %d: no offer within 30 s of ready", i)
		}
		// The station declined: wait until the MCS has it not ready again
		// and the call back in the queue before the next sample.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			a, err := s.c.ACD().State(ctx)
			if err == nil && a.State == client.StateNotReady && a.QueueDepth >= held {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("sample %d: state %+v %v after the decline", i, a, err)
			}
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(held), "queued")
	b.Logf("ready -> offer at the station, %d samples, %d interpreters, %d queued: p50 %s, p90 %s, p99 %s, max %s",
		len(lat), *interpreters, held, pct(0.50), pct(0.90), pct(0.99), lat[len(lat)-1])
}

// startNode runs node n1 of cfg until stop, which waits for it to end.
func startNode(ctx context.Context, b *testing.B, cfg *config.Config) (n *provider.Node, stop func()) {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	n, err := provider.New(ctx, cfg, "n1", provider.Options{Log: log})
	if err != nil {
		b.Fatal(err)
	}
	if err := n.Listen(); err != nil {
		n.Close()
		b.Fatal(err)
	}
	sctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() { served <- n.Serve(sctx) }()
	return n, func() {
		cancel()
		<-served
		n.Close()
	}
}

// benchConfig is one node with every role on the MCS address, a trunk at
// the trunk address, limits opened for the load, the [acd] settings acd,
// and the store (SQLite, or PostgreSQL at dsn).
func benchConfig(dir, dsn, acd string) (*config.Config, error) {
	store := ""
	if dsn != "" {
		store = fmt.Sprintf("[store]\ndriver = \"postgres\"\ndsn = %q\n", dsn)
	}
	extra := fmt.Sprintf(`# Every station resolves lb.mcs from 127.0.0.1, one /24, faster than the
# default 50 answers a second: response rate limiting then drops some UDP
# answers, and each drop cost a sample the resolver's 2 s UDP try before
# TCP (the p99 of 2 s this bench once showed). It measures the queue.
rate_limit = 1000000

[zdial]
rate_limit = -1

[mcs]
rate_limit = -1

[sip]
rate_limit = -1
max_in_flight = 100000
max_in_flight_per_source = 100000
max_calls_per_number = 100000
max_conns_per_ip = 100000
max_conns = 100000

[relay]
# The waiting calls all come from the trunk: its relay ports (4 a call)
# may use the whole range.
max_ports_per_customer = 55000
max_ports_per_source = 55000

[acd]
%s

[trunk]
address = "sip:%s:5080;transport=tcp"
allow = ["%s/32"]

%s`, acd, *trunkFlag, *trunkFlag, store)
	toml := devstack.Deployment("Z5 acd bench", dir, true, extra, devstack.Site{Name: "a", Nodes: []devstack.Node{{
		Name: "n1", Roles: []string{"dns", "zdial", "mcs"}, Address: *ipFlag, Hosts: []string{"mcs1.mcs.z5.test"},
	}}})
	// 10,000 waiting calls hold 40,000 relay ports: more than the dev range.
	const devRTP, benchRTP = `rtp = "20000-20999"`, `rtp = "10000-65000"`
	if !strings.Contains(toml, devRTP) {
		return nil, fmt.Errorf("dev deployment has no %s to widen", devRTP)
	}
	toml = strings.Replace(toml, devRTP, benchRTP, 1)
	p := filepath.Join(dir, "z5.toml")
	if err := os.WriteFile(p, []byte(toml), 0o600); err != nil {
		return nil, err
	}
	return config.Load(p)
}

// station is an interpreter's client: registered, and declining every
// offer (486) after noting when it arrived.
type station struct {
	c      *client.Client
	ph     *client.Phone
	offers chan time.Time
}

func newStation(ctx context.Context, home string, prof *profile.Profile, user, pw string) (*station, error) {
	c, err := openClient(ctx, home, prof, user, pw, "")
	if err != nil {
		return nil, err
	}
	s := &station{c: c, offers: make(chan time.Time, 1)}
	s.ph, err = c.Connect(ctx, client.PhoneOptions{OnIncoming: func(ic *client.IncomingCall) {
		at := time.Now()
		ic.Reject(486, "Busy Here")
		select {
		case s.offers <- at:
		default: // an offer nobody waits for (a re-offer): not a sample
		}
	}})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", user, err)
	}
	return s, nil
}

// openClient is a Z5 client at home logged in as user (with number, when
// set) to the provider prof describes.
func openClient(ctx context.Context, home string, prof *profile.Profile, user, pw, number string) (*client.Client, error) {
	c, err := client.Open(client.Options{Home: home, UserAgent: "Z5-bench"})
	if err != nil {
		return nil, err
	}
	if err := c.SetProfile(prof); err != nil {
		return nil, err
	}
	if err := c.Login(ctx, client.LoginRequest{Username: user, Password: pw, Number: number}); err != nil {
		return nil, fmt.Errorf("%s: %w", user, err)
	}
	return c, nil
}

// waiting are the calls held in the queue: INVITEs from the trunk's
// address to one of our numbers, never answered while the bench runs.
type waiting struct {
	ua     *sipgo.UserAgent
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func (w *waiting) close() {
	w.cancel()
	w.wg.Wait()
	w.ua.Close()
}

// fillQueue places n inbound calls from trunkIP to the node's SIP port, at
// most 100 INVITEs unanswered by a provisional response at a time.
func fillQueue(ctx context.Context, cfg *config.Config, trunkIP string, n int) (*waiting, error) {
	node := cfg.Nodes()[0]
	mcs := netip.AddrPortFrom(netip.MustParseAddr(node.Address), uint16(cfg.Ports.SIP))
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("Z5-bench-trunk"), sipgo.WithUserAgentHostname(trunkIP))
	if err != nil {
		return nil, err
	}
	cl, err := sipgo.NewClient(ua, sipgo.WithClientHostname(trunkIP))
	if err != nil {
		ua.Close()
		return nil, err
	}
	contact := sipmsg.ContactHeader{Address: sipmsg.Uri{Scheme: "sip", User: "pstn", Host: trunkIP, Port: 5080}}
	dc := sipgo.NewDialogClientCache(cl, contact)
	ip := netip.MustParseAddr(trunkIP)
	// Media is never sent: the SDP names a port nothing listens on.
	offer, err := media.BuildOffer(ip, 40000, 0, false)
	if err != nil {
		ua.Close()
		return nil, err
	}
	qctx, cancel := context.WithCancel(ctx)
	w := &waiting{ua: ua, cancel: cancel}
	sem := make(chan struct{}, 100)
	for i := range n {
		sem <- struct{}{}
		req := sipmsg.NewRequest(sipmsg.INVITE, sipmsg.Uri{Scheme: "sip", User: "3035550199", Host: cfg.Names.SIPDomain})
		req.SetTransport("TCP")
		req.SetDestination(mcs.String())
		req.Laddr = sipmsg.Addr{IP: net.IP(ip.AsSlice()), Hostname: trunkIP}
		from := &sipmsg.FromHeader{Address: sipmsg.Uri{Scheme: "sip", User: fmt.Sprintf("212%07d", i), Host: trunkIP}, Params: sipmsg.NewParams()}
		from.Params.Add("tag", sipmsg.GenerateTagN(12))
		req.AppendHeader(from)
		req.AppendHeader(&sipmsg.ToHeader{Address: sipmsg.Uri{Scheme: "sip", User: "3035550199", Host: cfg.Names.SIPDomain}})
		req.AppendHeader(sipmsg.NewHeader("Route", fmt.Sprintf("<sip:%s;transport=tcp;lr>", mcs)))
		req.AppendHeader(sipmsg.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(offer)
		sess, err := dc.WriteInvite(qctx, req)
		if err != nil {
			w.close()
			return nil, fmt.Errorf("call %d: %w", i, err)
		}
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			defer sess.Close()
			released := false
			sess.WaitAnswer(qctx, sipgo.AnswerOptions{OnResponse: func(res *sipmsg.Response) error {
				if !released && res.StatusCode >= 180 {
					released = true
					<-sem
				}
				return nil
			}})
			if !released {
				<-sem
			}
		}()
	}
	return w, nil
}
