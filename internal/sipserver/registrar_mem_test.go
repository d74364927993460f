package sipserver

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime"
	"strconv"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/z5vrs/z5/internal/sipcore"
	"github.com/z5vrs/z5/internal/store"
)

type discardLocations struct{}

func (discardLocations) ChangeRegistrations(context.Context, []store.RegistrationChange) error {
	return nil
}

// BenchmarkRegistrarMemory reports the heap a binding takes in the
// registrar (bytes/binding): numbers registered as SIPp registers them in
// bench/run.sh's memory part, all over one TCP flow. The REGISTERs are
// garbage once handled, so only what the table keeps counts.
func BenchmarkRegistrarMemory(b *testing.B) {
	const n = 20000
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		parse := func(i int) *sipmsg.Request {
			u := strconv.Itoa(2125550000 + i)
			msg, err := sipmsg.ParseMessage([]byte(fmt.Sprintf("REGISTER sip:mcs.z5.test SIP/2.0\r\n"+
				"Via: SIP/2.0/TCP 127.0.79.1:5074;branch=z9hG4bK-%d-2\r\nMax-Forwards: 70\r\n"+
				"From: <sip:%s@mcs.z5.test>;tag=4242SIPpTag00%d\r\nTo: <sip:%s@mcs.z5.test>\r\n"+
				"Call-ID: %d-4242@127.0.79.1\r\nCSeq: 2 REGISTER\r\n"+
				"Contact: <sip:%s@127.0.79.1:5074;transport=TCP>\r\nExpires: 3600\r\nUser-Agent: SIPp\r\nContent-Length: 0\r\n\r\n",
				i, u, i, u, i, u)))
			if err != nil {
				b.Fatal(err)
			}
			return msg.(*sipmsg.Request)
		}
		r := newRegistrar("n1", discardLocations{}, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Now, m,
			sipcore.RegisterLimits{DefaultExpires: 3600, MinExpires: 60, MaxExpires: 7200, MaxPerNumber: 10, MaxUDPPerAddr: 10})
		flow := flowRef{id: "TCP/127.0.79.1:5074/1", transport: "TCP", dest: "127.0.79.1:5074",
			local: netip.MustParseAddrPort("127.0.77.1:5060")}
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i := range n {
			req := parse(i)
			dev := store.Device{ID: int64(i + 1), Number: strconv.Itoa(2125550000 + i), Kind: store.DeviceSIP}
			r.opMu.Lock()
			cs, refusal := r.plan(req, dev, flow)
			if refusal.Code != 0 {
				b.Fatalf("refused: %+v", refusal)
			}
			if err := r.applyLocked(context.Background(), cs); err != nil {
				b.Fatal(err)
			}
			r.opMu.Unlock()
		}
		r.w.close()
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/n, "bytes/binding")
		if got := len(r.lookup("2125550007")); got != 1 {
			b.Fatalf("lookup: %d bindings", got)
		}
	}
}
