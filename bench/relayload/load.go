package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// mediaKind is the shape of one stream: payload size and packet rate.
type mediaKind struct {
	name   string
	size   int     // UDP payload bytes, RTP header included
	rate   float64 // packets per second per stream
	pt     byte
	rtpmap string
}

var kinds = map[string]mediaKind{
	"video": {"video", 1200, 90, 96, "96 H264/90000"},
	"audio": {"audio", 160, 50, 0, "0 PCMU/8000"},
}

// relayTarget is one relay under test.
type relayTarget struct {
	label string
	ng    string // ng control address; empty: legs send to each other directly (baseline)
	pid   int    // the relay's process, for CPU accounting; 0: none

	client   *ngClient
	done     bool
	stop     string
	best     stepResult
	byTarget map[int]stepResult
}

// loadConfig is one ladder run against one or more relays, interleaved.
type loadConfig struct {
	relays  []*relayTarget
	ip      netip.Addr // the legs' address
	kind    mediaKind
	steps   []int // target packets per second, relayed, both directions together
	dur     time.Duration
	warm    time.Duration // excluded from loss and latency
	maxLoss float64       // a step passes below this fraction
	senders int
	out     io.Writer
}

// stepResult is what one ladder step measured.
type stepResult struct {
	target, calls, streams int
	sentPPS, recvPPS       float64
	loss                   float64 // fraction of packets sent in the window that never arrived
	p50, p99, p999         time.Duration
	genBound               bool // the generator could not send the target rate
	sendErrs               int64
	relayCores             float64 // CPU the relay process used, in cores
	cpuPerPkt              time.Duration
	genCores               float64
	// hostPerPkt is the busy time of every core (/proc/stat) per packet:
	// generator, relay process and kernel (softirq) together, so a relay
	// that forwards in the kernel is charged for it too.
	hostPerPkt time.Duration
}

func (s stepResult) pass(maxLoss float64) bool { return s.loss < maxLoss }

func (s stepResult) String() string {
	return fmt.Sprintf("target_pps=%d calls=%d streams=%d sent_pps=%.0f recv_pps=%.0f loss_pct=%.4f p50_us=%.0f p99_us=%.0f p999_us=%.0f relay_cores=%.2f relay_cpu_ns_per_pkt=%d host_cpu_ns_per_pkt=%d gen_cores=%.2f gen_bound=%v send_errs=%d",
		s.target, s.calls, s.streams, s.sentPPS, s.recvPPS, 100*s.loss,
		us(s.p50), us(s.p99), us(s.p999), s.relayCores, s.cpuPerPkt.Nanoseconds(), s.hostPerPkt.Nanoseconds(), s.genCores, s.genBound, s.sendErrs)
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// stream is one direction of a call: packets leave conn toward dst.
type stream struct {
	id     uint32
	conn   *net.UDPConn
	dst    netip.AddrPort
	offset time.Duration // phase within the packet interval, to spread sends
	pkt    []byte

	sent, measured int64 // written by the stream's sender only
	errs           int64
}

// receiver reads one leg's socket: the stream sent toward that leg.
type receiver struct {
	conn      *net.UDPConn
	kernel    bool // conn delivers kernel receive timestamps (stamp_linux.go)
	all, recv int64
	lat       []uint32 // nanoseconds, for packets sent after warm-up
}

type benchCall struct {
	id     string
	a, b   *net.UDPConn
	ab, ba *stream
}

// runLadder runs the steps in order, each step against every relay still
// in the race (in turns, so background load on a shared host falls on all
// of them alike). A relay drops out at the first step whose loss reaches
// maxLoss, or that the generator cannot drive, twice in a row (the step is
// repeated once against a burst of load from elsewhere).
func runLadder(cfg loadConfig) error {
	for _, rt := range cfg.relays {
		rt.byTarget = map[int]stepResult{}
		rt.stop = "ladder_end"
		if rt.ng == "" {
			continue
		}
		var err error
		if rt.client, err = dialNG(rt.ng, cfg.ip); err != nil {
			return err
		}
		defer rt.client.Close()
		if _, err := rt.client.do(map[string]any{"command": "ping"}); err != nil {
			return fmt.Errorf("%s: %w", rt.label, err)
		}
	}
	w := bufio.NewWriter(cfg.out)
	defer w.Flush()
	for i, target := range cfg.steps {
		for j := range cfg.relays {
			rt := cfg.relays[(i+j)%len(cfg.relays)]
			if rt.done {
				continue
			}
			var res stepResult
			for attempt := 0; attempt < 2; attempt++ {
				var err error
				res, err = runStep(cfg, rt, target)
				if err != nil {
					return fmt.Errorf("%s: %w", rt.label, err)
				}
				fmt.Fprintf(w, "step relay=%s media=%s attempt=%d %s\n", rt.label, cfg.kind.name, attempt+1, res)
				w.Flush()
				if res.pass(cfg.maxLoss) && !res.genBound {
					break
				}
			}
			rt.byTarget[target] = res
			switch {
			case res.genBound:
				rt.done, rt.stop = true, "generator_bound"
				if res.pass(cfg.maxLoss) && res.recvPPS > rt.best.recvPPS {
					rt.best = res
				}
			case !res.pass(cfg.maxLoss):
				rt.done, rt.stop = true, "loss"
			default:
				rt.best = res
			}
		}
	}
	for _, rt := range cfg.relays {
		fmt.Fprintf(w, "summary relay=%s media=%s max_pps=%.0f max_target=%d stop=%s", rt.label, cfg.kind.name, rt.best.recvPPS, rt.best.target, rt.stop)
		for _, t := range []int{7000, 28000} {
			if r, ok := rt.byTarget[t]; ok {
				fmt.Fprintf(w, " p50_us_%d=%.0f p99_us_%d=%.0f loss_pct_%d=%.4f cpu_ns_per_pkt_%d=%d host_cpu_ns_per_pkt_%d=%d",
					t, us(r.p50), t, us(r.p99), t, 100*r.loss, t, r.cpuPerPkt.Nanoseconds(), t, r.hostPerPkt.Nanoseconds())
			}
		}
		fmt.Fprintln(w)
	}
	return nil
}

// cpuTime is the user+system time of a process so far (self for pid 0
// means this process).
func cpuTime(pid int) time.Duration {
	path := "/proc/self/stat"
	if pid > 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	// The command name may hold spaces; fields count from after ")".
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// hostBusy is the time all cores spent not idle so far (/proc/stat:
// user, nice, system, irq, softirq, steal).
func hostBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, _ := strconv.ParseInt(v, 10, 64)
		busy += n
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

// runStep sets up enough calls for target packets per second (each call
// carries two streams, one per direction), sends for cfg.dur, waits for
// stragglers and tears the calls down.
func runStep(cfg loadConfig, rt *relayTarget, target int) (stepResult, error) {
	k := cfg.kind
	ng := rt.client
	n := max(1, int(math.Round(float64(target)/(2*k.rate))))
	calls := make([]*benchCall, 0, n)
	defer func() {
		for _, c := range calls {
			c.a.Close()
			c.b.Close()
			if ng != nil {
				ng.do(map[string]any{"command": "delete", "call-id": c.id, "from-tag": "a"})
			}
		}
	}()
	interval := time.Duration(float64(time.Second) / k.rate)
	for i := range n {
		c, err := setupCall(ng, cfg.ip, k, fmt.Sprintf("bench-%d-%d", target, i), uint32(2*i))
		if err != nil {
			return stepResult{}, fmt.Errorf("step %d pps, call %d: %w", target, i, err)
		}
		// Spread the streams' phases over the interval, like independent
		// clients.
		c.ab.offset = time.Duration(int64(interval) * int64(2*i) / int64(2*n))
		c.ba.offset = time.Duration(int64(interval) * int64(2*i+1) / int64(2*n))
		calls = append(calls, c)
	}

	var streams []*stream
	var recvs []*receiver
	for _, c := range calls {
		streams = append(streams, c.ab, c.ba)
		recvs = append(recvs, &receiver{conn: c.b, kernel: kernelStamps(c.b)}, &receiver{conn: c.a, kernel: kernelStamps(c.a)})
	}
	cpu0, gen0, host0 := cpuTime(rt.pid), cpuTime(0), hostBusy()
	t0 := time.Now()
	var rwg sync.WaitGroup
	for _, r := range recvs {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			r.run(t0, cfg.warm)
		}()
	}
	var swg sync.WaitGroup
	for g := range cfg.senders {
		var mine []*stream
		for i := g; i < len(streams); i += cfg.senders {
			mine = append(mine, streams[i])
		}
		swg.Add(1)
		go func() {
			defer swg.Done()
			send(mine, t0, cfg.dur, cfg.warm, k.rate)
		}()
	}
	swg.Wait()
	time.Sleep(300 * time.Millisecond) // stragglers
	wall := time.Since(t0)
	cpu, gen, host := cpuTime(rt.pid)-cpu0, cpuTime(0)-gen0, hostBusy()-host0
	for _, c := range calls {
		c.a.Close()
		c.b.Close()
	}
	rwg.Wait()

	res := stepResult{target: target, calls: n, streams: len(streams)}
	var sent, measured, recv, all int64
	var lat []uint32
	for _, s := range streams {
		sent += s.sent
		measured += s.measured
		res.sendErrs += s.errs
	}
	for _, r := range recvs {
		recv += r.recv
		all += r.all
		lat = append(lat, r.lat...)
	}
	window := (cfg.dur - cfg.warm).Seconds()
	res.sentPPS = float64(measured) / window
	res.recvPPS = float64(recv) / window
	if measured > 0 {
		res.loss = max(0, float64(measured-recv)/float64(measured))
	}
	if rt.pid > 0 {
		res.relayCores = cpu.Seconds() / wall.Seconds()
		if all > 0 {
			res.cpuPerPkt = cpu / time.Duration(all)
		}
	}
	res.genCores = gen.Seconds() / wall.Seconds()
	if all > 0 {
		res.hostPerPkt = host / time.Duration(all)
	}
	want := float64(len(streams)) * k.rate * window
	res.genBound = float64(measured) < 0.97*want
	slices.Sort(lat)
	res.p50, res.p99, res.p999 = pct(lat, 0.50), pct(lat, 0.99), pct(lat, 0.999)
	return res, nil
}

func pct(sorted []uint32, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := min(len(sorted)-1, int(q*float64(len(sorted))))
	return time.Duration(sorted[i])
}

// send paces its streams: stream s has sent floor((t-offset)*rate)+1
// packets by time t. A late wake-up catches up at once, so a generator that
// falls behind shows as fewer packets sent, not as a lower target.
func send(mine []*stream, t0 time.Time, dur, warm time.Duration, rate float64) {
	for {
		el := time.Since(t0)
		if el >= dur {
			return
		}
		for _, s := range mine {
			if el < s.offset {
				continue
			}
			due := int64((el-s.offset).Seconds()*rate) + 1
			for s.sent < due {
				ts := time.Since(t0)
				p := s.pkt
				binary.BigEndian.PutUint16(p[2:], uint16(s.sent))
				binary.BigEndian.PutUint32(p[4:], uint32(s.sent)*3000)
				binary.BigEndian.PutUint64(p[12:], uint64(ts))
				if _, err := s.conn.WriteToUDPAddrPort(p, s.dst); err != nil {
					s.errs++
				}
				s.sent++
				if ts >= warm {
					s.measured++
				}
			}
		}
		time.Sleep(250 * time.Microsecond)
	}
}

func (r *receiver) run(t0 time.Time, warm time.Duration) {
	buf := make([]byte, 2048)
	oob := make([]byte, 64)
	base := t0.UnixNano()
	for {
		n, oobn, _, _, err := r.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			return
		}
		if n < 20 {
			continue
		}
		r.all++
		now := time.Since(t0)
		if r.kernel {
			// Wall clock from the kernel against t0's wall reading: the
			// two clocks are one over a step of seconds.
			if k, ok := rxStamp(oob[:oobn]); ok {
				now = time.Duration(k - base)
			}
		}
		ts := time.Duration(binary.BigEndian.Uint64(buf[12:]))
		if ts < warm {
			continue
		}
		r.recv++
		r.lat = append(r.lat, uint32(min(now-ts, math.MaxUint32)))
	}
}

// setupCall opens both legs' sockets and, through the ng protocol, the
// relay's session for them: offer with leg a's SDP, answer with leg b's.
// Without ng the legs send to each other directly.
func setupCall(ng *ngClient, lo netip.Addr, k mediaKind, id string, ssrc uint32) (*benchCall, error) {
	a, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0)))
	if err != nil {
		return nil, err
	}
	b, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(lo, 0)))
	if err != nil {
		a.Close()
		return nil, err
	}
	for _, c := range []*net.UDPConn{a, b} {
		c.SetReadBuffer(4 << 20)
		c.SetWriteBuffer(4 << 20)
	}
	aAddr := a.LocalAddr().(*net.UDPAddr).AddrPort()
	bAddr := b.LocalAddr().(*net.UDPAddr).AddrPort()
	toB, toA := bAddr, aAddr // where a's and b's packets go
	if ng != nil {
		off, err := ng.do(map[string]any{"command": "offer", "call-id": id, "from-tag": "a", "sdp": offerSDP(k, aAddr)})
		if err == nil {
			toA, err = sdpMediaAddr(off["sdp"]) // the callee (b) sends here
			if err == nil {
				var ans map[string]any
				ans, err = ng.do(map[string]any{"command": "answer", "call-id": id, "from-tag": "a", "to-tag": "b", "sdp": offerSDP(k, bAddr)})
				if err == nil {
					toB, err = sdpMediaAddr(ans["sdp"]) // the caller (a) sends here
				}
			}
		}
		if err != nil {
			a.Close()
			b.Close()
			return nil, err
		}
	}
	c := &benchCall{id: id, a: a, b: b}
	c.ab = newStream(k, ssrc, a, toB)
	c.ba = newStream(k, ssrc+1, b, toA)
	return c, nil
}

func newStream(k mediaKind, id uint32, conn *net.UDPConn, dst netip.AddrPort) *stream {
	p := make([]byte, k.size)
	p[0] = 0x80 // RTP version 2
	p[1] = k.pt
	binary.BigEndian.PutUint32(p[8:], id)
	return &stream{id: id, conn: conn, dst: dst, pkt: p}
}

func offerSDP(k mediaKind, at netip.AddrPort) string {
	pt, _, _ := strings.Cut(k.rtpmap, " ")
	return "v=0\r\n" +
		"o=- 1 1 IN IP4 " + at.Addr().String() + "\r\n" +
		"s=-\r\n" +
		"c=IN IP4 " + at.Addr().String() + "\r\n" +
		"t=0 0\r\n" +
		"m=" + k.name + " " + strconv.Itoa(int(at.Port())) + " RTP/AVP " + pt + "\r\n" +
		"a=rtpmap:" + k.rtpmap + "\r\n" +
		"a=sendrecv\r\n"
}

// sdpMediaAddr is the connection address and port of the first m-line.
func sdpMediaAddr(v any) (netip.AddrPort, error) {
	s, ok := v.(string)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("reply without sdp")
	}
	var addr netip.Addr
	port := -1
	for line := range strings.Lines(s) {
		line = strings.TrimRight(line, "\r\n")
		switch {
		case strings.HasPrefix(line, "c=IN IP4 "):
			if a, err := netip.ParseAddr(strings.TrimPrefix(line, "c=IN IP4 ")); err == nil {
				addr = a
			}
		case strings.HasPrefix(line, "m=") && port < 0:
			f := strings.Fields(line)
			if len(f) > 1 {
				port, _ = strconv.Atoi(f[1])
			}
		case strings.HasPrefix(line, "m="):
			return finish(addr, port, s)
		}
	}
	return finish(addr, port, s)
}

func finish(addr netip.Addr, port int, s string) (netip.AddrPort, error) {
	if !addr.IsValid() || port <= 0 || port > 65535 {
		return netip.AddrPort{}, fmt.Errorf("no media address in sdp %q", s)
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}
