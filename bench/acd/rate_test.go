package acd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/backoffice"
	"github.com/z5vrs/z5/internal/client"
	"github.com/z5vrs/z5/internal/location"
	"github.com/z5vrs/z5/internal/pstnpeer"
)

var (
	rateStations = flag.Int("stations", 40, "interpreter stations (auto-answer) for BenchmarkRelayRate")
	rateCallers  = flag.Int("callers", 8, "deaf callers (Z5 clients) placing BenchmarkRelayRate's calls")
	maxRate      = flag.Int("max-rate", 20, "highest step of BenchmarkRelayRate, calls a second")
	stepFor      = flag.Duration("step", 4*time.Second, "how long each rate step places calls")
	holdFor      = flag.Duration("hold", 2*time.Second, "how long each connected relay call lasts before the caller hangs up")
	setupTimeout = flag.Duration("setup-timeout", 10*time.Second, "a relay call not connected to both parties this long after its INVITE fails")
	wrapUp       = flag.Duration("wrap-up", time.Second, "[acd] wrap_up: a station's rest after each call")
)

// rateSteps are the calls a second of each step, up to top.
func rateSteps(top int) []int {
	var steps []int
	for _, r := range []int{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000} {
		if r <= top {
			steps = append(steps, r)
		}
	}
	if len(steps) == 0 || steps[len(steps)-1] != top {
		steps = append(steps, top)
	}
	return steps
}

// leg is what the stations saw of one relay call's hearing leg, keyed by
// the number dialled (one a call).
type leg struct {
	done      chan struct{} // closed when connected or failed
	once      sync.Once
	connected time.Time
	failure   string
}

func (l *leg) finish(at time.Time, failure string) {
	l.once.Do(func() {
		l.connected, l.failure = at, failure
		close(l.done)
	})
}

// legs routes the stations' events to the calls waiting for them.
type legs struct {
	mu sync.Mutex
	m  map[string]*leg
}

func (ls *legs) add(number string) *leg {
	l := &leg{done: make(chan struct{})}
	ls.mu.Lock()
	ls.m[number] = l
	ls.mu.Unlock()
	return l
}

func (ls *legs) remove(number string) {
	ls.mu.Lock()
	delete(ls.m, number)
	ls.mu.Unlock()
}

func (ls *legs) event(ev client.StationEvent) {
	if ev.Leg != client.LegHearing || (ev.Event != client.EvConnected && ev.Event != client.EvLegFailed) {
		return
	}
	ls.mu.Lock()
	l := ls.m[ev.Number]
	ls.mu.Unlock()
	if l == nil {
		return
	}
	if ev.Event == client.EvConnected {
		l.finish(ev.Time, "")
		return
	}
	l.finish(ev.Time, fmt.Sprintf("hearing leg failed: %d %s %s", ev.Status, ev.Reason, ev.Error))
}

// outcome is one relay call's result.
type outcome struct {
	terp, hearing time.Duration // INVITE to the interpreter's answer, and to the hearing leg's
	failure       string        // empty when completed
}

// stepResult is one step's count.
type stepResult struct {
	rate, placed, completed, failed int
	took                            time.Duration
	terp, hearing                   []time.Duration
	failures                        map[string]int
}

// BenchmarkRelayRate measures relay calls a second through the whole relay
// path, stepped until the first failure (-v shows every step's line).
//
//	go test -run '^$' -bench RelayRate -benchtime 1x -v ./bench/acd \
//	    -args -stations 40 -max-rate 20
//
// One z5d node runs in-process as for BenchmarkOfferLatency; N
// interpreter stations run client.RunStation with AutoAnswer (what
// `z5 interpret --auto-answer` runs) and sign in ready; the telephone
// network is internal/pstnpeer at the trunk's address, answering every
// call with a tone. Deaf callers (Z5 clients of customers with a
// registered location) call hearing numbers, one new number a call, at a
// stepped rate (1, 2, 5, 10, 20, 50, 100 a second up to -max-rate), each
// step -step long. A call: the caller's INVITE is queued, offered, answered
// by a station, which places the audio-only second leg through the MCS to
// the trunk; the caller holds -hold and hangs up. A call is completed when
// the caller got the interpreter's answer and the hearing leg was answered
// within -setup-timeout, and the caller's call lasted until it hung up;
// anything else (a non-2xx, a timeout, a leg that ended early) is a
// failure. The run stops after the first step with a failure.
func BenchmarkRelayRate(b *testing.B) {
	total := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := b.TempDir()
	cfg, err := benchConfig(dir, "", fmt.Sprintf("wrap_up = %q", wrapUp.String()))
	if err != nil {
		b.Fatal(err)
	}
	n, stopNode := startNode(ctx, b, cfg)
	defer func() {
		t := time.Now()
		stopNode()
		b.Logf("node stopped in %s", time.Since(t).Round(time.Millisecond))
	}()
	st := n.Store()
	prof := n.Profile()

	// The telephone network: answers every call at the trunk's address.
	peer, err := pstnpeer.New(pstnpeer.Config{Addr: *trunkFlag + ":5080"})
	if err != nil {
		b.Fatal(err)
	}
	if err := peer.Listen(); err != nil {
		peer.Close()
		b.Fatal(err)
	}
	pctx, stopPeer := context.WithCancel(ctx)
	peerDone := make(chan error, 1)
	go func() { peerDone <- peer.Serve(pctx) }()
	defer func() {
		t := time.Now()
		stopPeer()
		if err := <-peerDone; err != nil {
			b.Errorf("telephone network peer: %v", err)
		}
		b.Logf("telephone network peer stopped in %s", time.Since(t).Round(time.Millisecond))
	}()

	// Provisioning: the interpreters, and the deaf callers each with a
	// number and a registered location.
	start := time.Now()
	pw := "bench-interpreter-1"
	for i := range *rateStations {
		if _, err := backoffice.AddInterpreter(ctx, st, fmt.Sprintf("terp%d", i), "", fmt.Sprintf("%d", 1000+i), pw); err != nil {
			b.Fatal(err)
		}
	}
	callerNumbers := make([]string, *rateCallers)
	for i := range callerNumbers {
		user := fmt.Sprintf("deaf%d", i)
		callerNumbers[i] = fmt.Sprintf("30355501%02d", i)
		if _, err := backoffice.AddCustomer(ctx, st, user, "", "bench-customer-1"); err != nil {
			b.Fatal(err)
		}
		if _, err := backoffice.AddNumber(ctx, st, user, callerNumbers[i], ""); err != nil {
			b.Fatal(err)
		}
		a := location.Address{Street: "1 Test Plaza", City: "Springfield", State: "IL", Zip: "62701"}
		if _, err := backoffice.SetLocation(ctx, st, user, a, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("provisioned %d interpreters and %d callers in %s", *rateStations, *rateCallers, time.Since(start).Round(time.Millisecond))

	// The stations: auto-answer, signed in ready.
	start = time.Now()
	ls := &legs{m: map[string]*leg{}}
	ready := make(chan int, *rateStations)
	sctx, stopStations := context.WithCancel(ctx)
	var stations sync.WaitGroup
	stationErrs := make(chan error, *rateStations)
	defer func() {
		t := time.Now()
		stopStations()
		stations.Wait()
		b.Logf("stations signed out in %s", time.Since(t).Round(time.Millisecond))
		close(stationErrs)
		for err := range stationErrs {
			b.Errorf("station: %v", err)
		}
	}()
	sem := make(chan struct{}, 4) // logins cost the server an argon2id check
	for i := range *rateStations {
		stations.Add(1)
		go func() {
			defer stations.Done()
			sem <- struct{}{}
			c, err := openClient(sctx, filepath.Join(dir, "stations", fmt.Sprint(i)), prof, fmt.Sprintf("terp%d", i), pw, "")
			<-sem
			if err != nil {
				stationErrs <- err
				return
			}
			once := sync.Once{}
			err = c.RunStation(sctx, client.StationOptions{AutoAnswer: true, OnEvent: func(ev client.StationEvent) {
				if ev.Event == client.EvState && ev.State == client.StateReady {
					once.Do(func() { ready <- i })
				}
				ls.event(ev)
			}})
			if err != nil && sctx.Err() == nil {
				stationErrs <- fmt.Errorf("terp%d: %w", i, err)
			}
		}()
	}
	for range *rateStations {
		select {
		case <-ready:
		case err := <-stationErrs:
			b.Fatal(err)
		case <-time.After(2 * time.Minute):
			b.Fatal("stations not ready within 2 minutes")
		}
	}
	b.Logf("%d stations ready in %s", *rateStations, time.Since(start).Round(time.Millisecond))

	// The callers: registered, placing several calls at once each.
	start = time.Now()
	phones := make([]*client.Phone, len(callerNumbers))
	defer func() {
		t := time.Now()
		for _, ph := range phones {
			if ph != nil {
				ph.Close()
			}
		}
		b.Logf("callers closed in %s", time.Since(t).Round(time.Millisecond))
	}()
	for i := range phones {
		c, err := openClient(ctx, filepath.Join(dir, "callers", fmt.Sprint(i)), prof, fmt.Sprintf("deaf%d", i), "bench-customer-1", callerNumbers[i])
		if err != nil {
			b.Fatal(err)
		}
		if phones[i], err = c.Connect(ctx, client.PhoneOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d callers registered in %s", len(phones), time.Since(start).Round(time.Millisecond))

	// The steps.
	var results []stepResult
	next := 0 // the next hearing number
	b.ResetTimer()
	for _, rate := range rateSteps(*maxRate) {
		r := runStep(ctx, rate, phones, ls, &next)
		results = append(results, r)
		b.Logf("%3d/s: %d placed, %d completed, %d failed in %s; to the interpreter p50 %s p99 %s; to the hearing party p50 %s p99 %s %v",
			r.rate, r.placed, r.completed, r.failed, r.took.Round(time.Millisecond),
			pct(r.terp, 0.5), pct(r.terp, 0.99), pct(r.hearing, 0.5), pct(r.hearing, 0.99), r.failures)
		if r.failed > 0 || ctx.Err() != nil {
			break
		}
		// Let the last calls' stations finish wrap-up before the next step.
		time.Sleep(*wrapUp + time.Second)
	}
	b.StopTimer()

	best := 0
	for _, r := range results {
		if r.failed == 0 {
			best = r.rate
		}
	}
	var terp, hearing []time.Duration
	for _, r := range results {
		terp = append(terp, r.terp...)
		hearing = append(hearing, r.hearing...)
	}
	b.ReportMetric(float64(best), "calls/s-clean")
	b.ReportMetric(ms(pct(terp, 0.5)), "terp-p50-ms")
	b.ReportMetric(ms(pct(terp, 0.99)), "terp-p99-ms")
	b.ReportMetric(ms(pct(hearing, 0.5)), "hearing-p50-ms")
	b.ReportMetric(ms(pct(hearing, 0.99)), "hearing-p99-ms")
	b.Logf("highest step with no failure: %d/s (%d stations, %d callers, %s calls, wrap-up %s); %d pstnpeer calls; run took %s",
		best, *rateStations, *rateCallers, *holdFor, *wrapUp, len(peer.Calls()), time.Since(total).Round(time.Second))
}

// runStep places rate calls a second for -step, each to a new number,
// and waits for all of them to end.
func runStep(ctx context.Context, rate int, phones []*client.Phone, ls *legs, next *int) stepResult {
	count := max(1, int(float64(rate)*stepFor.Seconds()))
	res := stepResult{rate: rate, placed: count, failures: map[string]int{}}
	outs := make([]outcome, count)
	var wg sync.WaitGroup
	start := time.Now()
	gap := time.Second / time.Duration(rate)
	for i := range count {
		// Paced from the step's start, so a slow launch does not slow the rate.
		if d := time.Until(start.Add(time.Duration(i) * gap)); d > 0 {
			time.Sleep(d)
		}
		number := fmt.Sprintf("212555%04d", *next%10000)
		*next++
		ph := phones[i%len(phones)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := relayCall(ctx, ph, number, ls)
			// Failures are counted by kind, not by number.
			o.failure = strings.ReplaceAll(o.failure, number, "NUMBER")
			outs[i] = o
		}()
	}
	wg.Wait()
	res.took = time.Since(start)
	for _, o := range outs {
		if o.failure != "" {
			res.failed++
			res.failures[o.failure]++
			continue
		}
		res.completed++
		res.terp = append(res.terp, o.terp)
		res.hearing = append(res.hearing, o.hearing)
	}
	return res
}

// relayCall is one deaf caller's relay call to number: INVITE, the
// interpreter's answer, the hearing leg answered, -hold, hang up.
func relayCall(ctx context.Context, ph *client.Phone, number string, ls *legs) outcome {
	l := ls.add(number)
	defer ls.remove(number)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t0 := time.Now()
	// Cancelled (CANCEL sent) only while setting up: the call's own
	// dialog outlives the INVITE.
	giveUp := time.AfterFunc(*setupTimeout, cancel)
	call, err := ph.Call(cctx, number, client.MediaOptions{}, nil)
	giveUp.Stop()
	if err != nil {
		var ce *client.CallError
		switch {
		case errors.As(err, &ce) && ce.Status != 0:
			return outcome{failure: fmt.Sprintf("caller: %d %s", ce.Status, ce.Reason)}
		case cctx.Err() != nil:
			return outcome{failure: "caller: no answer within the setup timeout"}
		}
		return outcome{failure: "caller: " + err.Error()}
	}
	o := outcome{terp: call.Answered.Sub(t0)}
	hangup := func() {
		hctx, hcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer hcancel()
		call.Hangup(hctx)
	}
	select {
	case <-l.done:
	case <-time.After(time.Until(t0.Add(*setupTimeout))):
		hangup()
		return outcome{failure: "hearing leg not answered within the setup timeout"}
	case <-ctx.Done():
		hangup()
		return outcome{failure: "stopped"}
	}
	if l.failure != "" {
		hangup()
		return outcome{failure: l.failure}
	}
	o.hearing = l.connected.Sub(t0)
	if reason := call.Wait(ctx, *holdFor, nil); reason != "duration reached" {
		return outcome{failure: "ended early: " + reason}
	}
	return o
}

// pct is the p-quantile of ds (sorted in place); 0 when empty.
func pct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(len(ds)-1, int(p*float64(len(ds))))].Round(time.Millisecond)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
