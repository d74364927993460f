// Package egress names the groups of the outbound rule list the provider
// gives a customer's network admin. internal/firewall derives the list
// from the deployment and `z5 check` (internal/netcheck) derives it from
// the provider profile; both label rules with these names, so what the
// check reports is a line of the list the admin was given.
package egress

// Groups, in the seed's order and spelling; they head the seed's formal list.
const (
	GroupNaming = "Naming"
	GroupZDial  = "ZDial"
	GroupMCS    = "MCS license and address-book"
	GroupSIP    = "SIP"
	GroupRTP    = "RTP"
)
