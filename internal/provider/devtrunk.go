package provider

import (
	"log/slog"

	"github.com/z5vrs/z5/internal/config"
	"github.com/z5vrs/z5/internal/pstnpeer"
)

// DevTrunkPeer builds the built-in telephone network of the dev stack
// (`z5d run --dev`, `z5d demo`) at the trunk's address: it answers any
// number, 911 included, with audio, and places inbound calls. nil when the
// config has no trunk or one over TLS (the peer speaks TCP only). Never
// used for a deployment's config: production trunks are real carriers.
func DevTrunkPeer(cfg *config.Config, log *slog.Logger) (*pstnpeer.Peer, error) {
	if cfg.Trunk.Address == "" {
		return nil, nil
	}
	u, err := config.ParseTrunkURI(cfg.Trunk.Address)
	if err != nil || u.Transport != "tcp" {
		return nil, err
	}
	return pstnpeer.New(pstnpeer.Config{Addr: u.Host.String(), Log: log.With("component", "telephone-network")})
}
