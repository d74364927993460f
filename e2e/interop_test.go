package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/media"
	"github.com/z5vrs/z5/internal/siptest"
	"github.com/z5vrs/z5/internal/testenv"
)

// Standard SIP clients against the real z5d: baresip (Debian baresip-core)
// and Linphone's console client (Debian linphone-cli) register over TCP
// with credentials made by `z5d admin device add --kind sip`, and call Z5
// clients (`z5 listen` / `z5 call`) and each other through the MCS, every
// stream relayed by it. Each also calls a Z5 client over TLS with SDES-SRTP
// (baresip's srtp module, Linphone's media_encryption=srtp), checked on the
// wire by a capture.
//
// Neither client will take a loopback address as its own, and Linphone
// decides the network is down without a default route. So the test runs
// again inside a network namespace of its own (`unshare --net`, root
// only) where a veth pair carries 198.18.0.0/24 (RFC 2544 benchmarking
// range) and a default route points into the veth: nothing can leave the
// namespace. The MCS (198.18.0.3), the Z5 clients and the SIP clients all
// live there; the clients reach the MCS from 198.18.0.1 (the local route
// to the MCS address prefers that source), because the relay never sends
// media to its own node's address.

const (
	interopIP   = "198.18.0.1" // the clients
	interopNode = "198.18.0.3" // the MCS
	interopEnv  = "Z5_INTEROP_NETNS"

	baresipNumber = "4155550111"
	baresipUser   = "bares-desk"
	baresipPass   = "bares-sip-pw-1"
	linNumber     = "4155550112"
	linUser       = "lin-desk"
	linPass       = "lin-sip-pw-22"
)

func TestInteropStandardClients(t *testing.T) {
	if os.Getenv(interopEnv) == "1" {
		runInterop(t)
		return
	}
	if _, err := exec.LookPath("baresip"); err != nil {
		t.Skip("baresip not installed (Debian package baresip-core): interop test skipped")
	}
	testenv.NeedNetns(t)
	setup := "ip link set lo up && ip link add v0 type veth peer name v1 && ip addr add " + interopIP + "/24 dev v0 && " +
		"ip addr add " + interopNode + "/24 dev v0 && ip link set v0 up && ip link set v1 up && " +
		"ip route change local " + interopNode + " dev v0 table local proto kernel scope host src " + interopIP + " && " +
		"ip route add default via 198.18.0.2 dev v0"
	testenv.ReexecInNetns(t, "^TestInteropStandardClients$", interopEnv, setup, 5*time.Minute)
}

// listenSummary is one call as `z5 listen --json` reports it.
type listenSummary struct {
	Target    string `json:"target"`
	Relay     string `json:"relay"`
	EndReason string `json:"end_reason"`
	Encrypted bool   `json:"encrypted"`
	DurationS float64
	Streams   []struct {
		Kind            string `json:"kind"`
		PacketsSent     uint64 `json:"packets_sent"`
		PacketsReceived uint64 `json:"packets_received"`
	} `json:"streams"`
}

// audio returns the audio stream's packets sent and received.
func audioOf(streams []struct {
	Kind            string `json:"kind"`
	PacketsSent     uint64 `json:"packets_sent"`
	PacketsReceived uint64 `json:"packets_received"`
}) (sent, recv uint64, kinds []string) {
	for _, s := range streams {
		kinds = append(kinds, s.Kind)
		if s.Kind == "audio" {
			sent, recv = s.PacketsSent, s.PacketsReceived
		}
	}
	return sent, recv, kinds
}

// wantSRTPAnswered checks the Z5 side (sum) of a call that peer placed
// over TLS with SRTP: audio went both ways, encrypted. peerOut is the
// peer's output, shown on failure.
func wantSRTPAnswered(t *testing.T, peer string, sum listenSummary, peerOut string) {
	t.Helper()
	sent, recv, kinds := audioOf(sum.Streams)
	t.Logf("Z5 answered %s over TLS: streams %v, audio sent %d received %d, encrypted %t, relay %s, ended %q",
		peer, kinds, sent, recv, sum.Encrypted, sum.Relay, sum.EndReason)
	if sent == 0 || recv < 50 || !sum.Encrypted {
		t.Errorf("Z5 side of a %s SRTP call: streams %v, audio sent %d received %d, encrypted %t (want audio both ways, encrypted)\n%s:\n%s",
			peer, kinds, sent, recv, sum.Encrypted, peer, tailOf(peerOut))
	}
}

func runInterop(t *testing.T) {
	s := &stack{ip: interopNode, dir: t.TempDir()}
	s.cfg = stackConfig(t, s.dir, s.ip, "")
	s.start(t)
	s.provision(t)
	s.sipDevice(t, "bares", baresipNumber, baresipUser, baresipPass)
	s.sipDevice(t, "linph", linNumber, linUser, linPass)
	alice := s.login(t, "alice", alicePass, aliceWork)

	t.Run("baresip calls Z5", func(t *testing.T) {
		lis := startZ5(t, alice, "listen", "--auto-answer", "--json", "--max-calls", "1")
		waitRegistered(t, s, 1)
		b := startBaresip(t, "caller", 8, "/dial sip:"+aliceWork+"@mcs.z5.test", "")
		waitExit(t, lis, 30*time.Second)
		sum := lastListenSummary(t, lis.Output())
		sent, recv, kinds := audioOf(sum.Streams)
		t.Logf("Z5 answered baresip: streams %v, audio sent %d received %d, relay %s, ended %q", kinds, sent, recv, sum.Relay, sum.EndReason)
		if sent == 0 || recv < 50 || len(kinds) != 1 {
			t.Errorf("Z5 side of a baresip call: streams %v, audio sent %d received %d (want audio only, both ways)\nbaresip:\n%s", kinds, sent, recv, tailOf(b.Output()))
		}
		b.stop(syscall.SIGTERM)
		t.Log(s.wantCallRecord(t, baresipNumber, aliceWork))
	})

	// Over TLS with SDES-SRTP: a capture of the SIP ports and the relay's
	// ports during the call holds no plaintext SIP and no RTP that
	// decodes as PCMU audio (baresip's sine or the Z5 client's tone).
	t.Run("baresip calls Z5 over TLS with SRTP", func(t *testing.T) {
		c := startInteropCapture(t)
		lis := startZ5(t, alice, "listen", "--auto-answer", "--json", "--max-calls", "1")
		waitRegistered(t, s, 1)
		b := startBaresip(t, "tlscaller", 8, "/dial sip:"+aliceWork+"@mcs.z5.test", filepath.Join(s.dir, "ca.pem"))
		waitExit(t, lis, 30*time.Second)
		b.stop(syscall.SIGTERM)
		c.stop()

		wantSRTPAnswered(t, "baresip", lastListenSummary(t, lis.Output()), b.Output())
		t.Log(s.wantCallRecord(t, baresipNumber, aliceWork))

		// 8 s of 50 pps audio, both ways, on both legs of the relay.
		c.check(t, 400)
	})

	t.Run("Z5 calls baresip", func(t *testing.T) {
		b := startBaresip(t, "callee", 20, "", "")
		waitRegistered(t, s, 1)
		out := mustZ5(t, alice, "", "call", baresipNumber, "--duration", "4s", "--json")
		sum := parseSummary(t, out)
		var sent, recv uint64
		var kinds []string
		for _, st := range sum.Streams {
			kinds = append(kinds, st.Kind)
			if st.Kind == "audio" {
				sent, recv = st.PacketsSent, st.PacketsReceived
			}
		}
		t.Logf("baresip answered Z5 (offer: PCMU audio + H.264 video): streams %v, audio sent %d received %d, relay %s", kinds, sent, recv, sum.Relay)
		if sum.Relay != interopNode || sent == 0 || recv < 50 {
			t.Errorf("Z5 call to baresip: relay %s, audio sent %d received %d\n%s\nbaresip:\n%s", sum.Relay, sent, recv, out, tailOf(b.Output()))
		}
		b.stop(syscall.SIGTERM)
		t.Log(s.wantCallRecord(t, aliceWork, baresipNumber))
	})

	if _, err := exec.LookPath("linphonec"); err != nil {
		t.Log("linphonec not installed (Debian package linphone-cli): Linphone interop skipped")
		return
	}

	t.Run("Linphone calls Z5", func(t *testing.T) {
		lis := startZ5(t, alice, "listen", "--auto-answer", "--json", "--max-calls", "1")
		waitRegistered(t, s, 1)
		l := startLinphone(t, false, "")
		l.waitRegistered(t)
		l.cmd("call sip:" + aliceWork + "@mcs.z5.test")
		time.Sleep(6 * time.Second)
		if strings.Contains(l.Output(), "header_contact parser error") {
			// The Z5 client's 2xx must carry its registered Contact (host
			// and port of its flow); belle-sip rejects one without a host.
			t.Fatalf("Linphone could not parse the Z5 client's Contact:\n%s", l.Output())
		}
		l.cmd("terminate")
		waitExit(t, lis, 30*time.Second)
		sum := lastListenSummary(t, lis.Output())
		sent, recv, kinds := audioOf(sum.Streams)
		t.Logf("Z5 answered Linphone: streams %v, audio sent %d received %d, relay %s, ended %q", kinds, sent, recv, sum.Relay, sum.EndReason)
		if sent == 0 || recv < 50 {
			t.Errorf("Z5 side of a Linphone call: streams %v, audio sent %d received %d\nlinphonec:\n%s", kinds, sent, recv, tailOf(l.Output()))
		}
		l.quit(t)
		t.Log(s.wantCallRecord(t, linNumber, aliceWork))
	})

	t.Run("Linphone calls Z5 over TLS with SRTP", func(t *testing.T) {
		c := startInteropCapture(t)
		lis := startZ5(t, alice, "listen", "--auto-answer", "--json", "--max-calls", "1")
		waitRegistered(t, s, 1)
		l := startLinphone(t, false, filepath.Join(s.dir, "ca.pem"))
		l.waitRegistered(t)
		l.cmd("call sip:" + aliceWork + "@mcs.z5.test")
		time.Sleep(6 * time.Second)
		l.cmd("terminate")
		waitExit(t, lis, 30*time.Second)
		l.quit(t)
		c.stop()

		wantSRTPAnswered(t, "Linphone", lastListenSummary(t, lis.Output()), l.Output())
		t.Log(s.wantCallRecord(t, linNumber, aliceWork))
		// 6 s of 50 pps audio, both ways, on both legs of the relay.
		c.check(t, 400)
	})

	t.Run("Z5 calls Linphone", func(t *testing.T) {
		l := startLinphone(t, true, "")
		l.waitRegistered(t)
		out := mustZ5(t, alice, "", "call", linNumber, "--duration", "4s", "--json")
		sum := parseSummary(t, out)
		var sent, recv uint64
		for _, st := range sum.Streams {
			if st.Kind == "audio" {
				sent, recv = st.PacketsSent, st.PacketsReceived
			}
		}
		neg := negotiatedOf(t, out)
		t.Logf("Linphone answered Z5: audio sent %d received %d, relay %s, text %+v, encrypted %t", sent, recv, sum.Relay, neg.Negotiated.Text, neg.Encrypted)
		if sum.Relay != interopNode || sent == 0 || recv < 50 {
			t.Errorf("Z5 call to Linphone: relay %s, audio sent %d received %d\n%s\nlinphonec:\n%s", sum.Relay, sent, recv, out, tailOf(l.Output()))
		}
		// Linphone takes the real-time text it is offered: the call keeps
		// it (see media.WithText for why the m-line order matters).
		if neg.Negotiated.Text == nil || neg.Negotiated.Text.Codec != "t140" {
			t.Errorf("Z5 call to Linphone: no text stream negotiated\n%s", out)
		}
		l.quit(t)
		t.Log(s.wantCallRecord(t, aliceWork, linNumber))
	})

	t.Run("Linphone calls baresip", func(t *testing.T) {
		b := startBaresip(t, "callee2", 20, "", "")
		l := startLinphone(t, false, "")
		l.waitRegistered(t)
		waitRegistered(t, s, 2)
		l.cmd("call sip:" + baresipNumber + "@mcs.z5.test")
		time.Sleep(5 * time.Second)
		l.cmd("terminate")
		l.quit(t)
		b.stop(syscall.SIGTERM)
		t.Log(s.wantCallRecord(t, linNumber, baresipNumber))
	})
}

// negotiated is what `z5 call --json` says was negotiated and whether
// every stream ran SRTP.
type negotiated struct {
	Negotiated struct {
		Text *struct {
			Codec     string `json:"codec"`
			RedPT     int    `json:"red_pt"`
			Encrypted bool   `json:"encrypted"`
		} `json:"text"`
	} `json:"negotiated"`
	Encrypted bool `json:"encrypted"`
}

func negotiatedOf(t *testing.T, out string) negotiated {
	t.Helper()
	var n negotiated
	i := strings.Index(out, "{")
	if i < 0 || json.NewDecoder(strings.NewReader(out[i:])).Decode(&n) != nil {
		t.Fatalf("no JSON call summary in:\n%s", out)
	}
	return n
}

// interopCapture records the MCS's SIP ports (TCP and TLS) and the
// relay's ports during one call.
type interopCapture struct {
	tshark, pcap string
	p            *proc
	tones        audioDetector
}

func startInteropCapture(t *testing.T) *interopCapture {
	t.Helper()
	c := &interopCapture{tshark: needTool(t, "tshark"), pcap: filepath.Join(t.TempDir(), "call.pcap"), tones: plainTones(t)}
	c.p = startPath(t, c.tshark, []string{"-i", "lo", "-F", "pcap", "-w", c.pcap, "-f",
		"host " + interopNode + " and (tcp port 5060 or tcp port 5061 or udp portrange 20000-20999)"},
		func(out string) { t.Logf("tshark:\n%s", tailOf(out)) })
	waitFor(t, c.p, "Capturing on", 20*time.Second)
	return c
}

func (c *interopCapture) stop() {
	time.Sleep(300 * time.Millisecond) // the last datagrams reach the file
	c.p.stop(syscall.SIGINT)
}

// check wants the SIP all inside TLS and at least minPCMU PCMU datagrams
// on the relay's ports, none of them audio in the clear.
func (c *interopCapture) check(t *testing.T, minPCMU int) {
	t.Helper()
	raw, err := os.ReadFile(c.pcap)
	if err != nil {
		t.Fatal(err)
	}
	sipFrames := tsharkCount(t, c.tshark, c.pcap, "sip")
	// Application data: TLS 1.3 hides the real type behind opaque 23.
	tlsFrames := tsharkCount(t, c.tshark, c.pcap, "tls.record.content_type == 23 || tls.record.opaque_type == 23")
	tcpFrames := tsharkCount(t, c.tshark, c.pcap, "tcp.len > 0")
	var rtpCount, pcmu, plain int
	for _, p := range readPcapUDP(t, c.pcap) {
		payload, pt, ok := rtpPayload(p)
		if !ok {
			continue
		}
		rtpCount++
		if pt == media.PTPCMU {
			pcmu++
		}
		if c.tones.plaintext(payload) {
			plain++
		}
	}
	t.Logf("capture: %d TCP segments with data on the SIP ports, %d TLS application-data records, %d SIP messages in the clear; %d RTP datagrams (%d PT 0), %d decode as plain audio",
		tcpFrames, tlsFrames, sipFrames, rtpCount, pcmu, plain)
	if sipFrames != 0 || bytes.Contains(raw, []byte("SIP/2.0")) || tlsFrames < 4 {
		t.Errorf("capture: %d SIP messages in the clear, %d TLS records (want none in the clear, all over TLS)", sipFrames, tlsFrames)
	}
	if pcmu < minPCMU || plain != 0 {
		t.Errorf("capture: %d PCMU datagrams, %d in the clear (want >= %d, none)", pcmu, plain, minPCMU)
	}
}

// tsharkCount is the number of frames of pcap that match filter.
func tsharkCount(t *testing.T, tshark, pcap, filter string) int {
	t.Helper()
	out, err := exec.Command(tshark, "-r", pcap, "-Y", filter, "-T", "fields", "-e", "frame.number").Output()
	if err != nil {
		t.Fatalf("tshark -Y %q: %v", filter, err)
	}
	return strings.Count(string(out), "\n")
}

// audioDetector flags RTP payloads that are audio in the clear: a run of
// the Z5 client's clip, or μ-law that decodes to a steady tone (baresip's
// 440 Hz sine) rather than noise.
type audioDetector struct{ clip clipBytes }

// plainTones builds the detector and checks it against μ-law sines and
// random bytes (which is what SRTP ciphertext looks like).
func plainTones(t *testing.T) audioDetector {
	t.Helper()
	d := audioDetector{clip: plainClip(t)}
	for _, hz := range []float64{300, 440, 1000} {
		p := make([]byte, 160)
		for i := range p {
			p[i] = media.LinearToULaw(int16(8000 * math.Sin(2*math.Pi*hz*float64(i)/8000)))
		}
		if !d.plaintext(p) {
			t.Fatalf("detector misses a %.0f Hz tone in PCMU", hz)
		}
	}
	noise := make([]byte, 170)
	for range 1000 {
		rand.Read(noise)
		if d.plaintext(noise) {
			t.Fatalf("detector flags random bytes %x", noise)
		}
	}
	return d
}

func (d audioDetector) plaintext(p []byte) bool {
	if d.clip.plaintext(p) {
		return true
	}
	if len(p) < 80 {
		return false
	}
	// Lag-1 autocorrelation of the decoded samples: near cos(2πf/8000)
	// (0.94 at 440 Hz) for a tone, near 0 for random bytes.
	x := make([]float64, len(p))
	var mean float64
	for i, u := range p {
		x[i] = float64(media.ULawToLinear(u))
		mean += x[i]
	}
	mean /= float64(len(x))
	var r0, r1 float64
	for i := range x {
		x[i] -= mean
		r0 += x[i] * x[i]
		if i > 0 {
			r1 += x[i] * x[i-1]
		}
	}
	return r0 > 0 && r1/r0 > 0.5
}

// waitRegistered polls the node's registrations gauge.
func waitRegistered(t *testing.T, s *stack, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.metric(t, "z5_sip_registrations") < float64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d registrations after 20s", n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func lastListenSummary(t *testing.T, out string) listenSummary {
	t.Helper()
	var sum listenSummary
	found := false
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "{") && json.Unmarshal([]byte(line), &sum) == nil {
			found = true
		}
	}
	if !found {
		t.Fatalf("no call summary from z5 listen:\n%s", out)
	}
	return sum
}

// wantCallRecord checks the call detail record of the last call from ->
// to: answered, ended, and audio counted by the relay on both legs (the
// media went through the MCS). It returns a one-line description.
func (s *stack) wantCallRecord(t *testing.T, from, to string) string {
	t.Helper()
	type record struct {
		From, To   string
		AnsweredAt time.Time `json:"answered_at"`
		EndedAt    time.Time `json:"ended_at"`
		EndReason  string    `json:"end_reason"`
		Status     int
		MediaStats []struct {
			Leg, Media string
			Packets    uint64
		} `json:"streams"`
	}
	deadline := time.Now().Add(15 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		last = s.admin(t, "", "--json", "calls", "--number", to, "--limit", "1")
		var recs []record
		if err := json.Unmarshal([]byte(last), &recs); err != nil {
			t.Fatalf("z5d admin --json calls: %v\n%s", err, last)
		}
		if len(recs) == 1 && recs[0].From == from && recs[0].To == to && !recs[0].EndedAt.IsZero() {
			r := recs[0]
			legs := map[string]uint64{}
			for _, m := range r.MediaStats {
				if m.Media == "audio" {
					legs[m.Leg] += m.Packets
				}
			}
			desc := fmt.Sprintf("%s -> %s: answered=%v, %s after %s, relayed audio: caller leg %d packets, callee leg %d packets",
				from, to, !r.AnsweredAt.IsZero(), r.EndReason, r.EndedAt.Sub(r.AnsweredAt).Round(time.Millisecond), legs["caller"], legs["callee"])
			if r.AnsweredAt.IsZero() || legs["caller"] < 50 || legs["callee"] < 50 {
				t.Errorf("call record %s", desc)
			}
			return desc
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("no ended call record %s -> %s:\n%s", from, to, last)
	return last
}

func tailOf(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

// startBaresip runs baresip headless for seconds (audio: a sine from
// ausine, which works at 48 kHz only and is resampled to PCMU; what
// arrives is played into aubridge), auto-answering, optionally
// executing a command (a /dial) at start.
//
// With caFile set it registers over TLS to the MCS's SIPS port, verifying
// it against caFile, and makes and takes only SDES-SRTP calls (its srtp
// module, mediaenc=srtp-mand).
func startBaresip(t *testing.T, name string, seconds int, command, caFile string) *proc {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	err := siptest.Baresip{Name: name, Listen: freeTCP(t, interopIP).String(), RTPPorts: 41000 + len(name)*20,
		AOR: "sip:" + baresipNumber + "@mcs.z5.test", User: baresipUser, Pass: baresipPass, Outbound: interopNode + ":5060"}.Write(dir)
	if err == nil && caFile != "" {
		err = baresipSRTP(dir, caFile)
	}
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"-f", dir, "-t", fmt.Sprint(seconds)}
	if command != "" {
		args = append(args, "-e", command)
	}
	return startTool(t, "baresip", args...)
}

// baresipSRTP turns the plain TCP account siptest.Baresip wrote in dir
// into one over TLS with mandatory SRTP.
func baresipSRTP(dir, caFile string) error {
	f, err := os.OpenFile(filepath.Join(dir, "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "module\t\t\tsrtp.so\nsip_cafile\t\t%s\n", caFile)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	account := fmt.Sprintf("<sip:%s@mcs.z5.test;transport=tls>;auth_user=%s;auth_pass=%s;outbound=\"sip:%s:5061;transport=tls\";"+
		"regint=600;answermode=auto;audio_codecs=PCMU;mediaenc=srtp-mand\n", baresipNumber, baresipUser, baresipPass, interopNode)
	return os.WriteFile(filepath.Join(dir, "accounts"), []byte(account), 0o644)
}

// startTool runs a third-party program like start runs ours.
func startTool(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return startPath(t, path, args, func(out string) {
		t.Logf("%s output:\n%s", name, tailOf(out))
	})
}

// linphone is a running linphonec driven through its standard input.
//
// Headless linphonec needs three things: a data directory under $HOME
// (without its database the core never starts its network side), a
// default route (it decides the network is up from the source address of
// one), and a steady stream of input: reading a pipe it iterates its core
// only when a line arrives, so a goroutine feeds it empty lines.
type linphone struct {
	*proc
	mu    sync.Mutex // guards stdin
	stdin io.WriteCloser
	stop  chan struct{}
	fed   sync.WaitGroup
}

// With caFile set it registers over TLS to the MCS's SIPS port, verifying
// it against caFile, and makes and takes only SDES-SRTP calls.
func startLinphone(t *testing.T, autoAnswer bool, caFile string) *linphone {
	t.Helper()
	home := t.TempDir()
	if err := os.MkdirAll(filepath.Join(home, ".local", "share", "linphone"), 0o755); err != nil {
		t.Fatal(err)
	}
	wav := filepath.Join(home, "tone.wav")
	if err := writeToneWAV(wav, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	transport, sipPort, sipPorts := "tcp", 5060, fmt.Sprintf("sip_tcp_port=%d\nsip_tls_port=0", freeTCP(t, interopIP).Port())
	if caFile != "" {
		// The chain is verified against the CA, not the name: belle-sip's
		// mbedtls matches the proxy's host only against DNS names, and here
		// the proxy is the node's IP address (an IP SAN in its certificate,
		// which the Z5 client verifies); nothing in the namespace resolves
		// the MCS names for Linphone.
		transport, sipPort = "tls", 5061
		sipPorts = fmt.Sprintf("sip_tcp_port=0\nsip_tls_port=%d\nroot_ca=%s\nverify_server_certs=1\nverify_server_cn=0\n"+
			"media_encryption=srtp\nmedia_encryption_mandatory=1", freeTCP(t, interopIP).Port(), caFile)
	}
	rc := fmt.Sprintf(`[sip]
sip_port=0
%s
default_proxy=0
register_only_when_network_is_up=0
auto_net_state_mon=1
[net]
ipv6=0
[rtp]
audio_rtp_port=42100
video_rtp_port=42110
[sound]
echocancellation=0
[video]
capture=0
display=0
[auth_info_0]
username=%s
userid=%s
passwd=%s
realm=mcs.z5.test
domain=mcs.z5.test
[proxy_0]
reg_proxy=<sip:%s:%d;transport=%s>
reg_route=<sip:%s:%d;transport=%s;lr>
reg_identity=sip:%s@mcs.z5.test
reg_expires=600
reg_sendregister=1
publish=0
`, sipPorts, linNumber, linUser, linPass, interopNode, sipPort, transport, interopNode, sipPort, transport, linNumber)
	rcPath := filepath.Join(home, "linphonerc")
	if err := os.WriteFile(rcPath, []byte(rc), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-c", rcPath, "-d", "1"}
	if autoAnswer {
		args = append(args, "-a")
	}
	path, _ := exec.LookPath("linphonec")
	p := &proc{cmd: exec.Command(path, args...), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "HOME="+home)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := p.cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	l := &linphone{proc: p, stdin: stdin, stop: make(chan struct{})}
	l.fed.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-p.done:
				return
			case <-tick.C:
				l.write("\n")
			}
		}
	})
	t.Cleanup(func() {
		l.halt()
		p.stop(syscall.SIGTERM)
		if t.Failed() {
			t.Logf("linphonec output:\n%s", tailOf(p.Output()))
		}
	})
	l.cmd("soundcard use files")
	l.cmd("play " + wav)
	l.cmd("record " + filepath.Join(home, "received.wav"))
	return l
}

func (l *linphone) write(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	io.WriteString(l.stdin, s)
}

func (l *linphone) cmd(c string) { l.write(c + "\n") }

func (l *linphone) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.fed.Wait()
}

// waitRegistered asks `status register` until linphonec says registered.
func (l *linphone) waitRegistered(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		l.cmd("status register")
		time.Sleep(300 * time.Millisecond)
		sc := bufio.NewScanner(strings.NewReader(l.Output()))
		for sc.Scan() {
			if strings.Contains(sc.Text(), "registered, identity=sip:"+linNumber) {
				return
			}
		}
	}
	t.Fatalf("linphonec did not register within 20s:\n%s", tailOf(l.Output()))
}

func (l *linphone) quit(t *testing.T) {
	l.cmd("quit")
	select {
	case <-l.done:
	case <-time.After(10 * time.Second):
		t.Errorf("linphonec did not quit")
	}
	l.halt()
}

// writeToneWAV writes d of a 440 Hz tone as 8 kHz 16-bit mono WAV, what
// linphonec plays into a call when it uses files instead of a sound card.
func writeToneWAV(path string, d time.Duration) error {
	const rate = 8000
	n := int(d.Seconds() * rate)
	data := make([]byte, 44+2*n)
	le32 := func(b []byte, v uint32) { b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24) }
	le16 := func(b []byte, v uint16) { b[0], b[1] = byte(v), byte(v>>8) }
	copy(data, "RIFF")
	le32(data[4:], uint32(36+2*n))
	copy(data[8:], "WAVEfmt ")
	le32(data[16:], 16)
	le16(data[20:], 1) // PCM
	le16(data[22:], 1) // mono
	le32(data[24:], rate)
	le32(data[28:], rate*2)
	le16(data[32:], 2)
	le16(data[34:], 16)
	copy(data[36:], "data")
	le32(data[40:], uint32(2*n))
	for i := range n {
		// A triangle wave near 440 Hz: no math import needed, audible.
		phase := (i * 440 * 4 / rate) % 4
		frac := (i * 440 * 4 % rate) * 8000 / rate
		var v int
		switch phase {
		case 0:
			v = frac
		case 1:
			v = 8000 - frac
		case 2:
			v = -frac
		default:
			v = frac - 8000
		}
		le16(data[44+2*i:], uint16(int16(v)))
	}
	return os.WriteFile(path, data, 0o644)
}
