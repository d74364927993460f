package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The web phone tests drive Debian's chromium headless, with a fake camera
// and microphone, through the DevTools protocol, finding every control by
// its accessible role and name (DESIGN.md "Web phone") as a screen reader
// would, and run axe-core on each screen.

// axeScript is axe-core's browser build, which scripts/deps.sh installs
// from the npm registry into Z5_AXE's directory or the user's cache.
func axeScript(t *testing.T) string {
	t.Helper()
	p := os.Getenv("Z5_AXE")
	if p == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			t.Skip("no cache dir for axe-core (scripts/deps.sh installs it)")
		}
		p = filepath.Join(dir, "z5", "npm", "node_modules", "axe-core", "axe.min.js")
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Skipf("axe-core not installed at %s (scripts/deps.sh installs it as root)", p)
	}
	return string(b)
}

// browserAlloc starts one headless chromium for the test; every page gets
// its own browser context (own storage, so its own device).
func browserAlloc(t *testing.T) context.Context {
	t.Helper()
	return browserAllocPath(t, needTool(t, "chromium"))
}

// browserAllocPath is browserAlloc with the browser at path.
func browserAllocPath(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests run as root in a container
		chromedp.DisableGPU,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		// The dev CA is not in chromium's store; the page itself is what
		// is tested, not certificate handling (TestHTTPSVerifiedAgainstCA).
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	// The browser starts with this first (blank) tab; pages are opened
	// beside it, each in a browser context of its own.
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// webPage is one tab of the web phone.
type webPage struct {
	t    *testing.T
	ctx  context.Context
	name string
	axe  string
}

func openPage(t *testing.T, alloc context.Context, name, url, axe string) *webPage {
	t.Helper()
	ctx, cancel := chromedp.NewContext(alloc, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	p := &webPage{t: t, ctx: ctx, name: name, axe: axe}
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("%s: open %s: %v", name, url, err)
	}
	return p
}

func wpPtr[T any](v T) *T { return &v }

// find returns the DOM node of the visible element with role and
// accessible name, waiting up to timeout.
func (p *webPage) find(role, name string, timeout time.Duration) cdp.BackendNodeID {
	p.t.Helper()
	id, err := p.poll(role, name, timeout, true)
	if err != nil {
		p.t.Fatalf("%s: no %s %q within %s: %v\n%s", p.name, role, name, timeout, err, p.text("document.body.innerText"))
	}
	return id
}

// gone waits until no element with role and name is in the tree.
func (p *webPage) gone(role, name string, timeout time.Duration) {
	p.t.Helper()
	if _, err := p.poll(role, name, timeout, false); err != nil {
		p.t.Fatalf("%s: %s %q still shown after %s", p.name, role, name, timeout)
	}
}

func (p *webPage) poll(role, name string, timeout time.Duration, present bool) (cdp.BackendNodeID, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		id, err := chromedp.Run(p.ctx, func(ctx context.Context, t *chromedp.Target) (cdp.BackendNodeID, error) {
			doc, err := cdp.Call(ctx, t, dom.GetDocument, dom.GetDocumentParams{Depth: wpPtr(int64(0))})
			if err != nil {
				return 0, err
			}
			res, err := cdp.Call(ctx, t, accessibility.QueryAXTree, accessibility.QueryAXTreeParams{
				BackendNodeID: doc.Root.BackendNodeID, AccessibleName: name, Role: role})
			if err != nil {
				return 0, err
			}
			for _, n := range res.Nodes {
				if !n.Ignored && n.BackendDOMNodeID != 0 {
					return n.BackendDOMNodeID, nil
				}
			}
			return 0, nil
		})
		last = err
		if err == nil && (id != 0) == present {
			return id, nil
		}
		if time.Now().After(deadline) {
			if last == nil {
				last = fmt.Errorf("present=%v", id != 0)
			}
			return 0, last
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// call runs fn (a JavaScript function declaration) with the node as this.
func (p *webPage) call(id cdp.BackendNodeID, fn string, args ...any) string {
	p.t.Helper()
	out, err := chromedp.Run(p.ctx, func(ctx context.Context, t *chromedp.Target) (string, error) {
		obj, err := cdp.Call(ctx, t, dom.ResolveNode, dom.ResolveNodeParams{BackendNodeID: id})
		if err != nil {
			return "", err
		}
		var cargs []*runtime.CallArgument
		for _, a := range args {
			b, _ := json.Marshal(a)
			cargs = append(cargs, &runtime.CallArgument{Value: b})
		}
		res, err := cdp.Call(ctx, t, runtime.CallFunctionOn, runtime.CallFunctionOnParams{
			FunctionDeclaration: fn, ObjectID: obj.Object.ObjectID, Arguments: cargs, ReturnByValue: wpPtr(true)})
		if err != nil {
			return "", err
		}
		if res.ExceptionDetails != nil {
			return "", fmt.Errorf("%s", res.ExceptionDetails.Text)
		}
		var s string
		json.Unmarshal(res.Result.Value, &s)
		return s, nil
	})
	if err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	return out
}

func (p *webPage) click(role, name string) {
	p.t.Helper()
	p.call(p.find(role, name, 10*time.Second), `function() { this.scrollIntoView({block: "center"}); this.click(); return ""; }`)
}

func (p *webPage) fill(role, name, value string) {
	p.t.Helper()
	p.call(p.find(role, name, 10*time.Second), `function(v) { this.focus(); this.value = v; this.dispatchEvent(new Event("input", {bubbles: true})); return ""; }`, value)
}

// textOf is the text content of the element with role and name.
func (p *webPage) textOf(role, name string) string {
	p.t.Helper()
	return p.call(p.find(role, name, 10*time.Second), `function() { return this.textContent; }`)
}

// waitText waits until the element's text contains want.
func (p *webPage) waitText(role, name, want string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := p.textOf(role, name)
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %s %q says %q, want %q within %s", p.name, role, name, got, want, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// text evaluates a JavaScript expression (awaiting a promise) to a string.
func (p *webPage) text(expr string) string {
	s, err := chromedp.Run(p.ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return s
}

// framesDecoded is the browser's getStats() count of remote video frames
// decoded in the current call.
func (p *webPage) framesDecoded() int {
	var n int
	fmt.Sscan(p.text(`(async () => { if (!z5.pc) return "0"; let f = 0;
		(await z5.pc.getStats()).forEach((r) => { if (r.type === "inbound-rtp" && r.kind === "video") f = r.framesDecoded || 0; });
		return String(f); })()`), &n)
	return n
}

// waitFrames waits until the call has decoded at least n remote frames.
func (p *webPage) waitFrames(n int, timeout time.Duration) int {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := p.framesDecoded()
		if got >= n {
			return got
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %d remote video frames decoded within %s, want %d\n%s", p.name, got, timeout, n, p.text("document.body.innerText"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkAxe runs axe-core on the page as it is and fails on any violation.
func (p *webPage) checkAxe(screen string) {
	p.t.Helper()
	if !strings.Contains(p.text(`typeof axe`), "object") {
		if _, err := chromedp.Run(p.ctx, chromedp.Evaluate[*runtime.RemoteObject](p.axe)); err != nil {
			p.t.Fatalf("%s: inject axe-core: %v", p.name, err)
		}
	}
	out := p.text(`axe.run(document).then((r) => JSON.stringify(r.violations.map((v) =>
		({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" "))}))))`)
	if out != "[]" {
		p.t.Errorf("%s: axe-core on the %s screen: %s", p.name, screen, out)
	}
	p.shot(screen)
}

// shot writes a screenshot of the screen into Z5_SCREENSHOTS when set
// (the README's images come from there).
func (p *webPage) shot(screen string) {
	dir := os.Getenv("Z5_SCREENSHOTS")
	if dir == "" {
		return
	}
	b, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Logf("screenshot %s: %v", screen, err)
		return
	}
	os.WriteFile(filepath.Join(dir, "webphone-"+screen+".png"), b, 0o644)
}

// signIn signs in through the page; number picks from the "Phone number"
// list box when the account has several.
func (p *webPage) signIn(user, pass, number string, axe bool) {
	p.t.Helper()
	p.find("textbox", "Username", 15*time.Second)
	if axe {
		p.checkAxe("sign-in")
	}
	p.fill("textbox", "Username", user)
	p.fill("textbox", "Password", pass)
	p.click("button", "Sign in")
	if number != "" {
		id := p.find("listbox", "Phone number", 10*time.Second)
		if axe {
			p.checkAxe("number")
		}
		p.call(id, `function(v) { this.value = v; return this.value; }`, number)
		p.click("button", "Use this number")
	}
	p.waitText("status", "Phone status", "Ready for calls", 15*time.Second)
}

// TestWebPhone: the browser phone of DESIGN.md "Web phone", against a real
// z5d: (1) it signs in and calls a z5 client that records what arrives and
// requires SRTP, (2) a z5 client that requires SRTP calls it and the page
// answers, (3) one browser calls another through the MCS; the relay's
// record says every stream of the calls with z5 clients was encrypted end
// to end (SDES-SRTP from the client to the gateway); axe-core finds
// nothing on any screen. The node requires SIP over TLS ([sip]
// require_tls, the dev stack's sip_tls on): the tabs register over TLS
// too, or they could not register at all.
func TestWebPhone(t *testing.T) {
	needTool(t, "ffprobe")
	axe := axeScript(t)
	alloc := browserAlloc(t)
	s := &stack{ip: loopbackIP(t), dir: t.TempDir()}
	s.cfg = stackConfig(t, s.dir, s.ip, "\n[sip]\nrequire_tls = true\n")
	s.start(t)
	s.provision(t)
	url := "https://" + s.ip + ":9443/"
	const minFrames = 30 // a second of the far end's video

	alice := openPage(t, alloc, "alice", url, axe)
	alice.signIn("alice", alicePass, aliceWork, true)
	alice.checkAxe("idle")
	// The tab's registration is a TLS flow to the node's TLS listener.
	var regs opviewAnswer
	out := s.admin(t, "", "registrations", "--json")
	if err := json.Unmarshal([]byte(out), &regs); err != nil {
		t.Fatalf("z5d admin registrations --json: %v\n%s", err, out)
	}
	tabs := 0
	for _, r := range regs.Registrations {
		if r.Number == aliceWork {
			tabs++
			t.Logf("the tab's registration: %s from %s", r.Transport, r.Source)
			if r.Transport != "TLS" {
				t.Errorf("the tab registered over %s, want TLS", r.Transport)
			}
		}
	}
	if tabs != 1 {
		t.Errorf("%d registrations of %s, want the tab's\n%s", tabs, aliceWork, out)
	}

	t.Run("CallsZ5Client", func(t *testing.T) {
		alice.t = t
		bob := s.login(t, "bob", bobPass, "")
		rec := t.TempDir()
		// --srtp require: a plain RTP offer from the gateway is refused (488).
		lis := startZ5(t, bob, "listen", "--auto-answer", "--text", "--record", rec, "--raw", "--max-calls", "1", "--srtp", "require")
		waitFor(t, lis, "listening as sip:"+bobNumber+"@mcs.z5.test", 15*time.Second)
		// Dialled from the keyboard: focus the field, type, press Enter.
		alice.call(alice.find("textbox", "Number to call", 10*time.Second), `function() { this.focus(); return ""; }`)
		if err := chromedp.Do(alice.ctx, chromedp.KeyEvent(bobNumber+"\r")); err != nil {
			t.Fatal(err)
		}
		alice.find("region", "Call quality", 20*time.Second)
		frames := alice.waitFrames(minFrames, 20*time.Second)
		// Real-time text, typed key by key (a typo erased on the way).
		alice.call(alice.find("textbox", "Real-time text", 10*time.Second), `function() { this.focus(); return ""; }`)
		if err := chromedp.Do(alice.ctx, chromedp.KeyEvent("hello frm"), chromedp.KeyEvent("\b\b"),
			chromedp.KeyEvent("rom the web\r")); err != nil {
			t.Fatal(err)
		}
		waitFor(t, lis, "rom the web", 10*time.Second) // raw on a pipe; text.log has the edited line
		alice.checkAxe("in-call")
		time.Sleep(2 * time.Second) // a few seconds of the page's video for the recording
		alice.click("button", "Hang up")
		alice.waitText("alert", "", "ended", 10*time.Second)
		alice.gone("region", "Call quality", 10*time.Second)
		alice.waitText("status", "Phone status", "Ready for calls", 10*time.Second)
		waitExit(t, lis, 15*time.Second)
		// The page's video as z5 received it (the raw H.264 the recorder
		// keeps with --raw), decoded by ffprobe.
		codec, decoded := probe(t, needTool(t, "ffprobe"), filepath.Join(rec, "call1-"+aliceWork+"-video.h264"))
		t.Logf("browser -> z5: the page decoded %d frames of the z5 clip; ffprobe decoded %d %s frames of z5's recording of the page",
			frames, decoded, codec)
		if codec != "h264" || decoded < minFrames {
			t.Errorf("recording of the page's video: %s, %d frames; want h264 with >= %d frames", codec, decoded, minFrames)
		}
		t.Log(s.wantCallRecord(t, aliceWork, bobNumber))
		s.wantEncryptedRecord(t, aliceWork, bobNumber)
		if b, err := os.ReadFile(filepath.Join(rec, "text.log")); err != nil || !strings.Contains(string(b), "< hello from the web") {
			t.Errorf("z5 transcript: %v\n%s", err, b)
		}
	})

	t.Run("AnswersZ5Call", func(t *testing.T) {
		alice.t = t
		bob := s.login(t, "bob", bobPass, "")
		// --srtp require: no fallback to plain RTP; the gateway must answer
		// SDES-SRTP.
		call := startZ5Stdin(t, "hi from z5\n", "--home", bob, "call", aliceWork, "--duration", "5s", "--text", "--json", "--srtp", "require")
		id := alice.find("region", "Incoming call", 20*time.Second)
		if got := alice.call(id, `function() { return this.textContent; }`); !strings.Contains(got, bobNumber) {
			t.Errorf("Incoming call region says %q, want the caller %s", got, bobNumber)
		}
		alice.checkAxe("incoming")
		waitJS(t, alice, `document.title + " " + document.getElementById("favicon").href`, "Incoming call from "+bobNumber, 5*time.Second)
		if fav := alice.text(`document.getElementById("favicon").href`); !strings.Contains(fav, "favicon-ring.svg") {
			t.Errorf("favicon while ringing: %s", fav)
		}
		alice.click("button", "Answer")
		frames := alice.waitFrames(minFrames, 20*time.Second)
		waitJS(t, alice, `document.getElementById("rtt-log").textContent`, "hi from z5", 10*time.Second)
		waitExit(t, call, 30*time.Second)
		sum := parseSummary(t, call.Output())
		var video int
		var lost int64
		for _, st := range sum.Streams {
			if st.Kind == "video" {
				video, lost = int(st.FramesReceived), st.Lost
			}
		}
		t.Logf("z5 -> browser: the page decoded %d frames, z5 call received %d frames of the page's video (%d packets lost)", frames, video, lost)
		if video < minFrames {
			t.Errorf("z5 call received %d video frames from the page, want >= %d", video, minFrames)
		}
		var enc encSummary
		if i := strings.Index(call.Output(), "{"); i < 0 || json.Unmarshal([]byte(call.Output()[i:]), &enc) != nil {
			t.Fatalf("z5 call --json: no summary\n%s", call.Output())
		}
		t.Logf("z5 call --srtp require: call encrypted %t, audio %t, video %t, text %+v", enc.Encrypted,
			enc.Negotiated.Audio.Encrypted, enc.Negotiated.Video.Encrypted, enc.Negotiated.Text)
		if !enc.Encrypted || enc.Negotiated.Text == nil {
			t.Errorf("z5 call summary: encrypted %t, text %+v; want every stream, text included, keyed", enc.Encrypted, enc.Negotiated.Text)
		}
		for _, st := range enc.Streams {
			if !st.Encrypted || st.SRTPRejected != 0 {
				t.Errorf("z5 call %s: encrypted %t, %d packets rejected by SRTP", st.Kind, st.Encrypted, st.SRTPRejected)
			}
		}
		t.Log(s.wantCallRecord(t, bobNumber, aliceWork))
		s.wantEncryptedRecord(t, bobNumber, aliceWork)
		// The far end hung up: the idle screen returns by itself.
		alice.gone("region", "Call quality", 10*time.Second)
		alice.waitText("alert", "", "ended", 10*time.Second)
		alice.waitText("status", "Phone status", "Ready for calls", 10*time.Second)
	})

	t.Run("BrowserToBrowser", func(t *testing.T) {
		alice.t = t
		bobPage := openPage(t, alloc, "bob", url, axe)
		bobPage.signIn("bob", bobPass, "", false)
		// Hang up while it rings: the callee's alert goes, a missed call.
		alice.fill("textbox", "Number to call", bobNumber)
		alice.click("button", "Call")
		bobPage.find("region", "Incoming call", 20*time.Second)
		alice.click("button", "Hang up")
		bobPage.gone("region", "Incoming call", 10*time.Second)
		bobPage.waitText("alert", "", "Missed call from "+aliceWork, 10*time.Second)
		alice.gone("button", "Hang up", 10*time.Second)

		// Declined: the caller is told.
		alice.fill("textbox", "Number to call", bobNumber)
		alice.click("button", "Call")
		bobPage.find("region", "Incoming call", 20*time.Second)
		bobPage.click("button", "Decline")
		alice.waitText("alert", "", "declined", 10*time.Second)
		alice.gone("button", "Hang up", 10*time.Second)

		alice.fill("textbox", "Number to call", bobNumber)
		alice.click("button", "Call")
		bobPage.find("region", "Incoming call", 20*time.Second)
		bobPage.click("button", "Answer")
		fa := alice.waitFrames(minFrames, 20*time.Second)
		fb := bobPage.waitFrames(minFrames, 20*time.Second)
		t.Logf("browser <-> browser: alice decoded %d frames, bob %d", fa, fb)
		alice.call(alice.find("textbox", "Real-time text", 10*time.Second), `function() { this.focus(); return ""; }`)
		if err := chromedp.Do(alice.ctx, chromedp.KeyEvent("hi bob")); err != nil {
			t.Fatal(err)
		}
		waitJS(t, bobPage, `document.getElementById("rtt-log").textContent`, "hi bob", 10*time.Second)
		bobPage.click("button", "Mute camera")
		if got := bobPage.call(bobPage.find("button", "Mute camera", time.Second), `function() { return this.getAttribute("aria-pressed"); }`); got != "true" {
			t.Errorf("Mute camera aria-pressed = %q after a click", got)
		}
		// The slate keeps frames coming: alice still decodes new ones.
		alice.waitFrames(fa+minFrames/2, 10*time.Second)
		alice.click("button", "Hang up")
		bobPage.waitText("alert", "", "ended", 10*time.Second)
		bobPage.gone("region", "Call quality", 10*time.Second)
		s.wantCallRecord(t, aliceWork, bobNumber)
		s.wantEncryptedRecord(t, aliceWork, bobNumber)
	})

	t.Run("RegisteredLocation", func(t *testing.T) {
		alice.t = t
		alice.fill("textbox", "Street", "12 Elm Street")
		alice.fill("textbox", "City", "Springfield")
		alice.fill("textbox", "State", "ZZ")
		alice.fill("textbox", "ZIP code", "62701")
		alice.click("button", "Save location")
		alice.waitText("alert", "", "state", 10*time.Second) // the field error is shown
		alice.fill("textbox", "State", "il")
		alice.click("button", "Save location")
		alice.waitText("alert", "", "location is saved", 10*time.Second)
		if out := s.admin(t, "", "customer", "location", "alice", "--json"); !strings.Contains(out, "12 Elm Street") || !strings.Contains(out, `"IL"`) {
			t.Errorf("stored location: %s", out)
		}
	})
}

// wantEncryptedRecord checks the latest call record from -> to (ended:
// call wantCallRecord first): every relayed stream that carried packets
// was encrypted end to end, each leg's SDP having keyed it.
func (s *stack) wantEncryptedRecord(t *testing.T, from, to string) {
	t.Helper()
	var recs []relayRecord
	out := s.admin(t, "", "--json", "calls", "--number", to, "--limit", "1")
	if err := json.Unmarshal([]byte(out), &recs); err != nil || len(recs) != 1 || recs[0].From != from || recs[0].To != to {
		t.Fatalf("call record %s -> %s: %v\n%s", from, to, err, out)
	}
	var enc, plain []string
	for _, st := range recs[0].Streams {
		if st.Packets == 0 {
			continue
		}
		if name := fmt.Sprintf("%s %s (%d packets)", st.Leg, st.Media, st.Packets); st.Encrypted {
			enc = append(enc, name)
		} else {
			plain = append(plain, name)
		}
	}
	t.Logf("call record %s -> %s: encrypted streams %v, plain %v", from, to, enc, plain)
	if len(plain) != 0 || len(enc) < 4 {
		t.Errorf("call record %s -> %s: encrypted %v, plain %v; want audio and video of both legs encrypted", from, to, enc, plain)
	}
}

// TestWebPhoneInterpreter: an interpreter signs in to the web phone (its
// station ca-1001), goes ready, is offered alice's queued relay call to a
// hearing number with its details, answers (video with alice), dials the
// hearing party (the telephone-network peer at the trunk, audio only,
// through the relay) and ends the call; alice requires SRTP, and the
// relay's record shows her leg to the station encrypted end to end, the
// hearing party's plain; axe-core finds nothing on the interpreter's
// screens.
func TestWebPhoneInterpreter(t *testing.T) {
	axe := axeScript(t)
	alloc := browserAlloc(t)
	ip := loopbackIP(t)
	trunk := freeTCP(t, loopbackIP(t))
	s := &stack{ip: ip, dir: t.TempDir()}
	s.cfg = stackConfig(t, s.dir, s.ip, fmt.Sprintf(`
[trunk]
address = "sip:%s;transport=tcp"
allow = ["%s/32"]
`, trunk, trunk.Addr()))
	peer := startTrunkPeer(t, trunk, nil)
	s.start(t)
	s.provision(t)
	s.admin(t, "", "customer", "location", "alice", "--street", "1 Test Plaza", "--city", "Springfield", "--state", "IL", "--zip", "62701")
	const terpPassword = "terp-secret-123"
	s.admin(t, terpPassword+"\n", "interpreter", "add", "terp", "--ca-id", "1001", "--password-stdin")
	s.admin(t, terpPassword+"\n", "staff", "add", "ops", "--password-stdin")

	terp := openPage(t, alloc, "terp", "https://"+s.ip+":9443/", axe)
	terp.signIn("terp", terpPassword, "", false)
	terp.click("button", "Ready")
	waitJS(t, terp, `document.getElementById("interp-state").textContent`, "Ready", 10*time.Second)
	terp.checkAxe("interpreter")

	const hearing = "2125550123"
	alice := s.login(t, "alice", alicePass, aliceWork)
	// The deaf user's leg to the station runs SDES-SRTP: the station (a page)
	// answers it with SRTP; the hearing party's leg is plain RTP.
	call := startZ5(t, alice, "call", hearing, "--duration", "12s", "--srtp", "require", "--json")
	id := terp.find("region", "Incoming call", 30*time.Second)
	offer := terp.call(id, `function() { return this.textContent; }`)
	for _, want := range []string{"Outbound relay call", aliceWork, hearing} {
		if !strings.Contains(offer, want) {
			t.Errorf("offered call shows %q, want %q in it", offer, want)
		}
	}
	terp.checkAxe("interpreter-offer")
	terp.click("button", "Answer")
	frames := terp.waitFrames(30, 20*time.Second)
	terp.click("button", "Dial hearing party")
	waitJS(t, terp, `document.getElementById("hearing-status").textContent`, "on the line", 15*time.Second)
	terp.checkAxe("interpreter-call")

	// Staff see the call live in the operator view (read-only).
	ops := openPage(t, alloc, "ops", "https://"+s.ip+":9443/", axe)
	ops.fill("textbox", "Username", "ops")
	ops.fill("textbox", "Password", terpPassword)
	ops.click("button", "Sign in")
	ops.find("table", "Live calls", 10*time.Second)
	waitJS(t, ops, `document.getElementById("op-calls").textContent`, aliceWork, 10*time.Second)
	waitJS(t, ops, `document.getElementById("op-terps").textContent`, "1001", 10*time.Second)
	waitJS(t, ops, `document.getElementById("op-regs").textContent`, "ca-1001", 10*time.Second)
	ops.checkAxe("operator")
	// hearingRx is how many audio packets the hearing party has received
	// so far; waitRx waits until it reaches n.
	hearingRx := func() uint64 {
		var rx uint64
		for _, c := range peer.Calls() {
			if c.To == hearing {
				for _, st := range c.Stats {
					rx = max(rx, st.PacketsReceived)
				}
			}
		}
		return rx
	}
	waitRx := func(n uint64) uint64 {
		rx := hearingRx()
		for deadline := time.Now().Add(10 * time.Second); rx < n && time.Now().Before(deadline); rx = hearingRx() {
			time.Sleep(200 * time.Millisecond)
		}
		return rx
	}
	rx := waitRx(50)
	t.Logf("relay call: the interpreter's page decoded %d frames of alice's video; the hearing party received %d audio packets", frames, rx)
	if rx < 50 {
		t.Errorf("the hearing party received %d audio packets from the interpreter, want >= 50", rx)
	}

	// Hold: the hearing party hears nothing from the interpreter (its
	// received count stops, after a second for packets already on their
	// way), while alice's video keeps arriving; off hold, it runs again.
	terp.click("button", "Hold hearing party")
	waitJS(t, terp, `document.getElementById("hold-hearing").getAttribute("aria-pressed")`, "true", 10*time.Second)
	terp.waitText("status", "Phone status", "On hold", 10*time.Second)
	terp.checkAxe("interpreter-hold")
	time.Sleep(time.Second)
	heldFrom, framesHeld := hearingRx(), terp.framesDecoded()
	time.Sleep(3 * time.Second)
	heldTo, framesAfter := hearingRx(), terp.framesDecoded()
	t.Logf("on hold for 3 s: the hearing party received %d audio packets; the page decoded %d more frames of alice's video", heldTo-heldFrom, framesAfter-framesHeld)
	if heldTo-heldFrom > 2 {
		t.Errorf("on hold the hearing party received %d audio packets from the interpreter in 3 s, want none", heldTo-heldFrom)
	}
	if framesAfter <= framesHeld {
		t.Errorf("on hold the page decoded no more of alice's video (%d frames), want her leg untouched", framesAfter)
	}
	terp.click("button", "Hold hearing party")
	waitJS(t, terp, `document.getElementById("hold-hearing").getAttribute("aria-pressed")`, "false", 10*time.Second)
	if got := waitRx(heldTo + 50); got < heldTo+50 {
		t.Errorf("off hold the hearing party received %d more audio packets, want >= 50", got-heldTo)
	} else {
		t.Logf("off hold: the hearing party received %d more audio packets", got-heldTo)
	}
	terp.click("button", "End call")
	waitExit(t, call, 20*time.Second)
	terp.gone("region", "Call quality", 10*time.Second)
	// Wrap-up (acd.wrap_up, 5 s by default) shows, then Ready by itself.
	waitJS(t, terp, `document.getElementById("interp-state").textContent`, "Wrap-up", 10*time.Second)
	terp.checkAxe("interpreter-wrap-up")
	waitJS(t, terp, `document.getElementById("interp-state").textContent`, "Ready", 15*time.Second)
	for _, c := range peer.Calls() {
		if c.To == hearing && (c.Ended.IsZero() || c.Video) {
			t.Errorf("hearing leg: ended %v, video offered %v; want ended, audio only", c.Ended, c.Video)
		}
	}
	// The relay's record: alice's leg to the station encrypted end to end,
	// the hearing party's plain.
	r := s.waitRecord(t, aliceWork, "conversation end", func(r relayRecord) bool {
		return r.Direction == "outbound" && r.ConversationEnd != nil
	})
	for _, st := range r.Streams {
		t.Logf("relay call record: %s %s %d packets, encrypted %v", st.Leg, st.Media, st.Packets, st.Encrypted)
		if st.Packets > 0 && (st.Leg == "caller" || st.Leg == "callee") != st.Encrypted {
			t.Errorf("%s %s: encrypted %v", st.Leg, st.Media, st.Encrypted)
		}
	}
}

// startZ5Stdin runs the z5 binary with stdin until the test ends.
func startZ5Stdin(t *testing.T, stdin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin(t, "z5"), args...)
	cmd.Stdin = strings.NewReader(stdin)
	return startCmd(t, cmd, func(out string) {
		t.Logf("z5 %v output:\n%s", args, out)
	})
}

// waitJS polls a JavaScript expression until its string value contains want.
func waitJS(t *testing.T, p *webPage, expr, want string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := p.text(expr)
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s = %q, want %q within %s", p.name, expr, got, want, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestWebPhoneFirstFrameBench measures click-to-first-remote-frame over 20
// calls from the page to a z5 client on loopback (the page times it:
// from the click on "Call" to the first frame the remote video element
// presents). Set Z5_BENCH_WEBPHONE=1 to run it; BENCHMARKS.md has the
// figures.
func TestWebPhoneFirstFrameBench(t *testing.T) {
	if os.Getenv("Z5_BENCH_WEBPHONE") == "" {
		t.Skip("a benchmark: set Z5_BENCH_WEBPHONE=1 to run it")
	}
	const calls = 20
	axe := axeScript(t)
	alloc := browserAlloc(t)
	s := startStack(t)
	s.provision(t)
	alice := openPage(t, alloc, "alice", "https://"+s.ip+":9443/", axe)
	alice.signIn("alice", alicePass, aliceWork, false)
	bob := s.login(t, "bob", bobPass, "")
	lis := startZ5(t, bob, "listen", "--auto-answer")
	waitFor(t, lis, "listening as", 15*time.Second)
	var ms []float64
	for i := range calls {
		alice.fill("textbox", "Number to call", bobNumber)
		alice.click("button", "Call")
		alice.waitFrames(1, 20*time.Second)
		deadline := time.Now().Add(5 * time.Second)
		var v float64
		for v == 0 && time.Now().Before(deadline) {
			fmt.Sscan(alice.text(`String(z5.firstFrameMs || 0)`), &v)
			time.Sleep(10 * time.Millisecond)
		}
		if v == 0 {
			t.Fatalf("call %d: no first-frame time", i+1)
		}
		ms = append(ms, v)
		alice.click("button", "Hang up")
		alice.waitText("status", "Phone status", "Ready for calls", 10*time.Second)
	}
	slices.Sort(ms)
	p := func(q float64) float64 { return ms[int(q*float64(len(ms)-1)+0.5)] }
	t.Logf("click to first remote frame over %d calls: p50 %.0f ms, p95 %.0f ms, min %.0f ms, max %.0f ms", calls, p(0.5), p(0.95), ms[0], ms[len(ms)-1])

	// z5d's CPU per packet the gateway forwards (page side: everything the
	// page sent and received), over 10 s of a call, less z5d's idle CPU
	// over 10 s with the page registered. It includes the relay hop each
	// of those packets also takes.
	const window = 10 * time.Second
	pid := s.proc.cmd.Process.Pid
	c0 := procCPU(t, pid)
	time.Sleep(window)
	idle := procCPU(t, pid) - c0
	alice.fill("textbox", "Number to call", bobNumber)
	alice.click("button", "Call")
	alice.waitFrames(30, 20*time.Second)
	packets := func() float64 {
		var n float64
		fmt.Sscan(alice.text(`(async () => { let n = 0; (await z5.pc.getStats()).forEach((r) => {
			if (r.type === "inbound-rtp") n += r.packetsReceived || 0; if (r.type === "outbound-rtp") n += r.packetsSent || 0; });
			return String(n); })()`), &n)
		return n
	}
	p0, c1 := packets(), procCPU(t, pid)
	time.Sleep(window)
	p1, c2 := packets(), procCPU(t, pid)
	alice.click("button", "Hang up")
	busy := c2 - c1 - idle
	gw := float64(busy.Microseconds()) / (p1 - p0)
	t.Logf("z5d CPU: idle %s per %s; in the call %s per %s for %.0f packets (%.0f pps) through the gateway: %.1f µs per packet (gateway and relay hop)",
		idle, window, c2-c1, window, p1-p0, (p1-p0)/window.Seconds(), gw)

	// The same for a z5 client's call through the plain relay.
	home := s.login(t, "alice", alicePass, aliceHome)
	alice.waitText("status", "Phone status", "Ready for calls", 10*time.Second)
	for end := time.Now().Add(10 * time.Second); strings.Count(lis.Output(), "call from "+aliceWork+" ended") < calls+1 && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond) // bob's client takes the next call once the last one is gone
	}
	c3 := procCPU(t, pid)
	out := mustZ5(t, home, "", "call", bobNumber, "--duration", window.String(), "--json")
	c4 := procCPU(t, pid)
	sum := parseSummary(t, out)
	var n float64
	for _, st := range sum.Streams {
		n += float64(st.PacketsSent + st.PacketsReceived)
	}
	relay := float64((c4 - c3 - idle).Microseconds()) / n
	t.Logf("z5 to z5 through the relay: %s per %s for %.0f packets (%.0f pps): %.1f µs per packet; gateway path / relay = %.2f",
		c4-c3, window, n, n/window.Seconds(), relay, gw/relay)
}

// procCPU is the user and system CPU time process pid has used.
func procCPU(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	var utime, stime int64
	fmt.Sscan(f[11], &utime)
	fmt.Sscan(f[12], &stime)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// TestWebPhoneBehindFirewall: the browser on a customer host behind exactly
// the nftables rules `z5d firewall` generates (the seed's topology on
// 198.18 addresses, production ports) signs in and calls a z5 client on
// the same host: HTTPS to the MCS and UDP to its relay range are all the
// web phone needs. The relay runs as in production (it sends to none of
// the node's own addresses but the gateway's sockets).
func TestWebPhoneBehindFirewall(t *testing.T) {
	chromium := needTool(t, "chromium")
	l := newLab(t)
	l.startProvisioned(t)
	c := l.customer(t, 0)
	c.load(t, l.nft)
	c.mustLogin(t, "bob")
	ln := c.listen(t, "bob")

	// chromium runs inside the customer's namespace; chromedp talks to it
	// over the pipe it inherits.
	wrapper := filepath.Join(t.TempDir(), "chromium-in-netns")
	script := fmt.Sprintf("#!/bin/sh\nexec ip netns exec %s %s \"$@\"\n", c.ns, chromium)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	alice := openPage(t, browserAllocPath(t, wrapper), "alice", "https://198.18.1.21/", "")
	alice.signIn("alice", nsAlicePass, "", false)
	alice.fill("textbox", "Number to call", nsBobNumber)
	alice.click("button", "Call")
	frames := alice.waitFrames(30, 30*time.Second)
	time.Sleep(2 * time.Second)
	alice.click("button", "Hang up")
	alice.waitText("alert", "", "ended", 10*time.Second)
	out := ln.wait(t)
	m := regexp.MustCompile(`video sent \d+ pkts/\d+ frames, received (\d+) pkts/(\d+) frames`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("z5 listen printed no video summary:\n%s", out)
	}
	got, _ := strconv.Atoi(m[2])
	t.Logf("behind the generated firewall: the page decoded %d frames of bob's video; bob received %s packets, %d frames of the page's", frames, m[1], got)
	if got < 30 {
		t.Errorf("bob received %d frames of the page's video, want >= 30", got)
	}
}
