// Package devstack describes the one-node deployment that end-to-end tests
// and benchmarks start on a single loopback address with the dev ports, so
// both drive the same provider.
package devstack

import "fmt"

// Config returns the deployment config (TOML) of provider name: node n1 of
// site a on ip with every role of a small provider (DNS, ZDial, MCS), its
// state in dir. extra is TOML inserted before the sites (for example a
// [relay] or [sip] table); it may be empty.
func Config(name, dir, ip, extra string) string {
	return fmt.Sprintf(`data_dir = %q

[provider]
name = %q

[names]
zdial = "zdial.z5.test"
lb_mcs = "lb.mcs.z5.test"
sip_domain = "mcs.z5.test"

[ports]
dns = 5353
zdial_https = 8443
mcs_https = 9443
sip = 5060
sip_tls = 5061
rtp = "20000-20999"
metrics = 9090

[dns]
zones = ["z5.test"]
%s
[[site]]
name = "a"

[[site.node]]
name = "n1"
roles = ["dns", "zdial", "mcs"]
address = %q
hosts = ["mcs1.mcs.z5.test", "mcs2.mcs.z5.test"]
`, dir, name, extra, ip)
}
