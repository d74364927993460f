package sipserver

import (
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
)

// transport holds what the TCP, TLS and UDP wrappers share: limits, the
// inspector, the live flows and the write-path hook.
type transport struct {
	log        *slog.Logger
	in         *inspector
	m          *metrics
	maxSize    int
	maxHeaders int
	idle       time.Duration
	msgTimeout time.Duration
	server     string // Server header value
	// serverHdr is that header, shared by the responses built here
	// (headers are never changed once written).
	serverHdr sipmsg.Header

	// conns admits TCP and TLS connections (conns.go).
	conns *connTable

	// shield applies bans and rate limits before parsing (guard.go);
	// nil: none.
	shield *shield
	// amp bounds responses to unauthenticated UDP requests and silences
	// canceled UDP forks (amplify.go); nil: neither.
	amp *amplifyGuard

	// onClose is told about every flow that closes (the registrar drops
	// its bindings). Called once per flow, from the goroutine closing it.
	onClose func(*flowConn)

	// stateless takes the requests a stream flow reads that are answered
	// without a transaction (stateless.go); nil: none are.
	stateless func(*sipmsg.Request, *flowConn)

	nextID atomic.Uint64

	// byCode caches the responses counter of each status code.
	byCode [600]atomic.Pointer[prometheus.Counter]

	// wbufs holds the buffers stateless responses are written into
	// (stateless.go).
	wbufs sync.Pool

	// rbufs holds the read buffers of idle TCP flows (transport_tcp.go).
	rbufs sync.Pool

	mu    sync.Mutex           // guards flows
	flows map[string]*flowConn // by transport "|" remote address, as sipgo keys connections
}

func flowKey(transport, raddr string) string { return transport + "|" + raddr }

func (t *transport) addFlow(c *flowConn) {
	t.mu.Lock()
	t.flows[flowKey(c.transport, c.RemoteAddr().String())] = c
	n := len(t.flows)
	t.mu.Unlock()
	t.m.flows.Set(float64(n))
}

func (t *transport) removeFlow(c *flowConn) {
	t.mu.Lock()
	k := flowKey(c.transport, c.RemoteAddr().String())
	if t.flows[k] == c {
		delete(t.flows, k)
	}
	n := len(t.flows)
	t.mu.Unlock()
	t.m.flows.Set(float64(n))
	if t.onClose != nil {
		t.onClose(c)
	}
}

// flow returns the live connection a request arrived on, by the transport
// and source sipgo recorded.
func (t *transport) flow(transport, source string) *flowConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.flows[flowKey(transport, source)]
}

// closeAll closes every flow (server shutdown).
func (t *transport) closeAll() {
	t.mu.Lock()
	all := make([]*flowConn, 0, len(t.flows))
	for _, c := range t.flows {
		all = append(all, c)
	}
	t.mu.Unlock()
	for _, c := range all {
		c.Close()
	}
}

// stamp is the write path every outgoing message takes: responses get the
// Server header and are counted by status code.
func (t *transport) stamp(b []byte) []byte {
	out, code := stampResponse(b, t.server)
	t.countResponse(code)
	return out
}

// countResponse counts a response sent with status code (100-699; other
// values are not responses). The counter of each code is looked up once:
// a label lookup per response was a hash and a string per response.
func (t *transport) countResponse(code int) {
	if code < 100 || code > 699 {
		return
	}
	c := t.byCode[code-100].Load()
	if c == nil {
		pc := t.m.responses.WithLabelValues(strconv.Itoa(code))
		c = &pc
		t.byCode[code-100].Store(c)
	}
	(*c).Inc()
}
