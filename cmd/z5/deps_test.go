package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// serverPackages may not be linked into the client: the server's roles,
// its config and its store, and the TOML decoder only the config reads.
var serverPackages = []string{
	"github.com/z5vrs/z5/internal/config",
	"github.com/z5vrs/z5/internal/store",
	"github.com/z5vrs/z5/internal/sipserver",
	"github.com/z5vrs/z5/internal/relay",
	"github.com/z5vrs/z5/internal/pki",
	"github.com/z5vrs/z5/internal/firewall",
	"github.com/z5vrs/z5/internal/provider",
	"github.com/z5vrs/z5/internal/mcsapi",
	"github.com/z5vrs/z5/internal/zdial",
	"github.com/z5vrs/z5/internal/dnsserver",
	"github.com/BurntSushi/toml",
}

// linkedServerCode lists the packages of deps that are, or are below, a
// server package.
func linkedServerCode(deps []string) []string {
	var out []string
	for _, d := range deps {
		for _, s := range serverPackages {
			if d == s || strings.HasPrefix(d, s+"/") {
				out = append(out, d)
			}
		}
	}
	return out
}

func goListDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// TestLinksNoServerCode: the client binary links none of the server's
// packages. What both ends speak lives in leaf packages (wire/algprobe,
// wire/rtpprobe, portrange, egress, profile, addressbook, license), so a
// server package showing up here is a new edge to cut, not to allow.
func TestLinksNoServerCode(t *testing.T) {
	deps := goListDeps(t, ".")
	if !slices.Contains(deps, "github.com/z5vrs/z5/internal/client") {
		t.Fatalf("go list -deps listed %d packages, internal/client not among them: the check would prove nothing", len(deps))
	}
	for _, d := range linkedServerCode(deps) {
		t.Errorf("cmd/z5 links %s", d)
	}

	// The server binary links them all: the check sees what it looks for.
	if got := linkedServerCode(goListDeps(t, "../z5d")); len(got) < 8 {
		t.Errorf("z5d links only %v: the check does not see server packages", got)
	}
}
