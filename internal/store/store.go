// Package store is the one storage interface behind every role: customers,
// their phone numbers, devices and SIP credentials, sessions, contacts,
// licenses, registrations, MCS node membership and call records.
//
// Implementations (sqlite/ for one machine, postgres/ for several nodes and
// sites) must make every successful write durable before returning: the API
// acknowledges only what survives kill -9. storetest/ holds the conformance
// suite both run.
package store

import (
	"context"
	"errors"
	"regexp"
	"time"

	"github.com/z5vrs/z5/internal/acd"
	"github.com/z5vrs/z5/internal/addressbook"
)

// Sentinel errors; implementations wrap them with context.
var (
	ErrNotFound = errors.New("not found")
	// ErrExists: a unique value (username, number, SIP username) is taken.
	ErrExists = errors.New("already exists")
	// ErrConflict: an If-Match version did not match (no lost updates).
	ErrConflict = errors.New("version conflict")
	// ErrLimit: a configured count limit would be exceeded.
	ErrLimit = errors.New("limit reached")
)

// Store is everything the provider keeps. All methods are safe for
// concurrent use.
type Store interface {
	// Customers.
	CreateCustomer(ctx context.Context, c Customer) (Customer, error)
	Customer(ctx context.Context, id int64) (Customer, error)
	CustomerByUsername(ctx context.Context, username string) (Customer, error)
	ListCustomers(ctx context.Context) ([]Customer, error)
	SetPasswordHash(ctx context.Context, customerID int64, hash string) error
	// RecordLoginFailure counts a failed login for the account and, once
	// failures reach maxFailures, locks it until now+lockout. It returns
	// the account as updated.
	RecordLoginFailure(ctx context.Context, customerID int64, now time.Time, maxFailures int, lockout time.Duration) (Customer, error)
	ResetLoginFailures(ctx context.Context, customerID int64) error
	// DeleteCustomer removes an account with its numbers and their
	// devices, sessions, registrations and address books, and its
	// registered location. Call records, licenses and the location audit
	// trail stay: they are the provider's records.
	DeleteCustomer(ctx context.Context, customerID int64) error

	// Registered locations: Location is ErrNotFound when none is set;
	// SetLocation replaces it (UpdatedAt defaults to now, Country to "US")
	// and appends the change to the audit trail LocationHistory reads,
	// oldest first.
	Location(ctx context.Context, customerID int64) (Location, error)
	SetLocation(ctx context.Context, loc Location) error
	LocationHistory(ctx context.Context, customerID int64) ([]LocationChange, error)

	// Phone numbers; a customer may hold several.
	AddNumber(ctx context.Context, n Number) error
	Number(ctx context.Context, number string) (Number, error)
	NumbersOf(ctx context.Context, customerID int64) ([]Number, error)

	// Devices and their SIP credentials.
	CreateDevice(ctx context.Context, d Device) (Device, error)
	Device(ctx context.Context, id int64) (Device, error)
	DeviceBySIPUser(ctx context.Context, sipUser string) (Device, error)
	DevicesOf(ctx context.Context, number string) ([]Device, error)
	// UpdateDeviceCredentials replaces the digest HA1 values (new password).
	UpdateDeviceCredentials(ctx context.Context, id int64, cred Credentials) error
	// DeviceChanges reads the log of devices whose credentials were
	// replaced or that were deleted: the SIP users changed since entry
	// after, the last entry, and false when more may have changed than
	// the users listed (the log was trimmed past after). after < 0 asks
	// for the last entry alone.
	DeviceChanges(ctx context.Context, after int64) (sipUsers []string, last int64, complete bool, err error)

	// Sessions (ZDial login tokens and MCS API tokens), by token hash.
	CreateSession(ctx context.Context, s Session) error
	Session(ctx context.Context, tokenHash []byte) (Session, error)
	// RevokeSession revokes a session and every session made from it
	// (ParentHash): logging out of ZDial also ends its MCS tokens.
	RevokeSession(ctx context.Context, tokenHash []byte, now time.Time) error
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)

	// Address book of one number.
	ListContacts(ctx context.Context, owner string) ([]Contact, error)
	Contact(ctx context.Context, owner, id string) (Contact, error)
	// CreateContact assigns ID (when empty), UID (when empty), Version and
	// Rev. maxContacts bounds the book (ErrLimit).
	CreateContact(ctx context.Context, c Contact, maxContacts int) (Contact, error)
	// UpdateContact replaces a contact if its current Version equals
	// ifVersion (0: unconditional), else ErrConflict.
	UpdateContact(ctx context.Context, c Contact, ifVersion int64) (Contact, error)
	DeleteContact(ctx context.Context, owner, id string, ifVersion int64) error
	// ContactChanges lists contacts changed or deleted after rev, in Rev
	// order, and the book's current rev (CardDAV sync-collection).
	ContactChanges(ctx context.Context, owner string, sinceRev int64) (changes []ContactChange, rev int64, err error)

	// Licenses issued (audit trail; the signature itself is verifiable
	// offline).
	RecordLicense(ctx context.Context, l License) error

	// Registrations: which node holds a device's live SIP flow, so a call
	// reaching another node can be forwarded there.
	PutRegistration(ctx context.Context, r Registration) error
	DeleteRegistration(ctx context.Context, number string, deviceID int64, node, flowID string) error
	// ChangeRegistrations applies cs, in order, in one transaction: each
	// as PutRegistration or, with Delete, as DeleteRegistration. All apply
	// or none.
	ChangeRegistrations(ctx context.Context, cs []RegistrationChange) error
	Registrations(ctx context.Context, number string, now time.Time) ([]Registration, error)

	// Node membership: MCS nodes heartbeat; DNS hands out live ones.
	Heartbeat(ctx context.Context, n NodeStatus) error
	Nodes(ctx context.Context) ([]NodeStatus, error)

	// Call detail records.
	CreateCall(ctx context.Context, c Call) error
	UpdateCall(ctx context.Context, c Call) error
	Call(ctx context.Context, callID string) (Call, error)
	ListCalls(ctx context.Context, f CallFilter) ([]Call, error)
	// RelayCalls returns the relay call records (Direction set) queued in
	// [from, to), in QueuedAt order: the month a report covers.
	RelayCalls(ctx context.Context, from, to time.Time) ([]Call, error)

	// ChangeCall applies change to the stored record of callID
	// atomically (a relay record is completed by both its legs, possibly
	// on two nodes at once); ErrNotFound when missing.
	ChangeCall(ctx context.Context, callID string, change func(*Call)) error
	// WriteCalls applies ws in order in one write transaction (the MCS
	// batches its record writes off the request path). A write that
	// changes nothing (an insert of a Call-ID already stored, a replace
	// or change of a missing one) does not fail the batch: its index is
	// returned in skipped. Inserting is thus safe to retry.
	WriteCalls(ctx context.Context, ws []CallWrite) (skipped []int, err error)
	// CloseLostCalls ends the open records of node (ended_at unset) that
	// started before startedBefore, because that node died holding them:
	// end reason EndNodeLost, EndedAt lastKnown but never before the
	// record's answer or start, status kept. Only records still open are
	// changed, so two nodes sweeping at once close each record once. It
	// returns the Call-IDs it closed.
	CloseLostCalls(ctx context.Context, node string, startedBefore, lastKnown time.Time) ([]string, error)

	// The interpreter center's queue and agents' states, one for every
	// node (internal/acd).
	acd.Store

	Close() error
}

// NumberPattern is a 10-digit NANP number: NXX-NXX-XXXX (defined with the
// address book, which checks its numbers without the store).
var NumberPattern = addressbook.NumberPattern

// Account roles. The empty role is a customer (accounts made before roles
// existed).
const (
	RoleCustomer    = "customer"
	RoleInterpreter = "interpreter" // a communications assistant (CA) with a CA ID
	RoleStaff       = "staff"       // provider staff: operator view, no numbers
)

// CAIDPattern is an interpreter's CA ID.
var CAIDPattern = regexp.MustCompile(`^[A-Za-z0-9]{1,16}$`)

// StationPattern is an interpreter station's address, held as a number
// row of the interpreter account so registration, devices and forwarding
// work as for phone numbers.
var StationPattern = regexp.MustCompile(`^ca-[A-Za-z0-9]{1,16}$`)

// StationNumber is the station address of the interpreter with this CA ID.
func StationNumber(caID string) string { return "ca-" + caID }

// Customer is an account that logs in to ZDial: a customer, an
// interpreter or a staff member (Role).
type Customer struct {
	ID           int64
	Username     string
	DisplayName  string
	PasswordHash string // argon2id, PHC string format
	Role         string // RoleCustomer (or ""), RoleInterpreter, RoleStaff
	CAID         string // interpreters only; unique
	Failures     int
	LockedUntil  time.Time
	CreatedAt    time.Time
}

// EffectiveRole is Role with the empty role read as RoleCustomer.
func (c Customer) EffectiveRole() string {
	if c.Role == "" {
		return RoleCustomer
	}
	return c.Role
}

// Location is a customer's registered location (civic address), required
// before its numbers place calls other than 911 and sent to the PSAP with
// a 911 call.
type Location struct {
	CustomerID int64
	Street     string
	City       string
	State      string // USPS two-letter code
	Zip        string // 5 digits or 5+4
	Country    string // "US"
	UpdatedAt  time.Time
	UpdatedBy  string // who set it: "admin", or the username
}

// LocationChange is one entry of the registered location audit trail.
type LocationChange struct {
	CustomerID int64
	At         time.Time
	By         string
	Old        Location // the address before (no UpdatedAt/By); zero when there was none
	New        Location // the address set, with UpdatedAt = At and UpdatedBy = By
}

// Number is a phone number held by a customer.
type Number struct {
	Number     string // 10 digits
	CustomerID int64
	Label      string
	CreatedAt  time.Time
}

// Device kinds.
const (
	DeviceZ5  = "z5"  // a Z5 client: needs a license to register
	DeviceSIP = "sip" // a standard SIP endpoint: registers without one
)

// Credentials are digest HA1 values H(username:realm:password) for each
// algorithm we offer (RFC 8760); the password itself is never stored.
type Credentials struct {
	Realm         string
	HA1MD5        string
	HA1SHA256     string
	HA1SHA512_256 string
}

// Device is one endpoint of a number with its own SIP credentials.
type Device struct {
	ID      int64
	Number  string
	Kind    string // DeviceZ5 or DeviceSIP
	Name    string // e.g. hostname of the Z5 client, or a label
	SIPUser string // digest username, unique
	Cred    Credentials
	// InstanceID identifies a Z5 installation (its +sip.instance), so
	// logging in again from it reuses the device.
	InstanceID string
	CreatedAt  time.Time
}

// Session kinds.
const (
	SessionZDial = "zdial" // after login, before a number is chosen
	SessionMCS   = "mcs"   // after number selection: MCS API token
)

// Session is a bearer token, stored hashed (SHA-256).
type Session struct {
	TokenHash  []byte
	Kind       string
	CustomerID int64
	Number     string // set for SessionMCS
	DeviceID   int64  // set for SessionMCS
	ParentHash []byte // the ZDial session an MCS token was made from
	CreatedAt  time.Time
	ExpiresAt  time.Time
	RevokedAt  time.Time // zero while valid
}

// Valid reports whether the session is usable at now.
func (s Session) Valid(now time.Time) bool {
	return s.RevokedAt.IsZero() && now.Before(s.ExpiresAt)
}

// Contact and Phone are address-book entries; their home is package
// addressbook, which the client links without the store.
type (
	Contact = addressbook.Contact
	Phone   = addressbook.Phone
)

// ContactChange is one entry of a book's change log.
type ContactChange struct {
	ID      string
	Deleted bool
	Contact Contact // zero when Deleted
	Rev     int64
}

// License is the audit record of an issued license.
type License struct {
	ID        string
	Number    string
	DeviceID  int64
	Features  []string
	NotBefore time.Time
	NotAfter  time.Time
	IssuedAt  time.Time
}

// Registration is a device's binding on one MCS node.
type Registration struct {
	Number    string
	DeviceID  int64
	Node      string // MCS node name holding the flow
	FlowID    string // identifies the TCP connection on that node
	Contact   string // Contact URI as registered
	Instance  string // +sip.instance, when given
	ExpiresAt time.Time
	UpdatedAt time.Time
}

// RegistrationChange is one row of the location table written or, with
// Delete, removed (then only Number, DeviceID, Node and FlowID count).
type RegistrationChange struct {
	Registration
	Delete bool
}

// NodeStatus is one MCS node's last heartbeat.
type NodeStatus struct {
	Name     string
	Site     string
	Address  string
	Healthy  bool
	LastSeen time.Time
}

// Call is a call detail record: a VRS provider is paid per conversation
// minute, so every call is accounted for from start to end.
type Call struct {
	CallID     string
	From       string // caller number
	To         string // callee number
	Node       string
	StartedAt  time.Time
	AnsweredAt time.Time // zero when never answered
	EndedAt    time.Time // zero while active
	EndReason  string    // "bye", "cancel", "busy", "unavailable", "timeout", "media-timeout", "abandoned", "queue-timeout", "node-lost", ...
	Status     int       // final SIP status
	MediaStats []StreamStats

	// Relay call fields (zero for point-to-point calls). One record per
	// relay call: the first leg's; the second leg sets the conversation
	// times and appends its streams' stats.
	Direction         string // "", CallOutbound, CallInbound, CallEmergency
	CAID              string // interpreter who served it
	Dialed            string // number the caller dialled
	UserNumber        string // the VRS user's number
	UserIP            string // the VRS user's IP address
	QueuedAt          time.Time
	OfferedAt         time.Time // first offered to an interpreter
	SessionStart      time.Time // interpreter answered the first leg
	SessionEnd        time.Time // first leg ended
	ConversationStart time.Time // hearing party (or user, inbound) answered the second leg
	ConversationEnd   time.Time
	// RequeueOf is the relay call this one continues: its interpreter's
	// connection was lost and the caller, re-queued, called again (a
	// record of its own, so each interpreter's minutes are billed once).
	RequeueOf string
}

// EndNodeLost is the end reason of a record whose MCS node died (killed,
// power lost) before it could write the call's end: another node, or the
// same one starting again, closed it at the node's last heartbeat.
const EndNodeLost = "node-lost"

// CallWriteKind is what a CallWrite does.
type CallWriteKind int

const (
	// CallInsert stores Call, unless its Call-ID is stored already.
	CallInsert CallWriteKind = iota
	// CallReplace replaces the stored record of Call.CallID with Call, as
	// UpdateCall (a zero StartedAt keeps the stored one).
	CallReplace
	// CallChange applies Change to the stored record of Call.CallID with
	// the row locked, as ChangeCall.
	CallChange
)

// CallWrite is one write of a batch (Store.WriteCalls).
type CallWrite struct {
	Kind   CallWriteKind
	Call   Call
	Change func(*Call) // CallChange only
}

// Relay call directions (Call.Direction).
const (
	CallOutbound  = "outbound"
	CallInbound   = "inbound"
	CallEmergency = "emergency"
)

// StreamStats are one relayed stream's counters at the end of a call.
type StreamStats struct {
	Leg       string // "caller" or "callee"; relay second leg: "hearing" or "user", and "interpreter2"
	Media     string // "audio" or "video"
	Packets   uint64
	Bytes     uint64
	Lost      int64
	JitterMS  float64
	Dropped   uint64 // packets from strangers, never forwarded
	RTCPCount uint64
	Encrypted bool // SRTP end to end: the relay carried ciphertext
}

// CallFilter selects calls; zero fields match everything.
type CallFilter struct {
	Number string // From or To
	Since  time.Time
	Limit  int
}
