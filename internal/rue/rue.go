// Package rue is the provider configuration of RFC 9248 section 9 (the
// Relay User Equipment profile): the JSON document a standard RUE fetches
// over HTTPS to learn where to register (SIP domain and outbound proxies),
// which STUN/TURN servers to use, where its contacts live (CardDAV and the
// xCard export of section 7) and, once it has logged in, which phone number
// it is. We build it from the provider profile, itself built from the
// deployment config, so it always names what the servers actually run;
// Parse reads one back, ours or another provider's.
//
// Key spellings. RFC 9248's examples and its OpenAPI schema do not always
// spell a key the same way (the provider list's example has "entryPoint",
// the schema "providerEntryPoint"), and the RFC says the schema wins. We
// write one spelling per key (see Config.MarshalJSON) and Parse accepts
// every spelling we know of, in any case and with '-', '_' or no
// separator: "outbound-proxies", "outboundProxies" and "outbound_proxies"
// are one key. docs/rfc9248.md lists what we implement and what not.
package rue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/z5vrs/z5/internal/clip"
	"github.com/z5vrs/z5/internal/profile"
)

// Version is the configuration format version we write and read.
const Version = 1

// Paths on the MCS HTTPS API.
const (
	PathConfig    = "/rue/v1/config"
	PathProviders = "/rue/v1/providers"
)

// DefaultLifetime is how long a RUE may cache the configuration.
const DefaultLifetime = 24 * time.Hour

// Config is one provider configuration document. The subscriber fields
// (PhoneNumber, DisplayName, CardDAV) are set only in the copy served to a
// logged-in RUE.
type Config struct {
	Version int
	// Lifetime is how long the RUE may cache the document.
	Lifetime time.Duration
	// ProviderEntryPoint is the HTTPS URL this document is served at.
	ProviderEntryPoint string
	// ProviderDomain is the SIP domain the RUE registers in.
	ProviderDomain string
	// OutboundProxies are SIP URIs of the proxies to send requests to, in
	// order of preference.
	OutboundProxies []string
	// ICEServers are stun:/turn: URIs (RFC 7064, RFC 7065); none means
	// media goes to the provider's relay directly.
	ICEServers []string
	// Contacts is the HTTPS URL of the contact list's xCard export and
	// import (RFC 9248 section 7.2).
	Contacts string
	// CardDAV is "user@host[:port]" of the subscriber's CardDAV account
	// (RFC 9248 section 7.1); discovery starts at the host's
	// /.well-known/carddav (RFC 6764).
	CardDAV string
	// MWI is the SIP URI to subscribe to for message-summary events.
	MWI string
	// Videomail is the SIP URI that plays videomail.
	Videomail string
	// SendLocationWithRegistration asks for a Geolocation header in
	// REGISTER.
	SendLocationWithRegistration bool
	// DialAround lists the providers a call can be placed through.
	DialAround []DialAround
	// DisplayName and PhoneNumber (E.164) identify the subscriber.
	DisplayName string
	PhoneNumber string
	// Z5 is our extension: the provider profile (nameservers, CA, license
	// keys) a Z5 client needs besides what the RFC defines. Other RUEs
	// ignore it.
	Z5 *profile.Profile
}

// DialAround is one provider a RUE can place a relay call through.
type DialAround struct {
	Language  string // BCP 47, e.g. "ase" (American Sign Language)
	FrontDoor string // SIP URI for two-stage dial-around
	OneStage  string // SIP URI for one-stage dial-around
}

// ProviderList is the list of providers a RUE chooses from (RFC 9248
// section 9.1).
type ProviderList struct {
	Version   int
	Providers []Provider
}

// Provider is one entry of a ProviderList.
type Provider struct {
	Name       string
	EntryPoint string // HTTPS URL of the provider's configuration
}

// BaseURL is the MCS HTTPS API's base URL of profile p: the load-balanced
// MCS name, with the port when it is not 443.
func BaseURL(p *profile.Profile) string {
	host := p.Names.LBMCS
	if p.Ports.MCSHTTPS != 443 {
		host = net.JoinHostPort(host, strconv.Itoa(p.Ports.MCSHTTPS))
	}
	return "https://" + host
}

// ForProfile builds the provider-level document from the names and ports
// of profile p: the load-balanced MCS first among the outbound proxies,
// then every MCS node in failover order. Set Z5 to p to carry the profile
// itself as the "z5" extension.
func ForProfile(p *profile.Profile) *Config {
	base := BaseURL(p)
	proxy := func(host string) string {
		return "sip:" + net.JoinHostPort(host, strconv.Itoa(p.Ports.SIP)) + ";transport=tcp;lr"
	}
	out := &Config{
		Version:            Version,
		Lifetime:           DefaultLifetime,
		ProviderEntryPoint: base + PathConfig,
		ProviderDomain:     p.Names.SIPDomain,
		OutboundProxies:    []string{proxy(p.Names.LBMCS)},
		ICEServers:         []string{}, // all media is relayed by the MCS: no STUN or TURN
		Contacts:           base + "/api/v1/contacts.xml",
	}
	for _, h := range p.Names.MCS {
		if px := proxy(h); !slices.Contains(out.OutboundProxies, px) {
			out.OutboundProxies = append(out.OutboundProxies, px)
		}
	}
	return out
}

// ForSubscriber is a copy of c for one logged-in number (10 digits).
func (c *Config) ForSubscriber(number, displayName string) *Config {
	out := *c
	out.OutboundProxies = slices.Clone(c.OutboundProxies)
	out.ICEServers = slices.Clone(c.ICEServers)
	out.DialAround = slices.Clone(c.DialAround)
	out.PhoneNumber = "+1" + number
	out.DisplayName = displayName
	if u, err := url.Parse(c.ProviderEntryPoint); err == nil && u.Host != "" {
		out.CardDAV = number + "@" + u.Host
	}
	return &out
}

// Providers is the provider list naming this deployment alone.
func (c *Config) Providers(name string) *ProviderList {
	return &ProviderList{Version: Version, Providers: []Provider{{Name: name, EntryPoint: c.ProviderEntryPoint}}}
}

// Wire forms. These spellings are what we write.

type configJSON struct {
	Version                      int              `json:"version"`
	Lifetime                     int64            `json:"lifetime"`
	ProviderEntryPoint           string           `json:"providerEntryPoint,omitempty"`
	ProviderDomain               string           `json:"provider-domain"`
	DisplayName                  string           `json:"display-name,omitempty"`
	PhoneNumber                  string           `json:"phone-number,omitempty"`
	OutboundProxies              []string         `json:"outbound-proxies"`
	ICEServers                   []string         `json:"ice-servers"`
	Contacts                     string           `json:"contacts,omitempty"`
	CardDAV                      string           `json:"carddav,omitempty"`
	MWI                          string           `json:"mwi,omitempty"`
	Videomail                    string           `json:"videomail,omitempty"`
	SendLocationWithRegistration bool             `json:"sendLocationWithRegistration"`
	DialAround                   []dialAroundJSON `json:"dial-around,omitempty"`
	Z5                           *profile.Profile `json:"z5,omitempty"`
}

type dialAroundJSON struct {
	Language  string `json:"language"`
	FrontDoor string `json:"front-door,omitempty"`
	OneStage  string `json:"oneStage,omitempty"`
}

type providerListJSON struct {
	Version   int            `json:"version"`
	Providers []providerJSON `json:"providers"`
}

type providerJSON struct {
	Name       string `json:"name"`
	EntryPoint string `json:"providerEntryPoint"`
}

// MarshalJSON writes the document.
func (c *Config) MarshalJSON() ([]byte, error) {
	out := configJSON{
		Version: c.Version, Lifetime: int64(c.Lifetime / time.Second), ProviderEntryPoint: c.ProviderEntryPoint,
		ProviderDomain: c.ProviderDomain, DisplayName: c.DisplayName, PhoneNumber: c.PhoneNumber,
		OutboundProxies: c.OutboundProxies, ICEServers: c.ICEServers, Contacts: c.Contacts, CardDAV: c.CardDAV,
		MWI: c.MWI, Videomail: c.Videomail, SendLocationWithRegistration: c.SendLocationWithRegistration, Z5: c.Z5,
	}
	if out.OutboundProxies == nil {
		out.OutboundProxies = []string{}
	}
	if out.ICEServers == nil {
		out.ICEServers = []string{}
	}
	for _, d := range c.DialAround {
		out.DialAround = append(out.DialAround, dialAroundJSON(d))
	}
	return json.Marshal(out)
}

// MarshalJSON writes the list.
func (l *ProviderList) MarshalJSON() ([]byte, error) {
	out := providerListJSON{Version: l.Version, Providers: []providerJSON{}}
	for _, p := range l.Providers {
		out.Providers = append(out.Providers, providerJSON(p))
	}
	return json.Marshal(out)
}

// MaxDocument bounds what Parse reads: real documents are a few KiB.
const MaxDocument = 1 << 20

// Errors callers branch on.
var (
	// ErrVersion: the document is of a format version we do not read.
	ErrVersion = errors.New("unsupported rue configuration version")
	// ErrInvalid: the document is not a valid configuration.
	ErrInvalid = errors.New("invalid rue configuration")
)

// normKey folds the spellings of a key into one: "outbound-proxies",
// "outboundProxies" and "OUTBOUND_PROXIES" are all "outboundproxies".
func normKey(k string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '-' || r == '_' || r == ' ':
			return -1
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return r
	}, k)
}

// object is a decoded JSON object with its keys normalized.
type object map[string]json.RawMessage

func decodeObject(b []byte, where string) (object, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("%w: %s: %s", ErrInvalid, where, jsonMsg(err))
	}
	if raw == nil {
		return nil, fmt.Errorf("%w: %s: want a JSON object, not null", ErrInvalid, where)
	}
	o := make(object, len(raw))
	// Sorted, so which of two clashing spellings the error names does not
	// depend on map order.
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		v := raw[k]
		n := normKey(k)
		if _, dup := o[n]; dup {
			return nil, fmt.Errorf("%w: %s: key %q given twice (in two spellings?)", ErrInvalid, where, clip.String(k, 80))
		}
		o[n] = v
	}
	return o, nil
}

func jsonMsg(err error) string {
	if se, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("malformed JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	}
	if te, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Sprintf("want a JSON object, not a JSON %s", te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

// take returns the value of the first of keys present (normalized names).
func (o object) take(keys ...string) (json.RawMessage, string, bool) {
	for _, k := range keys {
		if v, ok := o[k]; ok && !bytes.Equal(bytes.TrimSpace(v), []byte("null")) {
			return v, k, true
		}
	}
	return nil, "", false
}

func (o object) str(where string, keys ...string) (string, error) {
	v, k, ok := o.take(keys...)
	if !ok {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("%w: %s%s: want a string", ErrInvalid, where, k)
	}
	return strings.TrimSpace(s), nil
}

// strs reads a string or a list of strings.
func (o object) strs(where string, keys ...string) ([]string, error) {
	v, k, ok := o.take(keys...)
	if !ok {
		return nil, nil
	}
	var one string
	if json.Unmarshal(v, &one) == nil {
		return []string{strings.TrimSpace(one)}, nil
	}
	var many []string
	if err := json.Unmarshal(v, &many); err != nil {
		return nil, fmt.Errorf("%w: %s%s: want a string or a list of strings", ErrInvalid, where, k)
	}
	for i := range many {
		many[i] = strings.TrimSpace(many[i])
	}
	return many, nil
}

// Parse reads a provider configuration document, ours or another
// provider's, in any of the key spellings RFC 9248's text and schema use
// (see the package comment). Unknown keys are ignored, as a newer minor
// revision may add optional ones; what is there must be well-formed.
func Parse(b []byte) (*Config, error) {
	if len(b) > MaxDocument {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalid, len(b), MaxDocument)
	}
	o, err := decodeObject(b, "document")
	if err != nil {
		return nil, err
	}
	c := &Config{}
	var errs []error
	add := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}

	v, _, ok := o.take("version")
	if !ok {
		return nil, fmt.Errorf("%w: version: missing", ErrInvalid)
	}
	if err := json.Unmarshal(v, &c.Version); err != nil {
		return nil, fmt.Errorf("%w: version: want a whole number", ErrInvalid)
	}
	if c.Version != Version {
		return nil, fmt.Errorf("%w: version %d, this reader knows %d", ErrVersion, c.Version, Version)
	}
	if v, _, ok := o.take("lifetime"); ok {
		var secs float64
		if err := json.Unmarshal(v, &secs); err != nil || secs < 0 || secs > 10*365*86400 {
			add(fmt.Errorf("%w: lifetime: want seconds (0 to ten years)", ErrInvalid))
		} else {
			c.Lifetime = time.Duration(secs * float64(time.Second))
		}
	}
	var e error
	c.ProviderEntryPoint, e = o.str("", "providerentrypoint", "entrypoint")
	add(e)
	c.ProviderDomain, e = o.str("", "providerdomain")
	add(e)
	c.DisplayName, e = o.str("", "displayname")
	add(e)
	c.Contacts, e = o.str("", "contacts", "contactsuri", "contactsurl")
	add(e)
	c.MWI, e = o.str("", "mwi")
	add(e)
	c.Videomail, e = o.str("", "videomail")
	add(e)
	c.OutboundProxies, e = o.strs("", "outboundproxies", "outboundproxy")
	add(e)
	c.PhoneNumber, e = phoneNumber(o)
	add(e)
	c.CardDAV, e = cardDAV(o)
	add(e)
	c.ICEServers, e = iceServers(o)
	add(e)
	if v, k, ok := o.take("sendlocationwithregistration"); ok {
		if err := json.Unmarshal(v, &c.SendLocationWithRegistration); err != nil {
			add(fmt.Errorf("%w: %s: want true or false", ErrInvalid, k))
		}
	}
	c.DialAround, e = dialAround(o)
	add(e)
	if v, _, ok := o.take("z5"); ok {
		var p profile.Profile
		if err := json.Unmarshal(v, &p); err != nil {
			add(fmt.Errorf("%w: z5: %s", ErrInvalid, jsonMsg(err)))
		} else if err := p.Validate(); err != nil {
			add(fmt.Errorf("%w: z5: %v", ErrInvalid, err))
		} else {
			c.Z5 = &p
		}
	}
	// Absent lists read as empty ones, as we write them.
	if c.OutboundProxies == nil {
		c.OutboundProxies = []string{}
	}
	if c.ICEServers == nil {
		c.ICEServers = []string{}
	}
	if len(errs) == 0 {
		errs = c.validate()
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// validate checks the values RUEs act on.
func (c *Config) validate() []error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s: %s", ErrInvalid, key, fmt.Sprintf(format, args...)))
	}
	httpsURL := func(key, v string) {
		if v == "" {
			return
		}
		u, err := url.Parse(v)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			bad(key, "%q is not an https:// URL", clip.String(v, 80))
		}
	}
	if c.ProviderDomain == "" && len(c.OutboundProxies) == 0 && c.Z5 == nil {
		bad("provider-domain", "missing: a RUE needs the SIP domain or an outbound proxy to register")
	}
	if c.ProviderDomain != "" && !validHost(c.ProviderDomain) {
		bad("provider-domain", "%q is not a domain name", clip.String(c.ProviderDomain, 80))
	}
	for i, p := range c.OutboundProxies {
		if !sipURI(p) {
			bad(fmt.Sprintf("outbound-proxies[%d]", i), "%q is not a sip: or sips: URI", clip.String(p, 80))
		}
	}
	for i, s := range c.ICEServers {
		if !strings.HasPrefix(s, "stun:") && !strings.HasPrefix(s, "stuns:") && !strings.HasPrefix(s, "turn:") && !strings.HasPrefix(s, "turns:") {
			bad(fmt.Sprintf("ice-servers[%d]", i), "%q is not a stun:, stuns:, turn: or turns: URI", clip.String(s, 80))
		}
	}
	httpsURL("providerEntryPoint", c.ProviderEntryPoint)
	httpsURL("contacts", c.Contacts)
	for key, v := range map[string]string{"mwi": c.MWI, "videomail": c.Videomail} {
		if v != "" && !sipURI(v) {
			bad(key, "%q is not a sip: or sips: URI", clip.String(v, 80))
		}
	}
	if c.PhoneNumber != "" && !e164(c.PhoneNumber) {
		bad("phone-number", "%q is not an E.164 number (+12025550123)", clip.String(c.PhoneNumber, 80))
	}
	if c.CardDAV != "" {
		user, host, ok := strings.Cut(c.CardDAV, "@")
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !ok || user == "" || !validHost(host) {
			bad("carddav", "%q is not user@host", clip.String(c.CardDAV, 80))
		}
	}
	for i, d := range c.DialAround {
		if d.FrontDoor == "" && d.OneStage == "" {
			bad(fmt.Sprintf("dial-around[%d]", i), "needs front-door or oneStage")
		}
	}
	return errs
}

func phoneNumber(o object) (string, error) {
	if s, err := o.str("", "phonenumber"); s != "" || err != nil {
		return s, err
	}
	// A list of numbers: the first is the subscriber's.
	v, k, ok := o.take("phonenumbers")
	if !ok {
		return "", nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(v, &list); err != nil {
		return "", fmt.Errorf("%w: %s: want a list", ErrInvalid, k)
	}
	if len(list) == 0 {
		return "", nil
	}
	var s string
	if json.Unmarshal(list[0], &s) == nil {
		return strings.TrimSpace(s), nil
	}
	inner, err := decodeObject(list[0], k+"[0]")
	if err != nil {
		return "", err
	}
	return inner.str(k+"[0].", "phonenumber", "number", "e164")
}

// cardDAV reads "user@host" or an object {"username", "domain"} into
// "user@host".
func cardDAV(o object) (string, error) {
	v, k, ok := o.take("carddav")
	if !ok {
		return "", nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return strings.TrimSpace(s), nil
	}
	inner, err := decodeObject(v, k)
	if err != nil {
		return "", err
	}
	user, err := inner.str(k+".", "username", "user")
	if err != nil {
		return "", err
	}
	host, err := inner.str(k+".", "domain", "server", "host")
	if err != nil {
		return "", err
	}
	if host == "" {
		if raw, _ := inner.str(k+".", "url", "uri"); raw != "" {
			if u, err := url.Parse(raw); err == nil {
				host = u.Host
			}
		}
	}
	if user == "" && host == "" {
		return "", nil
	}
	return user + "@" + host, nil
}

// iceServers reads a list of URIs, or of objects naming them ({"stun":
// uri}, {"turn": uri}, {"urls": [...]}, as WebRTC's RTCIceServer).
func iceServers(o object) ([]string, error) {
	v, k, ok := o.take("iceservers", "turnservers", "stunservers")
	if !ok {
		return nil, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(v, &list); err != nil {
		return nil, fmt.Errorf("%w: %s: want a list", ErrInvalid, k)
	}
	out := []string{}
	for i, item := range list {
		var s string
		if json.Unmarshal(item, &s) == nil {
			out = append(out, strings.TrimSpace(s))
			continue
		}
		where := fmt.Sprintf("%s[%d]", k, i)
		inner, err := decodeObject(item, where)
		if err != nil {
			return nil, err
		}
		for _, scheme := range []string{"stun", "stuns", "turn", "turns"} {
			u, err := inner.str(where+".", scheme)
			if err != nil {
				return nil, err
			}
			if u != "" && !strings.Contains(u, ":") {
				u = scheme + ":" + u // a bare host name
			}
			if u != "" {
				out = append(out, u)
			}
		}
		urls, err := inner.strs(where+".", "urls", "url", "uri")
		if err != nil {
			return nil, err
		}
		out = append(out, urls...)
	}
	return out, nil
}

func dialAround(o object) ([]DialAround, error) {
	v, k, ok := o.take("dialaround")
	if !ok {
		return nil, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(v, &list); err != nil {
		return nil, fmt.Errorf("%w: %s: want a list", ErrInvalid, k)
	}
	var out []DialAround
	for i, item := range list {
		where := fmt.Sprintf("%s[%d]", k, i)
		inner, err := decodeObject(item, where)
		if err != nil {
			return nil, err
		}
		var d DialAround
		var errs []error
		var e error
		d.Language, e = inner.str(where+".", "language")
		errs = append(errs, e)
		d.FrontDoor, e = inner.str(where+".", "frontdoor")
		errs = append(errs, e)
		d.OneStage, e = inner.str(where+".", "onestage")
		errs = append(errs, e)
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// ParseProviderList reads a provider list (RFC 9248 section 9.1), with
// "entryPoint" or "providerEntryPoint" for each provider's URL.
func ParseProviderList(b []byte) (*ProviderList, error) {
	if len(b) > MaxDocument {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrInvalid, len(b), MaxDocument)
	}
	o, err := decodeObject(b, "provider list")
	if err != nil {
		return nil, err
	}
	l := &ProviderList{Version: Version}
	if v, _, ok := o.take("version"); ok {
		if err := json.Unmarshal(v, &l.Version); err != nil {
			return nil, fmt.Errorf("%w: version: want a whole number", ErrInvalid)
		}
		if l.Version != Version {
			return nil, fmt.Errorf("%w: provider list version %d, this reader knows %d", ErrVersion, l.Version, Version)
		}
	}
	v, k, ok := o.take("providers")
	if !ok {
		return nil, fmt.Errorf("%w: providers: missing", ErrInvalid)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(v, &list); err != nil {
		return nil, fmt.Errorf("%w: %s: want a list", ErrInvalid, k)
	}
	for i, item := range list {
		where := fmt.Sprintf("providers[%d]", i)
		inner, err := decodeObject(item, where)
		if err != nil {
			return nil, err
		}
		var p Provider
		if p.Name, err = inner.str(where+".", "name", "providername"); err != nil {
			return nil, err
		}
		if p.EntryPoint, err = inner.str(where+".", "providerentrypoint", "entrypoint"); err != nil {
			return nil, err
		}
		if u, err := url.Parse(p.EntryPoint); err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, fmt.Errorf("%w: %s.providerEntryPoint: %q is not an https:// URL", ErrInvalid, where, clip.String(p.EntryPoint, 80))
		}
		l.Providers = append(l.Providers, p)
	}
	return l, nil
}

// sipURI checks the shape of a SIP URI: scheme, a host, no blanks.
func sipURI(s string) bool {
	rest, ok := strings.CutPrefix(s, "sip:")
	if !ok {
		rest, ok = strings.CutPrefix(s, "sips:")
	}
	if !ok || strings.ContainsAny(rest, " \t\r\n") {
		return false
	}
	hostport, _, _ := strings.Cut(rest, ";")
	if i := strings.LastIndexByte(hostport, '@'); i >= 0 {
		hostport = hostport[i+1:]
	}
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		hostport = h
	}
	return validHost(hostport)
}

func e164(s string) bool {
	if len(s) < 8 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for _, r := range s[1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		return net.ParseIP(h[1:len(h)-1]) != nil
	}
	if net.ParseIP(h) != nil {
		return true
	}
	for l := range strings.SplitSeq(strings.TrimSuffix(h, "."), ".") {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
