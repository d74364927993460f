package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/z5vrs/z5/internal/cli"
	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/devstack"
	"github.com/z5vrs/z5/internal/password"
	"github.com/z5vrs/z5/internal/provider"
	"github.com/z5vrs/z5/internal/testenv/clitest"
)

// TestMain lets a test run this binary's main in a child process (under a
// pseudo-terminal) by setting Z5D_TEST_MAIN.
func TestMain(m *testing.M) { clitest.Main(m, "Z5D", "z5d", main) }

func runZ5d(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), err
}

// devData makes a dev data dir with its database, as z5d run --dev leaves it.
func devData(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	cfg := config.Dev(dir)
	if err := provider.PrepareDataDir(cfg); err != nil {
		t.Fatal(err)
	}
	st, err := provider.OpenStore(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	return dir
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"bogus"},
		{"admin"},
		{"admin", "customer"},
		{"admin", "customer", "bogus"},
		{"run"},
		{"firewall", "--config", "../../deploy/two-sites.toml", "--format", "bogus"},
		{"profile", "extra"},
		{"demo", "--bogus"},
		{"admin", "--data", "x", "customer", "list", "extra"},
	} {
		_, stderr, err := runZ5d(t, "", args...)
		if code := cli.ExitCode(err); code != 2 {
			t.Errorf("z5d %q: exit %d (%v), want 2", args, code, err)
		}
		if len(args) == 0 && !strings.Contains(stderr, "Available Commands") {
			t.Errorf("bare z5d printed no help:\n%s", stderr)
		}
	}
}

func TestMissingDataDirIsAnError(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "typo")
	for _, args := range [][]string{
		{"profile", "--data", missing},
		{"admin", "--data", missing, "customer", "list"},
		{"admin", "customer", "list", "--data", missing},
	} {
		_, _, err := runZ5d(t, "", args...)
		want := "no data dir at " + missing + ": run `z5d run --dev --data " + missing + "` first or pass --config"
		if err == nil || err.Error() != want {
			t.Errorf("z5d %q: %v, want %q", args, err, want)
		}
		if _, serr := os.Stat(missing); !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("z5d %q created %s", args, missing)
		}
	}
}

func TestAdminJSONHasNoSecretsAndAdminWords(t *testing.T) {
	dir := devData(t)
	if _, _, err := runZ5d(t, "correct horse 1\n", "admin", "--data", dir, "customer", "add", "alice", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	_, _, err := runZ5d(t, "correct horse 1\n", "admin", "customer", "add", "alice", "--password-stdin", "--data", dir)
	if err == nil || err.Error() != "customer alice already exists" {
		t.Errorf("second customer add: %v, want %q", err, "customer alice already exists")
	}
	for _, args := range [][]string{
		{"admin", "--json", "--data", dir, "customer", "list"},
		{"admin", "--data", dir, "customer", "list", "--json"},
		{"--json", "admin", "--data", dir, "customer", "list"},
	} {
		out, _, err := runZ5d(t, "", args...)
		if err != nil {
			t.Fatal(err)
		}
		var got []map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 1 {
			t.Fatalf("%q: %v\n%s", args, err, out)
		}
		for _, bad := range []string{"argon2", "PasswordHash", "password", "0001-01-01", "Username", "locked_until"} {
			if strings.Contains(out, bad) {
				t.Errorf("%q output has %q:\n%s", args, bad, out)
			}
		}
		if got[0]["username"] != "alice" || got[0]["display_name"] != "alice" {
			t.Errorf("%q: %v", args, got[0])
		}
	}
	if _, _, err := runZ5d(t, "", "admin", "--data", dir, "customer", "unlock", "bob"); err == nil || err.Error() != "customer bob does not exist" {
		t.Errorf("unlock bob: %v", err)
	}
	if out, _, err := runZ5d(t, "", "admin", "--data", dir, "customer", "unlock", "alice"); err != nil || !strings.Contains(out, "unlocked") {
		t.Errorf("unlock alice: %v %s", err, out)
	}
}

// TestAdminPasswordPromptOnTTY: on a terminal, customer add and customer
// password ask "Password" and do not echo what is typed.
func TestAdminPasswordPromptOnTTY(t *testing.T) {
	dir := devData(t)
	for _, tc := range []struct{ args, pw string }{
		{"admin --data " + dir + " customer add carol", "tty-secret-one"},
		{"admin customer password carol --data " + dir, "tty-secret-two"},
	} {
		out := clitest.OnTTY(t, "Z5D", tc.args, "assword", tc.pw+"\r")
		if !strings.Contains(out, "assword for carol: ") {
			t.Errorf("z5d %s: no prompt in %q", tc.args, out)
		}
		if strings.Contains(out, tc.pw) {
			t.Errorf("z5d %s echoed the password: %q", tc.args, out)
		}
		st, err := provider.OpenStore(t.Context(), config.Dev(dir))
		if err != nil {
			t.Fatal(err)
		}
		c, err := st.CustomerByUsername(t.Context(), "carol")
		st.Close()
		if err != nil {
			t.Fatalf("z5d %s: %v\n%s", tc.args, err, out)
		}
		if ok, err := password.Verify(c.PasswordHash, tc.pw); !ok || err != nil {
			t.Errorf("z5d %s: the typed password does not verify (%v)\n%s", tc.args, err, out)
		}
	}
}

// TestHelpEverywhere: --help works on every command and subcommand, help
// shows only --flag style, and completion and man pages come from the
// same tree.
func TestHelpEverywhere(t *testing.T) {
	clitest.CheckTree(t, newRoot(nil, io.Discard, io.Discard), 20, func(args ...string) (string, error) {
		out, _, err := runZ5d(t, "", args...)
		return out, err
	})
	dir := t.TempDir()
	if _, _, err := runZ5d(t, "", "man", dir); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(filepath.Join(dir, "z5d-admin-customer-unlock.1"))
	if err != nil || !bytes.Contains(page, []byte("clear a customer")) {
		t.Errorf("man page: %v\n%s", err, page)
	}
	out, _, err := runZ5d(t, "", "--version")
	if err != nil || !strings.HasPrefix(out, "z5d ") || !strings.Contains(out, "go1.") {
		t.Errorf("--version: %v %q", err, out)
	}
}

// TestAdminConfigExistingDirCreatesDatabase: with --config, an existing
// data dir without a database is a deployment provisioned before its first
// run (bench/run.sh does this); without --config it is a mistyped --data.
func TestAdminConfigExistingDirCreatesDatabase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runZ5d(t, "", "admin", "--data", dir, "customer", "list"); err == nil || !strings.Contains(err.Error(), "no Z5 database in "+dir) {
		t.Errorf("dev admin on a dir without a database: %v", err)
	}
	cfg := filepath.Join(t.TempDir(), "z5.toml")
	if err := os.WriteFile(cfg, []byte(devstack.Config("Z5 test", dir, "127.0.0.1", "")), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runZ5d(t, "", "admin", "--config", cfg, "customer", "list"); err != nil {
		t.Errorf("admin --config on an existing data dir: %v", err)
	}
}
