package t140

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestTypingThroughLoss types 1,000 characters at 30 per second through
// Send and a channel that drops 5% of packets (seeded, so the run is the
// same each time) and delays the rest by 20 ms, on the fake clock: every
// character arrives, in order, with no loss marker, and the 95th
// percentile of typed-to-shown time stays under 500 ms.
func TestTypingThroughLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			chars = 1000
			cps   = 30
			loss  = 0.05
			delay = 20 * time.Millisecond
		)
		enc, err := NewEncoder(EncoderConfig{T140PT: 98, RedPT: 100, Generations: Generations, Interval: Interval,
			SSRC: 7, Seq: 65000, Start: time.Now()})
		if err != nil {
			t.Fatal(err)
		}
		dec, err := NewDecoder(DecoderConfig{T140PT: 98, RedPT: 100, Red: true})
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(4103, 2198))
		var (
			mu       sync.Mutex
			got      []byte
			arrived  []time.Time
			sent     int
			dropped  int
			typedAt  = make([]time.Time, chars)
			want     = make([]byte, chars)
			typed    = make(chan []byte)
			ctx, end = context.WithCancel(t.Context())
			wg       sync.WaitGroup
		)
		for i := range want {
			want[i] = "abcdefghijklmnopqrstuvwxyz "[i%27]
		}
		send := func(pkt []byte) error {
			mu.Lock()
			defer mu.Unlock()
			sent++
			if rng.Float64() < loss {
				dropped++
				return nil
			}
			time.AfterFunc(delay, func() {
				mu.Lock()
				defer mu.Unlock()
				out, err := dec.Decode(got, pkt)
				if err != nil {
					t.Errorf("decode: %v", err)
				}
				for range len(out) - len(got) {
					arrived = append(arrived, time.Now())
				}
				got = out
			})
			return nil
		}
		wg.Go(func() { Send(ctx, enc, typed, send) })
		start := time.Now()
		for i := range chars {
			time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / cps)))
			typedAt[i] = time.Now()
			typed <- want[i : i+1]
		}
		close(typed)
		wg.Wait() // Send returns once the redundancy tail is out
		time.Sleep(time.Second)
		synctest.Wait()
		end()

		mu.Lock()
		defer mu.Unlock()
		if string(got) != string(want) {
			t.Fatalf("received %d bytes, lost %d gaps; differs from what was typed:\n%q", len(got), dec.Lost, got)
		}
		lat := make([]time.Duration, chars)
		for i := range lat {
			lat[i] = arrived[i].Sub(typedAt[i])
		}
		slices.Sort(lat)
		p95 := lat[chars*95/100-1]
		t.Logf("%d packets, %d dropped (%.1f%%); latency p50 %v p95 %v max %v", sent, dropped,
			100*float64(dropped)/float64(sent), lat[chars/2-1], p95, lat[chars-1])
		if dropped == 0 {
			t.Fatal("the channel dropped nothing: the test proves nothing")
		}
		if p95 >= 500*time.Millisecond {
			t.Fatalf("p95 typed-to-shown %v, want under 500 ms", p95)
		}
	})
}
