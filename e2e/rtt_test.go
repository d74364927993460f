package e2e

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/devstack"
	"github.com/z5vrs/z5/internal/testenv"
)

// Real-time text (RFC 4103) between two real z5 clients through the real
// MCS, with 5% random loss on the path: every packet toward the relay's
// ports is dropped with probability 5% by an nftables rule (numgen
// random) inside a network namespace of the test's own. The kernel here
// may lack netem (sch_netem), which would do the same with
// `tc qdisc add dev lo root netem loss 5%`; the nftables rule needs
// nothing beyond nf_tables. Only loopback exists in the namespace.

const (
	rttEnv   = "Z5_RTT_NETNS"
	rttChars = 1000
	rttCPS   = 30
)

func TestRealTimeTextThroughLoss(t *testing.T) {
	if os.Getenv(rttEnv) == "1" {
		runRTT(t)
		return
	}
	testenv.NeedNetns(t, "nft")
	testenv.ReexecInNetns(t, "^TestRealTimeTextThroughLoss$", rttEnv, loopbackOnly, 4*time.Minute)
}

// stamped is output read from a process, chunk by chunk, with the time
// each chunk arrived.
type stamped struct {
	mu     sync.Mutex
	data   []byte
	at     []time.Time // at[i]: when data[i] arrived
	notify chan struct{}
}

func (s *stamped) read(r io.Reader) {
	buf := make([]byte, 4096)
	for {
		n, err := r.Read(buf)
		now := time.Now()
		s.mu.Lock()
		s.data = append(s.data, buf[:n]...)
		for range n {
			s.at = append(s.at, now)
		}
		s.mu.Unlock()
		select {
		case s.notify <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

func (s *stamped) snapshot() ([]byte, []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.data), slices.Clone(s.at)
}

// waitStamped waits until the output holds want and returns its index.
func (s *stamped) wait(t *testing.T, want string, timeout time.Duration) int {
	t.Helper()
	deadline := time.After(timeout)
	for {
		data, _ := s.snapshot()
		if i := bytes.Index(data, []byte(want)); i >= 0 {
			return i
		}
		select {
		case <-s.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %q after %v in:\n%s", want, timeout, data)
		}
	}
}

func runRTT(t *testing.T) {
	// SIP over TCP, so the calls run plain RTP and tshark can read the
	// text in the capture (over TLS the text is SRTP like the rest).
	s := &stack{ip: loopbackIP(t), dir: t.TempDir()}
	s.cfg = filepath.Join(s.dir, "z5.toml")
	cfg := strings.Replace(devstack.Config("Z5 e2e", s.dir, s.ip, ""), "sip_tls = 5061", "sip_tls = 0", 1)
	if !strings.Contains(cfg, "sip_tls = 0") {
		t.Fatal("the dev stack's config no longer has sip_tls = 5061 to turn off")
	}
	if err := os.WriteFile(s.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	s.start(t)
	s.provision(t)
	alice := s.login(t, "alice", alicePass, aliceWork)
	bob := s.login(t, "bob", bobPass, "")

	// 5% loss on every UDP packet toward the relay (ports.rtp of the dev
	// stack): each media packet meets it once on its way.
	ruleset := `table inet rttloss {
	chain out {
		type filter hook output priority 0; policy accept;
		udp dport 20000-20999 numgen random mod 100 < 5 counter drop
	}
}
`
	if out, err := nft(ruleset, "-f", "-"); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}

	capture := filepath.Join(t.TempDir(), "rtt.pcap")
	var tshark *proc
	if path, err := exec.LookPath("tshark"); err == nil {
		tshark = startPath(t, path, []string{"-i", "lo", "-f", "udp portrange 20000-20999", "-w", capture, "-q"},
			func(out string) { t.Logf("tshark: %s", out) })
		time.Sleep(2 * time.Second) // capture running before the call
	}

	recBob, recAlice := t.TempDir(), t.TempDir()
	lisCmd := exec.Command(bin(t, "z5"), "--home", bob, "listen", "--auto-answer", "--text", "--max-calls", "1", "--record", recBob)
	lisOut, err := lisCmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var lisErr bytes.Buffer
	lisCmd.Stderr = &lisErr
	lisCmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := lisCmd.Start(); err != nil {
		t.Fatal(err)
	}
	lis := &stamped{notify: make(chan struct{}, 1)}
	readDone := make(chan struct{})
	go func() { defer close(readDone); lis.read(lisOut) }()
	t.Cleanup(func() {
		lisCmd.Process.Signal(syscall.SIGTERM)
		<-readDone
		lisCmd.Wait()
		if t.Failed() {
			d, _ := lis.snapshot()
			t.Logf("listener output:\n%s\n%s", d, lisErr.String())
		}
	})
	lis.wait(t, "listening as sip:"+bobNumber, 15*time.Second)

	callCmd := exec.Command(bin(t, "z5"), "--home", alice, "call", bobNumber, "--text", "--record", recAlice)
	typing, err := callCmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var callOut bytes.Buffer
	callCmd.Stdout, callCmd.Stderr = &callOut, &callOut
	callCmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := callCmd.Start(); err != nil {
		t.Fatal(err)
	}
	callDone := make(chan error, 1)
	go func() { callDone <- callCmd.Wait() }()
	t.Cleanup(func() {
		callCmd.Process.Signal(syscall.SIGTERM)
		<-callDone
		if t.Failed() {
			t.Logf("caller output:\n%s", callOut.String())
		}
	})
	start := lis.wait(t, "answering call from "+aliceWork+"\n", 20*time.Second) + len("answering call from "+aliceWork+"\n")
	time.Sleep(time.Second) // media set up on both sides

	typed := make([]byte, rttChars)
	for i := range typed {
		typed[i] = "the quick brown fox jumps over a lazy dog "[i%42]
	}
	typedAt := make([]time.Time, rttChars)
	t0 := time.Now()
	for i := range typed {
		time.Sleep(time.Until(t0.Add(time.Duration(i) * time.Second / rttCPS)))
		typedAt[i] = time.Now()
		if _, err := typing.Write(typed[i : i+1]); err != nil {
			t.Fatalf("typing character %d: %v", i, err)
		}
	}
	typing.Write([]byte("\n"))
	lis.wait(t, string(typed[rttChars-40:])+"\n", 10*time.Second)
	typing.Close()
	callCmd.Process.Signal(os.Interrupt)
	select {
	case <-callDone:
		callDone <- nil
	case <-time.After(15 * time.Second):
		t.Fatal("the caller did not hang up")
	}
	lis.wait(t, "call from "+aliceWork+" ended", 15*time.Second)

	data, at := lis.snapshot()
	got := data[start:]
	got = got[:bytes.IndexByte(got, '\n')]
	if !bytes.Equal(got, typed) {
		t.Fatalf("received %d bytes, typed %d: not the same text in the same order:\n%q", len(got), len(typed), got)
	}
	lat := make([]time.Duration, rttChars)
	for i := range lat {
		lat[i] = at[start+i].Sub(typedAt[i])
	}
	slices.Sort(lat)
	p95 := lat[rttChars*95/100-1]
	drops := nftDrops(t)
	t.Logf("%d characters at %d cps through 5%% loss (%s packets dropped toward the relay): latency p50 %v p95 %v max %v",
		rttChars, rttCPS, drops, lat[rttChars/2-1].Round(time.Millisecond), p95.Round(time.Millisecond), lat[rttChars-1].Round(time.Millisecond))
	if drops == "0" {
		t.Fatal("the loss rule dropped nothing: the test proves nothing")
	}
	if p95 >= 500*time.Millisecond {
		t.Errorf("p95 typed-to-shown %v, want under 500 ms", p95)
	}

	// Both transcripts hold both directions' lines with timestamps.
	line := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ([<>]) (.*)$`)
	for _, tc := range []struct{ dir, who string }{{recAlice, ">"}, {recBob, "<"}} {
		b, err := os.ReadFile(filepath.Join(tc.dir, "text.log"))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, m := range line.FindAllStringSubmatch(string(b), -1) {
			found = found || (m[1] == tc.who && m[2] == string(typed))
		}
		if !found {
			t.Errorf("%s/text.log lacks the %s line of the typed text:\n%s", tc.dir, tc.who, b)
		}
	}

	if tshark == nil {
		t.Log("tshark not installed: the capture is not decoded")
		return
	}
	// dumpcap writes its buffers out every few seconds: give it the time
	// before it is stopped.
	time.Sleep(3 * time.Second)
	tshark.stop(syscall.SIGINT)
	checkT140Capture(t, capture, string(typed))
}

func nft(stdin string, args ...string) (string, error) {
	cmd := exec.Command("nft", args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// nftDrops reads the loss rule's packet counter.
func nftDrops(t *testing.T) string {
	out, err := nft("", "list", "table", "inet", "rttloss")
	if err != nil {
		t.Fatalf("nft list: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`counter packets (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no counter in:\n%s", out)
	}
	return m[1]
}

// checkT140Capture has tshark decode the relay's UDP as RTP and payload
// type 100 as RFC 2198 redundancy (tshark 4.0 has no T.140 dissector of
// its own: the t140 blocks are shown as payload), then rebuilds the text
// the relay forwarded from the blocks tshark found, each block placed by
// its packet's sequence number as RFC 4103 does.
func checkT140Capture(t *testing.T, capture, typed string) {
	t.Helper()
	out, err := exec.Command("tshark", "-r", capture, "-o", "rtp.heuristic_rtp:TRUE",
		"-d", "rtp.pt==100,rtp_rfc2198",
		"-Y", "udp.srcport >= 20000 && udp.srcport <= 20999 && rtp.p_type == 100",
		"-T", "fields", "-E", "occurrence=a", "-E", "aggregator=;",
		"-e", "rtp.seq", "-e", "rtp.p_type", "-e", "rtp.block-length", "-e", "rtp.payload", "-e", "rtp.ssrc").Output()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	blocks := map[int][]byte{} // extended sequence number -> t140 block
	packets, seqBase, lastSeq, gaps, ssrc := 0, 0, -1, 0, ""
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 5 {
			continue
		}
		// Other streams' packets may pass tshark's RTP heuristic with
		// type 100 too: the text stream is the SSRC of the first RED
		// packet of t140 blocks.
		if ssrc == "" && strings.HasPrefix(f[1], "100;98;") {
			ssrc = f[4]
		}
		if f[4] != ssrc {
			continue
		}
		var seq int
		fmt.Sscanf(f[0], "%d", &seq)
		if lastSeq >= 0 && seq < lastSeq-30000 {
			seqBase += 1 << 16 // wrapped
		}
		if lastSeq >= 0 && (seq-lastSeq+1<<16)%(1<<16) > 1 {
			gaps += (seq-lastSeq+1<<16)%(1<<16) - 1 // text packets lost toward the relay
		}
		lastSeq = seq
		seq += seqBase
		pts := strings.Split(f[1], ";")
		if len(pts) < 2 || pts[0] != "100" || slices.ContainsFunc(pts[1:], func(p string) bool { return p != "98" }) {
			t.Fatalf("tshark did not decode RED blocks of t140 (98): payload types %q", f[1])
		}
		packets++
		// The first payload is the whole RED payload; then one per
		// block, oldest first, "<MISSING>" for an empty one.
		payloads := strings.Split(f[3], ";")
		if len(payloads) != len(pts) {
			t.Fatalf("tshark: %d payloads for %d payload types: %s", len(payloads), len(pts), line)
		}
		for i, h := range payloads[1:] {
			var b []byte
			if _, err := fmt.Sscanf(h, "%x", &b); err == nil && len(b) > 0 {
				blocks[seq-(len(payloads)-2-i)] = b
			}
		}
	}
	seqs := slices.Sorted(maps.Keys(blocks))
	var text strings.Builder
	for _, s := range seqs {
		text.Write(blocks[s])
	}
	if packets == 0 || !strings.Contains(text.String(), typed) {
		got := text.String()
		i := 0
		for i < len(got) && i < len(typed) && got[i] == typed[i] {
			i++
		}
		t.Fatalf("tshark found %d RED packets; the t140 blocks rebuild to %d bytes, not the typed text: they differ at byte %d: %q",
			packets, len(got), i, got[max(0, i-20):min(len(got), i+20)])
	}
	t.Logf("tshark decoded %d RTP packets from the relay as RED (RFC 2198) carrying t140 blocks that rebuild the typed text; %d text packets were lost on the way and their text came as redundancy", packets, gaps)
}
