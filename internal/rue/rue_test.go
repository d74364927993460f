package rue

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/z5vrs/z5/internal/license"
	"github.com/z5vrs/z5/internal/pki"
	"github.com/z5vrs/z5/internal/profile"
)

// devProfile names what the dev stack runs: an MCS port other than 443;
// one MCS name is listed twice, and the document names it once.
func devProfile() *profile.Profile {
	return &profile.Profile{
		Version:  1,
		Provider: "Z5 dev",
		Names: profile.Names{ZDial: "zdial.z5.test", LBMCS: "lb.mcs.z5.test", SIPDomain: "mcs.z5.test",
			MCS: []string{"mcs1.mcs.z5.test", "mcs2.mcs.z5.test", "mcs1.mcs.z5.test"}},
		Ports: profile.Ports{ZDialHTTPS: 8443, MCSHTTPS: 9443, SIP: 5060, RTP: "10000-10999"},
	}
}

// The document for a profile, in the spelling we write. (The seed's
// deployment, from its config, is internal/provider's golden test.)
func TestForProfile(t *testing.T) {
	p := devProfile()
	c := ForProfile(p).ForSubscriber("2025550100", "Alice Smith")
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	want := `{
  "version": 1,
  "lifetime": 86400,
  "providerEntryPoint": "https://lb.mcs.z5.test:9443/rue/v1/config",
  "provider-domain": "mcs.z5.test",
  "display-name": "Alice Smith",
  "phone-number": "+12025550100",
  "outbound-proxies": [
    "sip:lb.mcs.z5.test:5060;transport=tcp;lr",
    "sip:mcs1.mcs.z5.test:5060;transport=tcp;lr",
    "sip:mcs2.mcs.z5.test:5060;transport=tcp;lr"
  ],
  "ice-servers": [],
  "contacts": "https://lb.mcs.z5.test:9443/api/v1/contacts.xml",
  "carddav": "2025550100@lb.mcs.z5.test:9443",
  "sendLocationWithRegistration": false
}`
	if d := cmp.Diff(want, string(b)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(c, back); d != "" {
		t.Errorf("Parse(Marshal) (-want +got):\n%s", d)
	}

	// The provider-level copy has no subscriber.
	dev := ForProfile(p)
	if dev.PhoneNumber != "" || dev.CardDAV != "" || dev.Z5 != nil {
		t.Errorf("dev: %+v", dev)
	}
	l, _ := json.Marshal(dev.Providers("Z5 dev"))
	if string(l) != `{"version":1,"providers":[{"name":"Z5 dev","providerEntryPoint":"https://lb.mcs.z5.test:9443/rue/v1/config"}]}` {
		t.Errorf("provider list %s", l)
	}

	// On 443 the URLs name no port.
	p.Ports.MCSHTTPS = 443
	if got := BaseURL(p); got != "https://lb.mcs.z5.test" {
		t.Errorf("BaseURL on 443: %q", got)
	}
}

// The profile travels as the "z5" extension, so a Z5 client can log in
// from this one document.
func TestZ5Extension(t *testing.T) {
	ca, err := pki.LoadOrCreateCA(t.TempDir(), "Z5 test")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _ := ed25519.GenerateKey(rand.Reader)
	p := devProfile()
	p.Nameservers = []string{"127.0.0.1:5353"}
	p.CAPEM = string(ca.CertPEM())
	p.LicenseKeys = []string{license.EncodePublicKey(pub)}
	c := ForProfile(p)
	c.Z5 = p
	b, _ := json.Marshal(c) // a Config always marshals: Parse below would fail
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(p, got.Z5); d != "" {
		t.Errorf("z5 extension (-want +got):\n%s", d)
	}
}

// Documents spelled as RFC 9248's prose and examples spell keys, and as
// its schema does; Parse reads them all to the same Config.
func TestParseSpellings(t *testing.T) {
	want := &Config{
		Version: 1, Lifetime: 3600 * time.Second, ProviderEntryPoint: "https://red.example.net/rue",
		ProviderDomain: "red.example.net", DisplayName: "Alice", PhoneNumber: "+18135551212",
		OutboundProxies: []string{"sips:proxy.red.example.net"}, ICEServers: []string{"stun:stun.red.example.net", "turn:turn.red.example.net"},
		Contacts: "https://red.example.net/contacts", CardDAV: "alice@red.example.net", MWI: "sip:+18135551212@red.example.net",
		Videomail: "sip:+18135551212@vm.red.example.net", SendLocationWithRegistration: true,
		DialAround: []DialAround{{Language: "ase", FrontDoor: "sip:fd@red.example.net", OneStage: "sip:os@red.example.net"}},
	}
	tests := map[string]string{
		"kebab, as the prose": `{
  "version": 1, "lifetime": 3600, "entryPoint": "https://red.example.net/rue",
  "display-name": "Alice", "phone-number": "+18135551212", "provider-domain": "red.example.net",
  "outbound-proxy": "sips:proxy.red.example.net",
  "mwi": "sip:+18135551212@red.example.net", "videomail": "sip:+18135551212@vm.red.example.net",
  "contacts": "https://red.example.net/contacts", "carddav": "alice@red.example.net",
  "sendLocationWithRegistration": true,
  "ice-servers": [{"stun": "stun.red.example.net"}, {"turn": "turn:turn.red.example.net"}],
  "dial-around": [{"language": "ase", "front-door": "sip:fd@red.example.net", "oneStage": "sip:os@red.example.net"}]
}`,
		"camel, as a schema": `{
  "version": 1, "lifetime": 3600, "providerEntryPoint": "https://red.example.net/rue",
  "displayName": "Alice", "phoneNumbers": [{"phoneNumber": "+18135551212"}], "providerDomain": "red.example.net",
  "outboundProxies": ["sips:proxy.red.example.net"],
  "MWI": "sip:+18135551212@red.example.net", "Videomail": "sip:+18135551212@vm.red.example.net",
  "contacts": "https://red.example.net/contacts", "cardDav": {"username": "alice", "domain": "red.example.net"},
  "send_location_with_registration": true,
  "iceServers": [{"urls": ["stun:stun.red.example.net", "turn:turn.red.example.net"]}],
  "dialAround": [{"Language": "ase", "frontDoor": "sip:fd@red.example.net", "one-stage": "sip:os@red.example.net"}],
  "someFutureKey": {"ignored": true}
}`,
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := Parse([]byte(in))
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}

	l, err := ParseProviderList([]byte(`{"providers": [{"name": "Red", "entryPoint": "https://red.example.net/rue"}, {"name": "Blue", "providerEntryPoint": "https://blue.example.net/rue"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(&ProviderList{Version: 1, Providers: []Provider{{"Red", "https://red.example.net/rue"}, {"Blue", "https://blue.example.net/rue"}}}, l); d != "" {
		t.Errorf("provider list (-want +got):\n%s", d)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		in, want string
		target   error
	}{
		{`[]`, "invalid rue configuration: document: want a JSON object, not a JSON array", ErrInvalid},
		{`{"version": 1,`, "invalid rue configuration: document: malformed JSON at byte 14: unexpected end of JSON input", ErrInvalid},
		{`null`, "invalid rue configuration: document: want a JSON object, not null", ErrInvalid},
		{`{}`, "invalid rue configuration: version: missing", ErrInvalid},
		{`{"version": 2}`, "unsupported rue configuration version: version 2, this reader knows 1", ErrVersion},
		{`{"version": 1}`, "invalid rue configuration: provider-domain: missing: a RUE needs the SIP domain or an outbound proxy to register", ErrInvalid},
		{`{"version": 1, "provider-domain": "x.example", "providerDomain": "y.example"}`, `invalid rue configuration: document: key "providerDomain" given twice (in two spellings?)`, ErrInvalid},
		{`{"version": 1, "provider-domain": "bad domain"}`, `invalid rue configuration: provider-domain: "bad domain" is not a domain name`, ErrInvalid},
		{`{"version": 1, "provider-domain": "x.example", "outbound-proxies": ["http://x"], "lifetime": -1, "contacts": "http://x/c", "phone-number": "2025550100", "carddav": "nobody", "ice-servers": ["x"]}`,
			"invalid rue configuration: lifetime: want seconds (0 to ten years)", ErrInvalid},
		{`{"version": 1, "provider-domain": "x.example", "outbound-proxies": ["http://x"], "contacts": "http://x/c", "phone-number": "2025550100", "carddav": "nobody", "ice-servers": ["x"]}`,
			`invalid rue configuration: outbound-proxies[0]: "http://x" is not a sip: or sips: URI` + "\n" +
				`invalid rue configuration: ice-servers[0]: "x" is not a stun:, stuns:, turn: or turns: URI` + "\n" +
				`invalid rue configuration: contacts: "http://x/c" is not an https:// URL` + "\n" +
				`invalid rue configuration: phone-number: "2025550100" is not an E.164 number (+12025550123)` + "\n" +
				`invalid rue configuration: carddav: "nobody" is not user@host`, ErrInvalid},
		{`{"version": 1, "provider-domain": "x.example", "outbound-proxies": 5}`, "invalid rue configuration: outboundproxies: want a string or a list of strings", ErrInvalid},
		{`{"version": 1, "provider-domain": "x.example", "dial-around": [{"language": "ase"}]}`, "invalid rue configuration: dial-around[0]: needs front-door or oneStage", ErrInvalid},
	}
	for _, tt := range tests {
		_, err := Parse([]byte(tt.in))
		if err == nil {
			t.Errorf("Parse(%s): no error, want %q", tt.in, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("Parse(%s):\n got %q\nwant %q", tt.in, err, tt.want)
		}
		if !errors.Is(err, tt.target) {
			t.Errorf("Parse(%s): errors.Is(%v) false", tt.in, tt.target)
		}
	}
	if _, err := Parse([]byte(strings.Repeat(" ", MaxDocument+1))); !errors.Is(err, ErrInvalid) {
		t.Errorf("huge document: %v", err)
	}
	if _, err := ParseProviderList([]byte(`{"providers": [{"name": "x", "entryPoint": "ftp://x"}]}`)); err == nil {
		t.Error("provider list with an ftp entry point accepted")
	}
}

// FuzzParse: any input gives a Config or an error, never a panic; a Config
// accepted survives our own writing and reading.
func FuzzParse(f *testing.F) {
	b, _ := json.Marshal(ForProfile(devProfile()).ForSubscriber("2025550100", "A"))
	f.Add(string(b))
	f.Add(`{"version":1,"provider-domain":"x.example","ice-servers":[{"stun":"s"},{"urls":"turn:t"}],"phoneNumbers":["+12025550100"],"carddav":{"url":"https://h:1/"}}`)
	f.Add(`{"version":1,"providerDomain":"x","dial-around":[{"oneStage":"sip:a@b"}],"z5":{}}`)
	f.Fuzz(func(t *testing.T, in string) {
		c, err := Parse([]byte(in))
		if err != nil {
			return
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(b)
		if err != nil {
			t.Fatalf("re-parse of our own output: %v\n%s", err, b)
		}
		if d := cmp.Diff(c, again); d != "" {
			t.Fatalf("write/read changed the config (-first +again):\n%s", d)
		}
	})
}
