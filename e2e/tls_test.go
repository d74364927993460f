package e2e

// SIP over TLS from the Z5 client: the dev stack serves TLS on 5061
// (ports.sip_tls), its profile says so, and every Z5 client then
// registers, calls and is called over TLS only, verifying the MCS against
// the profile's CA.

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/testenv"
)

const tlsNetnsEnv = "Z5_TLS_NETNS"

// TestTLSCallThroughMCS: two Z5 clients registered over TLS call each
// other through the MCS (the callee's INVITE rides its TLS flow) and media
// flows both ways. While they do, no client socket is connected to the
// plain SIP port and both are connected to the TLS one; a capture on
// loopback (dumpcap, when installed) shows no packet on 5060, TLS
// handshakes and records on 5061, and no plaintext SIP anywhere.
func TestTLSCallThroughMCS(t *testing.T) {
	s := startStack(t)
	s.provision(t)
	var prof struct {
		Ports struct {
			SIP    int `json:"sip"`
			SIPTLS int `json:"sip_tls"`
		} `json:"ports"`
	}
	if b, err := os.ReadFile(s.profilePath()); err != nil || json.Unmarshal(b, &prof) != nil || prof.Ports.SIPTLS != 5061 {
		t.Fatalf("dev profile does not name the TLS port: %+v %v", prof, err)
	}
	if !strings.Contains(s.proc.Output(), "sip_tls  "+s.ip+":5061") {
		t.Errorf("z5d does not list its SIP TLS address:\n%s", s.proc.Output())
	}
	ip := netip.MustParseAddr(s.ip)

	var capture *proc
	pcap := filepath.Join(t.TempDir(), "sip.pcapng")
	dumpcap, err := exec.LookPath("dumpcap")
	if err == nil && os.Geteuid() == 0 {
		capture = startPath(t, dumpcap, []string{"-i", "lo", "-f",
			fmt.Sprintf("host %s and tcp and (port 5060 or port 5061)", s.ip), "-w", pcap},
			func(out string) { t.Logf("dumpcap output:\n%s", out) })
		waitFor(t, capture, "Capturing on", 15*time.Second)
	} else {
		t.Log("dumpcap not installed or not root: no capture, the socket check alone (scripts/deps.sh installs wireshark's tools)")
	}

	alice := s.login(t, "alice", alicePass, aliceWork)
	bob := s.login(t, "bob", bobPass, "")
	lis := startZ5(t, bob, "listen", "--auto-answer", "--max-calls", "1")
	waitFor(t, lis, "listening as sip:"+bobNumber+"@mcs.z5.test", 15*time.Second)
	if !strings.Contains(lis.Output(), s.ip+":5061") {
		t.Errorf("the listener is not registered on the TLS port:\n%s", lis.Output())
	}
	call := startZ5(t, alice, "call", bobNumber, "--duration", "3s", "--json")
	// Sample the client sockets while the call runs.
	plainSeen, tlsMax := 0, 0
	for done := false; !done; {
		select {
		case <-call.done:
			done = true
		case <-time.After(100 * time.Millisecond):
		}
		conns := loopbackConns(t)
		plainSeen += conns[netip.AddrPortFrom(ip, 5060)]
		tlsMax = max(tlsMax, conns[netip.AddrPortFrom(ip, 5061)])
	}
	waitExit(t, lis, 15*time.Second)
	sum := parseSummary(t, call.Output())
	t.Logf("call over TLS: setup %.1f ms, %.1f s, mcs %s, ended %q; client sockets to 5061: up to %d, to 5060: %d",
		sum.SetupMs, sum.DurationS, sum.MCS, sum.EndReason, tlsMax, plainSeen)
	if sum.EndReason != "duration reached" || sum.Relay != s.ip {
		t.Errorf("call summary: %+v", sum)
	}
	for _, st := range sum.Streams {
		if st.PacketsSent == 0 || st.PacketsReceived == 0 {
			t.Errorf("%s: sent %d, received %d packets: media did not flow both ways", st.Kind, st.PacketsSent, st.PacketsReceived)
		}
	}
	if len(sum.Streams) == 0 {
		t.Error("no streams in the call summary")
	}
	if bobStreams := listenerStreams(lis.Output()); len(bobStreams) == 0 || bobStreams["audio"].pktsRecv == 0 {
		t.Errorf("the callee received no media:\n%s", lis.Output())
	}
	if plainSeen != 0 {
		t.Errorf("client sockets connected to the plain SIP port %s:5060 (%d samples)", s.ip, plainSeen)
	}
	if tlsMax < 2 {
		t.Errorf("at most %d client sockets connected to %s:5061 during the call, want both clients'", tlsMax, s.ip)
	}
	if capture == nil {
		return
	}
	capture.stop(syscall.SIGTERM)
	checkTLSCapture(t, pcap)
}

// checkTLSCapture reads the capture with tshark: nothing on 5060, TLS
// client hellos (both clients) and application data on 5061, no payload
// that holds plaintext SIP, nothing tshark decodes as SIP.
func checkTLSCapture(t *testing.T, pcap string) {
	t.Helper()
	tshark := needTool(t, "tshark")
	fields := func(filter string, field ...string) []string {
		args := []string{"-r", pcap, "-d", "tcp.port==5061,tls", "-T", "fields"}
		for _, f := range field {
			args = append(args, "-e", f)
		}
		if filter != "" {
			args = append(args, "-Y", filter)
		}
		out, err := exec.Command(tshark, args...).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("tshark %v: %v\n%s", args, err, ee.Stderr)
			}
			t.Fatalf("tshark %v: %v", args, err)
		}
		var rows []string
		for _, l := range strings.Split(string(out), "\n") {
			if l = strings.TrimSpace(l); l != "" {
				rows = append(rows, l)
			}
		}
		return rows
	}
	all := fields("", "tcp.srcport", "tcp.dstport")
	plain := fields("tcp.port==5060", "frame.number")
	hellos := fields("tls.handshake.type==1", "tcp.srcport")
	appData := fields("tls.app_data", "frame.number")
	sip := fields("sip", "frame.number")
	var payload []byte
	for _, hx := range fields("tcp.len>0", "tcp.payload") {
		b, err := hex.DecodeString(strings.ReplaceAll(hx, ":", ""))
		if err != nil {
			t.Fatalf("tcp.payload %q: %v", hx, err)
		}
		payload = append(payload, b...)
	}
	t.Logf("capture: %d packets, %d on 5060, %d TLS client hellos, %d TLS application-data records, %d payload bytes, %d decoded as SIP",
		len(all), len(plain), len(hellos), len(appData), len(payload), len(sip))
	if len(plain) != 0 {
		t.Errorf("%d packets to or from the plain SIP port 5060", len(plain))
	}
	if len(hellos) < 2 || len(appData) == 0 {
		t.Errorf("%d TLS client hellos and %d application-data records on 5061: want both clients' handshakes and encrypted SIP", len(hellos), len(appData))
	}
	for _, word := range []string{"SIP/2.0", "REGISTER ", "INVITE ", "Via:", "m=video"} {
		if strings.Contains(string(payload), word) {
			t.Errorf("plaintext %q in the captured payload", word)
		}
	}
	if len(sip) != 0 {
		t.Errorf("tshark decodes %d frames as SIP", len(sip))
	}
}

// loopbackConns counts established TCP sockets of this network namespace
// by remote address (from /proc/net/tcp): the clients' connections to the
// MCS, seen from their side.
func loopbackConns(t *testing.T) map[netip.AddrPort]int {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[netip.AddrPort]int{}
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fld := strings.Fields(sc.Text())
		if len(fld) < 4 || fld[3] != "01" { // TCP_ESTABLISHED
			continue
		}
		if ap, ok := procAddr(fld[2]); ok {
			out[ap]++
		}
	}
	return out
}

// procAddr decodes /proc/net/tcp's "0100007F:13C5" (the IPv4 address in
// host byte order, little-endian here, then the port).
func procAddr(s string) (netip.AddrPort, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok || len(h) != 8 {
		return netip.AddrPort{}, false
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return netip.AddrPort{}, false
	}
	var port uint16
	if _, err := fmt.Sscanf(p, "%X", &port); err != nil {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[3], b[2], b[1], b[0]}), port), true
}

// TestCheckNamesBlockedTLSRule: on a deployment with SIP over TLS (the dev
// stack), a network that drops TCP to the TLS port makes `z5 check` name
// that rule (status blocked, the line to add) while every other rule
// passes, and the client, which signals only over TLS, fails naming port
// 5061 rather than falling back to plain SIP. The drop is an nftables rule
// in a network namespace of the test's own (root only).
func TestCheckNamesBlockedTLSRule(t *testing.T) {
	if os.Getenv(tlsNetnsEnv) == "1" {
		runBlockedTLS(t)
		return
	}
	testenv.NeedNetns(t, "nft")
	testenv.ReexecInNetns(t, "^TestCheckNamesBlockedTLSRule$", tlsNetnsEnv, loopbackOnly, 3*time.Minute)
}

func runBlockedTLS(t *testing.T) {
	s := startStack(t)
	s.provision(t)
	bob := s.login(t, "bob", bobPass, "")
	type report struct {
		Blocked bool `json:"blocked"`
		Results []struct {
			Line   string `json:"line"`
			Status string `json:"status"`
			Detail string `json:"detail"`
			Add    string `json:"add"`
			Rule   struct {
				Check    string `json:"check"`
				Required bool   `json:"required"`
			} `json:"rule"`
		} `json:"results"`
	}
	check := func() (report, string, error) {
		out, err := z5(t, bob, "", "check", "--json")
		var rep report
		// The JSON report comes first; an error line may follow it.
		if i := strings.Index(out, "{"); i < 0 || json.NewDecoder(strings.NewReader(out[i:])).Decode(&rep) != nil {
			t.Fatalf("z5 check --json: %v\n%s", err, out)
		}
		return rep, out, err
	}
	tlsLine := "outbound 5061 tcp  " + s.ip

	// Open network first: the TLS rule is there and passes.
	rep, out, err := check()
	if err != nil {
		t.Fatalf("z5 check on an open network: %v\n%s", err, out)
	}
	found := false
	for _, r := range rep.Results {
		if r.Line == tlsLine {
			found = r.Status == "ok" && r.Rule.Check == "sip_tls" && r.Rule.Required
		}
	}
	if !found {
		t.Fatalf("no passing required %q rule on an open network:\n%s", tlsLine, out)
	}

	nft := fmt.Sprintf("table inet z5_tls_block {\n chain output {\n  type filter hook output priority 0; policy accept;\n"+
		"  ip daddr %s tcp dport 5061 drop\n }\n}\n", s.ip)
	if b, err := exec.Command("sh", "-c", "printf '%s' \"$0\" | nft -f -", nft).CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, b)
	}

	rep, out, err = check()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("z5 check with the TLS rule blocked: %v, want exit status 3", err)
	}
	blocked := 0
	for _, r := range rep.Results {
		switch {
		case r.Line == tlsLine:
			blocked++
			if r.Status != "blocked" || r.Add != tlsLine || !strings.Contains(r.Detail, s.ip+":5061") {
				t.Errorf("TLS rule: %s add %q (%s), want blocked, add %q", r.Status, r.Add, r.Detail, tlsLine)
			}
		case r.Status != "ok" && r.Status != "slow" && r.Status != "degraded":
			t.Errorf("%s: %s (%s) with only the TLS port blocked", r.Line, r.Status, r.Detail)
		}
	}
	if blocked != 1 || !rep.Blocked {
		t.Errorf("%d TLS rule results, report blocked %v:\n%s", blocked, rep.Blocked, out)
	}
	t.Logf("z5 check names the blocked rule %q", tlsLine)

	// The client does not fall back to plain SIP: it fails naming 5061.
	lout, err := z5(t, bob, "", "listen", "--max-calls", "1")
	if err == nil || !strings.Contains(lout, "TCP port 5061") {
		t.Errorf("z5 listen with TLS blocked: %v, want a failure naming TCP port 5061:\n%s", err, lout)
	}
}

// TestMCSHungFailoverTLS is TestMCSHungFailover on a deployment with SIP
// over TLS: bob registers with mcs1 over TLS, mcs1 freezes (SIGSTOP), the
// CRLF keepalive inside TLS notices, and bob re-registers with mcs2 over
// TLS (its certificate verified as mcs2's name) as fast as over TCP; a call
// then reaches him there.
func TestMCSHungFailoverTLS(t *testing.T) { testHungFailover(t, true) }
