package sipserver

import (
	"bytes"
	"sync"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"
)

// REGISTER over a stream is answered without a server transaction. A
// client never retransmits a request over TCP or TLS (RFC 3261 §17.1.2.2:
// Timer E runs over unreliable transports only), so there is nothing for
// a non-INVITE transaction to absorb, and Kamailio's registrar answers
// statelessly too (sl_send_reply). The flow hands such a REGISTER here as
// soon as it is read (ReadMessage), and its response is written straight
// to the flow: it skips sipgo's transaction layer (a transaction with its
// key, state machine, timer and table entry) on the request a node gets
// most. Everything else, and every request over UDP, still goes through
// sipgo's transactions.

// statelessIdle is how long a stateless worker waits for another request
// before it ends.
const statelessIdle = time.Second

// statelessPerFlow is how many stateless requests of one flow are handled
// at once. The flow's reader waits for a slot before it reads on, so a
// client sending faster than the node can answer is slowed by TCP's own
// flow control, as with Kamailio's fixed worker processes, instead of
// each request it sends starting a goroutine until the node's in-flight
// limit sheds them with 503s: past its capacity the node then went on
// answering at its capacity, where before it answered at two thirds of it
// (28,000/s offered over one connection in the benchmark). The slots
// still keep a node's two cores busy when a request waits on the store.
const statelessPerFlow = 32

// statelessJob is one request for a stateless worker.
type statelessJob struct {
	req *sipmsg.Request
	tx  *streamTx
}

// answersStatelessly reports whether a request read from a stream flow is
// handled without a transaction.
func answersStatelessly(msg sipmsg.Message) (*sipmsg.Request, bool) {
	req, ok := msg.(*sipmsg.Request)
	return req, ok && req.Method == sipmsg.REGISTER
}

// handleStateless answers req, read from c, on the flow's reader (the
// caller) when it is the flow's only request: nothing more of the flow is
// buffered and none of its requests is being answered. Otherwise it hands
// req to an idle stateless worker, or to a new one. Once the server is
// closing it is handled (refused) on the caller's goroutine.
//
// A client with nothing else outstanding is waiting for this answer (a
// device connecting to register sends the REGISTER and waits for the 401,
// then for the 200): a worker would only add a hand-over, a wake-up and a
// context switch per request, with the reader idle meanwhile (5-7% of
// the node's CPU with a new connection per REGISTER). Workers answer the
// requests a client has pipelined, side by side, which is how one busy
// connection keeps both cores working; while any of a flow's requests is
// with a worker, the flow goes on being read, so that its excess is
// refused by the in-flight limits rather than left unanswered. A lone
// request that waits on the store holds its flow's reader meanwhile: its
// client is waiting for the answer anyway.
func (s *Server) handleStateless(req *sipmsg.Request, c *flowConn) {
	req.SetTransport(c.transport)
	req.SetSource(c.src)
	if c.drained() && len(c.busy) == 0 {
		tx := &streamTx{c: c}
		s.handle(req, tx)
		tx.Terminate()
		return
	}
	if c.busy == nil {
		c.busy = make(chan struct{}, statelessPerFlow) // the reader's, as is this call
	}
	c.busy <- struct{}{} // given back by the worker, when the request is handled
	j := statelessJob{req: req, tx: &streamTx{c: c}}
	select {
	case s.slWork <- j:
		return
	default:
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.handle(j.req, j.tx)
		<-c.busy
		return
	}
	s.bg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.bg.Done()
		s.statelessWorker(j)
	}()
}

// statelessWorker handles j, then the jobs handed to it until it has been
// idle for statelessIdle or the server closes. Workers are reused rather
// than a goroutine started per request, whose stack would grow (and be
// copied) on the way into the handler every time.
func (s *Server) statelessWorker(j statelessJob) {
	idle := time.NewTimer(statelessIdle)
	defer idle.Stop()
	for {
		s.handle(j.req, j.tx)
		j.tx.Terminate()
		<-j.tx.c.busy
		idle.Reset(statelessIdle)
		select {
		case j = <-s.slWork:
		case <-idle.C:
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// streamTx is the sipmsg.ServerTransaction of a request answered without
// a transaction: Respond writes to the flow the request came over.
type streamTx struct {
	c *flowConn

	mu     sync.Mutex
	ended  bool
	err    error
	done   chan struct{} // made when Done is first called
	onTerm []sipmsg.FnTxTerminate
}

var _ sipmsg.ServerTransaction = (*streamTx)(nil)

// Respond writes res to the flow. A final response ends the transaction.
func (t *streamTx) Respond(res *sipmsg.Response) error {
	t.mu.Lock()
	ended := t.ended
	t.mu.Unlock()
	if ended {
		return sipmsg.ErrTransactionTerminated
	}
	// Stamped here (transport.stamp's Server header and count) rather
	// than by copying the written bytes to insert the header.
	if res.GetHeader("server") == nil { // lower case: no lower-casing copy
		res.AppendHeader(t.c.t.serverHdr)
	}
	buf, _ := t.c.t.wbufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	res.StringWrite(buf)
	_, err := t.c.send(buf.Bytes(), buf.Len())
	t.c.t.wbufs.Put(buf)
	t.c.t.countResponse(res.StatusCode)
	if err != nil {
		t.end(err)
		return err
	}
	if !res.IsProvisional() {
		t.end(nil)
	}
	return nil
}

func (t *streamTx) end(err error) {
	t.mu.Lock()
	if t.ended {
		t.mu.Unlock()
		return
	}
	t.ended, t.err = true, err
	if t.done != nil {
		close(t.done)
	}
	fs := t.onTerm
	t.onTerm = nil
	t.mu.Unlock()
	for _, f := range fs {
		f("", err)
	}
}

// Terminate ends the transaction without a response.
func (t *streamTx) Terminate() { t.end(nil) }

// OnTerminate calls f when the transaction ends; false when it has.
func (t *streamTx) OnTerminate(f sipmsg.FnTxTerminate) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ended {
		return false
	}
	t.onTerm = append(t.onTerm, f)
	return true
}

// Done is closed when the transaction ends.
func (t *streamTx) Done() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done == nil {
		t.done = make(chan struct{})
		if t.ended {
			close(t.done)
		}
	}
	return t.done
}

// Err is why the transaction ended: a failed write, or nil.
func (t *streamTx) Err() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err
}

// Acks is nil: a REGISTER has no ACK.
func (t *streamTx) Acks() <-chan *sipmsg.Request { return nil }

// OnCancel is never called: a CANCEL of a REGISTER is answered by the
// transaction layer (RFC 3261 §9.2: it has no effect on a non-INVITE).
func (t *streamTx) OnCancel(sipmsg.FnTxCancel) bool { return false }
