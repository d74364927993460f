// Command client measures the Z5 client's two latencies that a person
// notices, driving the real z5 and z5d binaries on loopback:
//
//   - registration: from starting `z5 listen` (home already logged in) to
//     its "listening as" line, i.e. process start, state load, step 1
//     lookups, TCP connect, OPTIONS and the digest-authenticated REGISTER;
//   - first media: from the INVITE `z5 call` sends to the first RTP packet
//     it receives through the MCS relay (first_media_ms of `z5 call --json`).
//
// Run from the module root: go run ./bench/client [-runs 20] [-calls 20].
// It starts its own provider on a random 127.x.y.z address with the dev
// ports and sends traffic to nothing else.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/z5vrs/z5/internal/devstack"
)

// Targets from the issue: registration < 50 ms, first media < 30 ms (p95).
const (
	targetRegister   = 50 * time.Millisecond
	targetFirstMedia = 30 * time.Millisecond
)

func main() {
	runs := flag.Int("runs", 20, "z5 listen starts to time")
	calls := flag.Int("calls", 20, "calls to time")
	binDir := flag.String("bin", "", "directory holding prebuilt z5 and z5d (default: build them)")
	strict := flag.Bool("strict", false, "exit 1 when a p95 misses its target")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, *runs, *calls, *binDir, *strict)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench/client: %v\n", err)
		os.Exit(1)
	}
}

type bench struct {
	bin, dir, ip, cfg string
}

func run(ctx context.Context, runs, calls int, binDir string, strict bool) error {
	dir, err := os.MkdirTemp("", "z5-bench-client-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if binDir == "" {
		binDir = filepath.Join(dir, "bin")
		out, err := exec.CommandContext(ctx, "go", "build", "-o", binDir+"/", "./cmd/z5d", "./cmd/z5").CombinedOutput()
		if err != nil {
			return fmt.Errorf("go build (run from the module root): %v\n%s", err, out)
		}
	}
	b := &bench{bin: binDir, dir: dir}
	if b.ip, err = loopbackIP(); err != nil {
		return err
	}
	b.cfg = filepath.Join(dir, "z5.toml")
	if err := os.WriteFile(b.cfg, []byte(devstack.Config("Z5 bench", dir, b.ip, "")), 0o644); err != nil {
		return err
	}
	srv := exec.CommandContext(ctx, filepath.Join(binDir, "z5d"), "run", "--config", b.cfg, "--node", "n1", "--log-level", "warn")
	srv.Stdout, srv.Stderr = io.Discard, os.Stderr
	srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	}()
	if err := waitReady(ctx, "http://"+b.ip+":9090/readyz"); err != nil {
		return err
	}
	for _, a := range [][]string{
		{"customer", "add", "alice", "--password-stdin", "--street", "1 Test Plaza", "--city", "Springfield", "--state", "IL", "--zip", "62701"},
		{"number", "add", "alice", "2025550102"},
		{"customer", "add", "bob", "--password-stdin", "--street", "1 Test Plaza", "--city", "Springfield", "--state", "IL", "--zip", "62701"},
		{"number", "add", "bob", "3035550199"},
	} {
		if _, err := b.cmd(ctx, "pass-for-"+a[2]+"\n", "z5d", append([]string{"admin", "--config", b.cfg}, a...)...); err != nil {
			return err
		}
	}
	alice, bob := filepath.Join(dir, "alice"), filepath.Join(dir, "bob")
	for home, user := range map[string]string{alice: "alice", bob: "bob"} {
		if _, err := b.cmd(ctx, "pass-for-"+user+"\n", "z5", "--home", home, "login", "--profile",
			filepath.Join(dir, "provider.json"), "--username", user, "--password-stdin"); err != nil {
			return err
		}
	}
	fmt.Printf("Z5 client latency on loopback (%s), %d listen starts, %d calls\n\n", b.ip, runs, calls)

	// (a) z5 listen: process start to "listening as".
	var wall, step4 []time.Duration
	for range runs {
		w, s, err := b.listenOnce(ctx, bob)
		if err != nil {
			return err
		}
		wall, step4 = append(wall, w), append(step4, s)
	}
	// (b) INVITE to first media packet, with bob auto-answering.
	lis, lines, err := b.listen(ctx, bob, "--auto-answer")
	if err != nil {
		return err
	}
	defer stopProc(lis)
	if _, err := waitLine(lines, "listening as", 10*time.Second); err != nil {
		return err
	}
	go func() {
		for range lines { // keep the pipe drained
		}
	}()
	var first, setup []time.Duration
	for range calls {
		out, err := b.cmd(ctx, "", "z5", "--home", alice, "call", "3035550199", "--duration", "300ms", "--json")
		if err != nil {
			return err
		}
		var sum struct {
			SetupMs    float64 `json:"setup_ms"`
			FirstMedia float64 `json:"first_media_ms"`
		}
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &sum); err != nil || sum.FirstMedia == 0 {
			return fmt.Errorf("call summary %v:\n%s", err, out)
		}
		first = append(first, msDur(sum.FirstMedia))
		setup = append(setup, msDur(sum.SetupMs))
	}

	fmt.Printf("%-46s %9s %9s %9s  %s\n", "measure", "p50", "p95", "max", "target (p95)")
	ok := report("z5 listen: process start to registered (wall)", wall, targetRegister)
	report("  of which step 4 (connect, OPTIONS, REGISTER)", step4, 0)
	report("z5 call: INVITE to 200 OK", setup, 0)
	ok = report("z5 call: INVITE to first media packet", first, targetFirstMedia) && ok
	if !ok && strict {
		return errors.New("a p95 missed its target")
	}
	return nil
}

func msDur(ms float64) time.Duration { return time.Duration(ms * float64(time.Millisecond)) }

func report(name string, ds []time.Duration, target time.Duration) bool {
	s := slices.Clone(ds)
	slices.Sort(s)
	pct := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	p50, p95 := pct(0.50), pct(0.95)
	verdict := ""
	if target > 0 {
		verdict = fmt.Sprintf("< %s: ", target)
		if p95 < target {
			verdict += "met"
		} else {
			verdict += "MISSED"
		}
	}
	f := func(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000) }
	fmt.Printf("%-46s %9s %9s %9s  %s\n", name, f(p50), f(p95), f(s[len(s)-1]), verdict)
	return target == 0 || p95 < target
}

var step4Elapsed = regexp.MustCompile(`\[step 4\] .* \(([0-9.]+)(µs|ms|s)\)\s*$`)

// listenOnce starts `z5 listen`, times its "listening as" line, and stops it.
func (b *bench) listenOnce(ctx context.Context, home string) (wall, step4 time.Duration, err error) {
	began := time.Now()
	p, lines, err := b.listen(ctx, home)
	if err != nil {
		return 0, 0, err
	}
	defer stopProc(p)
	var seen []string
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return 0, 0, fmt.Errorf("z5 listen exited:\n%s", strings.Join(seen, "\n"))
			}
			seen = append(seen, l)
			if m := step4Elapsed.FindStringSubmatch(l); m != nil {
				d, _ := time.ParseDuration(m[1] + m[2])
				step4 = d
			}
			if strings.HasPrefix(l, "listening as") {
				return time.Since(began), step4, nil
			}
		case <-deadline:
			return 0, 0, fmt.Errorf("z5 listen: not registered after 10s:\n%s", strings.Join(seen, "\n"))
		}
	}
}

// listen starts `z5 listen` and streams its output lines.
func (b *bench) listen(ctx context.Context, home string, args ...string) (*exec.Cmd, <-chan string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(b.bin, "z5"), append([]string{"--home", home, "listen"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return cmd, lines, nil
}

func waitLine(lines <-chan string, prefix string, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				return "", fmt.Errorf("exited before %q", prefix)
			}
			if strings.HasPrefix(l, prefix) {
				return l, nil
			}
		case <-deadline:
			return "", fmt.Errorf("no %q within %s", prefix, timeout)
		}
	}
}

// stopProc ends a started client (SIGTERM un-registers), SIGKILL after 5 s.
func stopProc(cmd *exec.Cmd) {
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

func (b *bench) cmd(ctx context.Context, stdin, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	c := exec.CommandContext(ctx, filepath.Join(b.bin, name), args...)
	c.Stdin = strings.NewReader(stdin)
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out), nil
}

func waitReady(ctx context.Context, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("provider not ready at %s", url)
}

// loopbackIP picks a random 127.x.y.z whose dev ports are free.
func loopbackIP() (string, error) {
	for range 50 {
		b := make([]byte, 3)
		rand.Read(b)
		ip := "127." + strconv.Itoa(10+int(b[0])%200) + "." + strconv.Itoa(int(b[1])) + "." + strconv.Itoa(2+int(b[2])%250)
		l, err := net.Listen("tcp", ip+":5060")
		if err == nil {
			l.Close()
			return ip, nil
		}
	}
	return "", errors.New("no usable loopback address")
}
