package provider

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/z5vrs/z5/internal/config"
)

func TestExposed(t *testing.T) {
	for _, tt := range []struct {
		mode fs.FileMode
		want string // "" = accepted
	}{
		{fs.ModeDir | 0o700, ""},
		{fs.ModeDir | 0o755, "data dir /d has mode 0755, readable by other users (it holds SIP digests that register as the users); refusing to start: run chmod 0700 /d"},
		{fs.ModeDir | 0o750, "run chmod 0700 /d"},
		{fs.ModeDir | 0o701, "has mode 0701"}, // x alone opens known file names
		{fs.ModeDir | 0o500, ""},
		{0o600, ""},
		{0o400, ""},
		{0o644, "database file /d has mode 0644, readable by other users (it holds SIP digests that register as the users); refusing to start: run chmod 0600 /d"},
		{0o640, "run chmod 0600 /d"},
		{0o602, "has mode 0602"},
	} {
		err := exposed("/d", tt.mode)
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v: %v, want accepted", tt.mode, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v: %v, want %q", tt.mode, err, tt.want)
		case tt.want != "" && !errors.Is(err, ErrExposedData):
			t.Errorf("%v: %v is not ErrExposedData", tt.mode, err)
		}
	}
}

func TestReachable(t *testing.T) {
	d := func(m fs.FileMode) fs.FileMode { return fs.ModeDir | m }
	for _, tt := range []struct {
		name string
		dirs []fs.FileMode // nearest first, / last
		want bool
	}{
		{"/var/lib/z5", []fs.FileMode{d(0o755), d(0o755), d(0o755)}, true},
		{"under a 0700 dir (a test's temp dir, a home)", []fs.FileMode{d(0o700), d(0o1777), d(0o755)}, false},
		{"/var/lib/private (DynamicUser)", []fs.FileMode{d(0o700), d(0o755), d(0o755), d(0o755)}, false},
		{"search only", []fs.FileMode{d(0o711), d(0o1777), d(0o755)}, true},
		{"group may search", []fs.FileMode{d(0o750), d(0o755)}, true},
		{"shielded higher up", []fs.FileMode{d(0o755), d(0o700), d(0o755)}, false},
	} {
		if got := reachable(tt.dirs); got != tt.want {
			t.Errorf("%s: reachable %v, want %v", tt.name, got, tt.want)
		}
	}
}

// openParents lets others search every directory above dir, as /var/lib
// does (a test's temp dir sits under a 0700 one).
func openParents(t *testing.T, dir string) {
	t.Helper()
	for p := filepath.Dir(dir); p != filepath.Dir(p) && p != filepath.Clean(os.TempDir()); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	if m, err := parentModes(dir); err != nil || !reachable(m) {
		t.Skipf("%s sits under a directory others cannot search (%v)", dir, err)
	}
}

// TestPrepareDataDir: the check on real files, as `z5d run` makes it
// before opening anything.
func TestPrepareDataDir(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	t.Run("created 0700", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "data")
		if err := PrepareDataDir(config.Dev(dir)); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("created with mode %04o, want 0700", fi.Mode().Perm())
		}
	})
	t.Run("TempDir accepted", func(t *testing.T) {
		if err := PrepareDataDir(config.Dev(t.TempDir())); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("dir 0755 shielded by a 0700 parent", func(t *testing.T) {
		parent := t.TempDir()
		if err := os.Chmod(parent, 0o700); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(parent, "data")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := PrepareDataDir(config.Dev(dir)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("dir 0755 refused", func(t *testing.T) {
		dir := t.TempDir()
		openParents(t, dir)
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		err := PrepareDataDir(config.Dev(dir))
		if !errors.Is(err, ErrExposedData) || !strings.Contains(err.Error(), "run chmod 0700 "+dir) || !strings.Contains(err.Error(), "0755") {
			t.Fatalf("data dir 0755: %v", err)
		}
	})
	for _, f := range []string{"z5.db", "z5.db-wal", "z5.db-shm"} {
		t.Run(f+" 0644 refused", func(t *testing.T) {
			dir := t.TempDir()
			openParents(t, dir)
			if err := os.Chmod(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, f)
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := PrepareDataDir(config.Dev(dir)); err != nil {
				t.Fatalf("0600: %v", err)
			}
			if err := os.Chmod(p, 0o644); err != nil {
				t.Fatal(err)
			}
			err := PrepareDataDir(config.Dev(dir))
			if !errors.Is(err, ErrExposedData) || !strings.Contains(err.Error(), "run chmod 0600 "+p) {
				t.Fatalf("%s 0644: %v", f, err)
			}
		})
	}
	t.Run("postgres: no db file to check", func(t *testing.T) {
		dir := t.TempDir()
		openParents(t, dir)
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "z5.db"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := config.Dev(dir)
		cfg.Store.Driver, cfg.Store.DSN = "postgres", "postgres://x"
		if err := PrepareDataDir(cfg); err != nil {
			t.Fatal(err)
		}
	})
}
