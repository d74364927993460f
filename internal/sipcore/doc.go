// Package sipcore holds the SIP registrar's and proxy's decisions as pure
// functions: given a parsed request, the state it concerns and the time,
// each returns what to change and what to answer. Nothing here opens a
// socket, touches the store, starts a goroutine or reads the clock;
// internal/sipserver does that around them.
package sipcore
