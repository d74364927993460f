// Package devstack describes the dev deployments that end-to-end tests and
// benchmarks start on loopback addresses with the dev names and ports, so
// all of them drive the same provider.
package devstack

import (
	"fmt"
	"strings"
)

// Node is one [[site.node]] of a deployment.
type Node struct {
	Name    string
	Roles   []string
	Address string
	Hosts   []string // the MCS names it answers to; none without the mcs role
}

// Site is one [[site]] of a deployment and its nodes.
type Site struct {
	Name  string
	Nodes []Node
}

// Deployment returns the config (TOML) of provider name with its state in
// dir, the dev names and ports (SIP over TLS on 5061 when sipTLS), and
// sites. extra is TOML inserted before the sites (for example a [relay] or
// [store] table); it may be empty.
func Deployment(name, dir string, sipTLS bool, extra string, sites ...Site) string {
	tlsPort := ""
	if sipTLS {
		tlsPort = "sip_tls = 5061\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `data_dir = %q

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
%srtp = "20000-20999"
metrics = 9090

[dns]
zones = ["z5.test"]
%s`, dir, name, tlsPort, extra)
	for _, s := range sites {
		fmt.Fprintf(&b, "\n[[site]]\nname = %q\n", s.Name)
		for _, n := range s.Nodes {
			fmt.Fprintf(&b, "\n[[site.node]]\nname = %q\nroles = %s\naddress = %q\n", n.Name, list(n.Roles), n.Address)
			if len(n.Hosts) > 0 {
				fmt.Fprintf(&b, "hosts = %s\n", list(n.Hosts))
			}
		}
	}
	return b.String()
}

// list writes ss as a TOML array of strings.
func list(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

// Config returns the deployment config (TOML) of provider name: node n1 of
// site a on ip with every role of a small provider (DNS, ZDial, MCS) and
// SIP over TLS, its state in dir. extra is as for Deployment.
func Config(name, dir, ip, extra string) string {
	return Deployment(name, dir, true, extra, Site{Name: "a", Nodes: []Node{{
		Name: "n1", Roles: []string{"dns", "zdial", "mcs"}, Address: ip,
		Hosts: []string{"mcs1.mcs.z5.test", "mcs2.mcs.z5.test"},
	}}})
}
