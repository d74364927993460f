package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestDataDirPermissions: the database holds the HA1 digests, and an HA1
// registers as its user. z5d refuses a data dir or database that other
// users can read, naming the chmod that fixes it; everything it creates is
// owner-only, so another local user (nobody) reads none of it.
func TestDataDirPermissions(t *testing.T) {
	dir := t.TempDir()
	// Let others search every directory above dir, as they may /var/lib
	// (t.TempDir's parent is 0700, which would shield a 0755 dir).
	for p := filepath.Dir(dir); p != filepath.Dir(p) && p != filepath.Clean(os.TempDir()); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	ip := loopbackIP(t)
	cfg := stackConfig(t, dir, ip, "")
	run := []string{"run", "--config", cfg, "--node", "n1"}

	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, "", "z5d", run...)
	if err == nil {
		t.Fatalf("z5d started on a data dir of mode 0755:\n%s", out)
	}
	for _, want := range []string{"data dir " + dir + " has mode 0755", "run chmod 0700 " + dir} {
		if !strings.Contains(out, want) {
			t.Errorf("z5d on a 0755 data dir: want %q in:\n%s", want, out)
		}
	}

	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	s := &stack{ip: ip, dir: dir, cfg: cfg}
	s.start(t)
	s.provision(t) // the database now holds digests
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	// The secrets: the database (HA1 digests), its WAL, the CA and
	// license signing keys. Each must be owner-only in its own right, not
	// only behind the data dir's mode.
	var secrets []string
	for _, e := range entries {
		n := e.Name()
		if !strings.HasPrefix(n, "z5.db") && !strings.Contains(n, "key") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, n)
		secrets = append(secrets, p)
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("z5d created %s with mode %04o, want no access for group or others", p, fi.Mode().Perm())
		}
	}
	if !slices.Contains(secrets, filepath.Join(dir, "z5.db")) {
		t.Fatalf("no z5.db in %s: %v", dir, secrets)
	}
	attackAsNobody(t, dir, secrets)

	s.proc.stop(syscall.SIGTERM)
	db := filepath.Join(dir, "z5.db")
	if err := os.Chmod(db, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = runCmd(t, "", "z5d", run...)
	if err == nil {
		t.Fatalf("z5d started with its database at mode 0644:\n%s", out)
	}
	for _, want := range []string{"database file " + db + " has mode 0644", "run chmod 0600 " + db} {
		if !strings.Contains(out, want) {
			t.Errorf("z5d on a 0644 database: want %q in:\n%s", want, out)
		}
	}
}

// attackAsNobody reads each file as another local user, the way the attack
// read an HA1: it must be refused each time, with the data dir as z5d
// requires it (0700) and with the dir opened to others (0711: a wrong
// chmod, or the old unit's 0755), when only the file's own mode holds. A
// control file left readable proves the attack itself works. It needs root
// to change user, and skips without it.
func attackAsNobody(t *testing.T, dir string, files []string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Log("not root: reading as another user skipped")
		return
	}
	readAs := func(path string) error {
		cmd := exec.Command("cat", path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%w: %s", err, bytes.TrimSpace(out))
		}
		return nil
	}
	open := filepath.Join(filepath.Dir(dir), "control")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(open, "z5.db"), []byte("HA1"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := readAs(filepath.Join(open, "z5.db")); err != nil {
		t.Fatalf("control: nobody cannot read a 0644 file in a 0755 dir (%v): the attack would prove nothing", err)
	}
	for _, mode := range []os.FileMode{0o700, 0o711} {
		if err := os.Chmod(dir, mode); err != nil {
			t.Fatal(err)
		}
		read := 0
		for _, f := range files {
			if readAs(f) == nil {
				read++
				t.Errorf("data dir %04o: nobody read %s", mode, f)
			}
		}
		t.Logf("data dir %04o: secret files read by another local user: %d of %d", mode, read, len(files))
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
}
