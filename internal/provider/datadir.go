package provider

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/z5vrs/z5/internal/config"
)

// ErrExposedData: the data dir or the database can be read by users other
// than the one z5d runs as. The database holds the HA1 digests, and an HA1
// registers as its user just as the password does.
var ErrExposedData = errors.New("readable by other users")

// PrepareDataDir creates cfg.DataDir (mode 0700) when it does not exist and
// refuses a data dir that other users can enter, or a SQLite database (and
// its -wal/-shm files) they could read, naming the chmod that fixes it. A
// directory above the data dir that lets no one else through (a 0700 home
// or test dir, /var/lib/private under systemd's DynamicUser) shields it
// all; the data dir itself does not shield the database, which must be
// owner-only in its own right, so that one wrong chmod exposes nothing.
func PrepareDataDir(cfg *config.Config) error {
	if cfg.DataDir == "" {
		return errors.New("data dir: not set")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if runtime.GOOS == "windows" {
		return nil // no Unix permission bits to check
	}
	paths := []string{cfg.DataDir}
	if cfg.Store.Driver == "sqlite" {
		db := cfg.Store.Path
		if !filepath.IsAbs(db) {
			db = filepath.Join(cfg.DataDir, db)
		}
		paths = append(paths, db, db+"-wal", db+"-shm")
	}
	var errs []error
	for _, p := range paths {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) && p != cfg.DataDir {
			continue // created later, owner-only
		}
		if err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		if exposed(p, fi.Mode()) == nil {
			continue
		}
		above, err := parentModes(p)
		if err != nil {
			return fmt.Errorf("data dir: %w", err)
		}
		if !fi.IsDir() && len(above) > 0 {
			above = above[1:] // the file's own directory, see above
		}
		if reachable(above) {
			errs = append(errs, exposed(p, fi.Mode()))
		}
	}
	return errors.Join(errs...)
}

// parentModes is the mode of every directory above path, once symlinks are
// resolved: the ones a lookup of path really passes through.
func parentModes(path string) ([]fs.FileMode, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, err
	}
	if real, err = filepath.Abs(real); err != nil {
		return nil, err
	}
	var modes []fs.FileMode
	for d := filepath.Dir(real); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return nil, err
		}
		modes = append(modes, fi.Mode())
		if d == filepath.Dir(d) {
			return modes, nil
		}
	}
}

// reachable reports whether users other than the owner may pass every
// directory in dirs (the ones above a path): each must let group or others
// search it. Any group bit counts, since the group may hold anyone.
func reachable(dirs []fs.FileMode) bool {
	for _, m := range dirs {
		if m.Perm()&0o011 == 0 {
			return false
		}
	}
	return true
}

// exposed reports a data dir or database file whose mode gives group or
// others any access. A directory needs only its x bit for others to open a
// file inside it by name, so every group/other bit counts, not just r.
func exposed(path string, mode fs.FileMode) error {
	perm := mode.Perm()
	if perm&0o077 == 0 {
		return nil
	}
	what, want := "database file", fs.FileMode(0o600)
	if mode.IsDir() {
		what, want = "data dir", 0o700
	}
	return fmt.Errorf("%s %s has mode %04o, %w (it holds SIP digests that register as the users); refusing to start: run chmod %04o %s",
		what, path, perm, ErrExposedData, want, path)
}
