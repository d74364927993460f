package config

import _ "embed"

//go:embed dev.toml
var devTOML []byte

// Dev returns the built-in loopback deployment used by `z5d run --dev` and
// `z5d demo`, storing its state in dataDir.
func Dev(dataDir string) *Config {
	c, err := Parse("(dev)", devTOML)
	if err != nil {
		panic("config: built-in dev config is invalid: " + err.Error()) // a build defect, caught by tests
	}
	c.DataDir = dataDir
	return c
}

// DevNode is the name of the single node of the dev deployment.
const DevNode = "dev"
