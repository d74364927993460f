package testenv

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// NeedNetns skips t unless it can make network namespaces of its own
// (NetnsMissing).
func NeedNetns(t testing.TB, tools ...string) {
	t.Helper()
	if why := NetnsMissing(tools...); why != "" {
		t.Skip(why)
	}
}

// NetnsMissing says why this process cannot make network namespaces of
// its own, "" when it can: it must run as root, with unshare, ip and the
// other tools named installed.
func NetnsMissing(tools ...string) string {
	if os.Geteuid() != 0 {
		return "needs its own network namespace (unshare --net), which needs root"
	}
	for _, tool := range append([]string{"unshare", "ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not found (Debian packages util-linux, iproute2, nftables)"
		}
	}
	return ""
}

// ReexecInNetns runs this test binary again, only the tests matching run,
// in a new network namespace (`unshare --net`) prepared by the shell
// command setup, with env=1 so the tests know they are inside, for at
// most timeout. It fails t with their output if they fail. The namespace
// and all it holds die with that process.
func ReexecInNetns(t testing.TB, run, env, setup string, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := []string{"-test.run", run, "-test.count", "1"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"--net", "--", "sh", "-c",
		setup + ` && exec "$0" "$@"`, os.Args[0]}, args...)...)
	cmd.Env = append(os.Environ(), env+"=1")
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s in a network namespace failed: %v\n%s", run, err, out)
	}
	if testing.Verbose() {
		t.Logf("in a network namespace:\n%s", out)
	}
}
