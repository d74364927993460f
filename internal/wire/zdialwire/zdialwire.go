// Package zdialwire holds the parts of the ZDial API's JSON that both ends
// keep: the SIP credentials a number selection hands out, which the ZDial
// server writes and the client stores as it received them. One type, so
// the two cannot drift apart; the rest of the API is docs/api-zdial.md.
package zdialwire

// SIPCreds are the "sip" object of a number selection's answer: the SIP
// account and where to register it.
type SIPCreds struct {
	Username  string   `json:"username"`
	Password  string   `json:"password"`
	Realm     string   `json:"realm"`
	Domain    string   `json:"domain"`
	Hosts     []string `json:"hosts"` // the MCS names, in order of preference
	LB        string   `json:"lb"`    // the name resolving to every live MCS
	Port      int      `json:"port"`
	Transport string   `json:"transport"`
}
