package zdialwire

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSIPCredsJSON pins the field names of docs/api-zdial.md: a renamed
// tag would break every client already installed.
func TestSIPCredsJSON(t *testing.T) {
	in := `{"username":"u","password":"p","realm":"r","domain":"d","hosts":["mcs1","mcs2"],"lb":"lb","port":5060,"transport":"tcp"}`
	var c SIPCreds
	if err := json.Unmarshal([]byte(in), &c); err != nil {
		t.Fatal(err)
	}
	want := SIPCreds{Username: "u", Password: "p", Realm: "r", Domain: "d", Hosts: []string{"mcs1", "mcs2"}, LB: "lb", Port: 5060, Transport: "tcp"}
	if d := cmp.Diff(want, c); d != "" {
		t.Errorf("decoded (-want +got):\n%s", d)
	}
	out, err := json.Marshal(c)
	if err != nil || string(out) != in {
		t.Errorf("encoded %s %v, want %s", out, err, in)
	}
}
