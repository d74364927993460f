package sqlstore

import (
	"testing"
	"testing/fstest"
)

func TestLoadMigrations(t *testing.T) {
	for name, fsys := range map[string]fstest.MapFS{
		"no number":      {"migrations/init.sql": {}},
		"zero":           {"migrations/0000_init.sql": {}},
		"shared version": {"migrations/0001_a.sql": {}, "migrations/001_b.sql": {}},
	} {
		if _, err := LoadMigrations(fsys); err == nil {
			t.Errorf("%s: LoadMigrations accepted it", name)
		}
	}
	ms, err := LoadMigrations(fstest.MapFS{"migrations/0010_b.sql": {}, "migrations/0002_a.sql": {}})
	if err != nil || len(ms) != 2 || ms[0].Version != 2 || ms[1].Version != 10 {
		t.Errorf("LoadMigrations order: %+v, %v", ms, err)
	}
}
