package sipserver

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	sipmsg "github.com/emiago/sipgo/sip"

	"github.com/z5vrs/z5/internal/siptest"
	"github.com/z5vrs/z5/internal/store"
	"github.com/z5vrs/z5/internal/store/sqlite"
)

// benchUsers registered over the one connection, as bench/run.sh's
// REGISTER part cycles through its users.
const benchUsers = 1000

// benchWindow is how many REGISTERs the client keeps unanswered.
const benchWindow = 64

// BenchmarkRegisterRefreshTCP measures one digest-authenticated REGISTER
// refresh round trip: benchUsers standard devices registered over one
// loopback TCP connection, then refreshed in turn (same Call-ID, next
// CSeq, next nonce-count of the nonce each got at its first REGISTER),
// pipelined up to benchWindow deep. The REGISTERs are built before the
// timer starts, and the reader only counts status lines, so ns/op and
// allocs/op are (nearly) the server's. Not an assertion on speed: the
// figures are for comparing changes on one machine.
func BenchmarkRegisterRefreshTCP(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "z5.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	cfg := testConfig()
	cfg.DigestAlgorithms = []string{"MD5"}
	cfg.NonceTTL = time.Hour
	cfg.RateLimit = -1
	cfg.MaxInFlight, cfg.MaxInFlightPerSource = 4096, 4096
	cfg.MaxConnsPerIP = 100
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := New(cfg, Deps{Store: st, Log: log})
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Listen(netip.MustParseAddrPort("127.0.0.1:0"), netip.AddrPort{}); err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			b.Errorf("Serve: %v", err)
		}
	}()

	users := make([]string, benchUsers)
	for i := range users {
		users[i] = fmt.Sprintf("5552%06d", i)
		benchProvision(b, st, users[i], "pw-"+users[i])
	}
	c, err := net.DialTimeout("tcp", srv.Addr().String(), 2*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	raw := &rawTCP{c: c, par: sipmsg.NewParser().NewSIPStream()}

	// First registrations, one at a time: each user's nonce.
	challenges := make([]string, len(users))
	for i, u := range users {
		raw.benchSend(b, benchRegister(u, 1, 0, ""))
		m := raw.benchRead(b)
		if status(m) != 401 {
			b.Fatalf("first REGISTER of %s: %d, want 401", u, status(m))
		}
		challenges[i] = m.(*sipmsg.Response).GetHeader("WWW-Authenticate").Value()
		raw.benchSend(b, benchRegister(u, 2, 1, challenges[i]))
		if m := raw.benchRead(b); status(m) != 200 {
			b.Fatalf("authenticated REGISTER of %s: %d, want 200", u, status(m))
		}
	}
	refreshes := make([]benchRefresh, len(users))
	for i, u := range users {
		refreshes[i] = newBenchRefresh(u, challenges[i])
	}

	window := make(chan struct{}, benchWindow)
	done := make(chan error, 1)
	c.SetDeadline(time.Now().Add(10 * time.Minute))
	var buf []byte
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	go func() { done <- benchCount(c, b.N, window) }()
	var werr error
	for i := range b.N {
		u, round := i%len(users), i/len(users)
		buf = refreshes[u].append(buf[:0], 3+round, 2+round)
		window <- struct{}{}
		if _, werr = c.Write(buf); werr != nil {
			break
		}
	}
	err = <-done
	b.StopTimer()
	// The process's CPU time (server and client) per REGISTER: unlike
	// ns/op, barely moved by other processes competing for the cores.
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	if werr != nil {
		b.Fatalf("write: %v", werr)
	}
	if err != nil {
		b.Fatal(err)
	}
}

// processCPU is the user and system CPU time the process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchCount reads n responses, freeing a window slot for each, and fails
// on any that is not 200. It scans for status lines rather than parsing,
// so that the client costs little of what is measured.
func benchCount(c net.Conn, n int, window chan struct{}) error {
	status := []byte("SIP/2.0 ")
	buf := make([]byte, 256<<10)
	have, got := 0, 0
	for got < n {
		k, err := c.Read(buf[have:])
		if err != nil {
			return fmt.Errorf("after %d responses: %w", got, err)
		}
		have += k
		data := buf[:have]
		for {
			i := bytes.Index(data, status)
			if i < 0 || len(data)-i < len(status)+4 {
				break
			}
			if code := string(data[i+len(status) : i+len(status)+3]); code != "200" {
				return fmt.Errorf("response %d: status %s", got, code)
			}
			got++
			<-window
			data = data[i+len(status)+3:]
		}
		// Keep what may be the start of a status line.
		keep := min(len(data), len(status)+3)
		have = copy(buf, data[len(data)-keep:])
	}
	return nil
}

// benchRegister is user's REGISTER with the given CSeq, answering the
// challenge with nonce-count nc (none when the challenge is "").
func benchRegister(user string, cseq, nc int, challenge string) string {
	uri := "sip:" + testDomain
	auth := ""
	if challenge != "" {
		auth = "Authorization: " + siptest.Digest(challenge, user, "pw-"+user, "REGISTER", uri, "cn"+user, nc) + "\r\n"
	}
	return "REGISTER " + uri + " SIP/2.0\r\n" +
		"Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK" + user + "-" + strconv.Itoa(cseq) + "\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:" + user + "@" + testDomain + ">;tag=t" + user + "\r\n" +
		"To: <sip:" + user + "@" + testDomain + ">\r\n" +
		"Call-ID: bench-" + user + "\r\n" +
		"CSeq: " + strconv.Itoa(cseq) + " REGISTER\r\n" +
		"Contact: <sip:" + user + "@127.0.0.1:9;transport=tcp>\r\n" +
		auth +
		"Expires: 3600\r\n" +
		"User-Agent: bench\r\n" +
		"Content-Length: 0\r\n\r\n"
}

// benchRefresh builds one user's refreshes without allocating, so that
// the client, which shares the process, adds no garbage to what the
// server's collector sees (pre-built messages would: a large live heap
// makes collections rarer than they are in a server).
type benchRefresh struct {
	head, tail       string // the request around Via, CSeq and Authorization
	ha1, ha2, cnonce string
	authHead         string // the Authorization value up to response
	nonce            string
}

func newBenchRefresh(user, challenge string) benchRefresh {
	param := func(k string) string {
		_, rest, _ := strings.Cut(challenge, k+`="`)
		v, _, _ := strings.Cut(rest, `"`)
		return v
	}
	h := func(s string) string { sum := md5.Sum([]byte(s)); return hex.EncodeToString(sum[:]) }
	uri := "sip:" + testDomain
	realm, nonce, opaque := param("realm"), param("nonce"), param("opaque")
	return benchRefresh{
		head: "REGISTER " + uri + " SIP/2.0\r\n" +
			"Via: SIP/2.0/TCP 127.0.0.1:9;branch=z9hG4bK" + user + "-",
		tail: "Max-Forwards: 70\r\n" +
			"From: <sip:" + user + "@" + testDomain + ">;tag=t" + user + "\r\n" +
			"To: <sip:" + user + "@" + testDomain + ">\r\n" +
			"Call-ID: bench-" + user + "\r\n",
		ha1:    h(user + ":" + realm + ":pw-" + user),
		ha2:    h("REGISTER:" + uri),
		cnonce: "cn" + user,
		nonce:  nonce,
		authHead: `Authorization: Digest username="` + user + `", realm="` + realm + `", nonce="` + nonce + `", uri="` + uri +
			`", algorithm=MD5, cnonce="cn` + user + `", opaque="` + opaque + `", qop=auth, nc=`,
	}
}

// append appends the refresh with CSeq cseq and nonce-count nc to buf;
// benchRegister's request but for the order of the digest parameters.
func (r *benchRefresh) append(buf []byte, cseq, nc int) []byte {
	var ncb [8]byte
	ncs := strconv.AppendUint(ncb[:0], uint64(nc), 16)
	buf = append(buf, r.head...)
	buf = strconv.AppendInt(buf, int64(cseq), 10)
	buf = append(buf, "\r\n"...)
	buf = append(buf, r.tail...)
	buf = append(buf, "CSeq: "...)
	buf = strconv.AppendInt(buf, int64(cseq), 10)
	buf = append(buf, " REGISTER\r\nContact: <sip:"...)
	buf = append(buf, r.cnonce[2:]...)
	buf = append(buf, "@127.0.0.1:9;transport=tcp>\r\n"...)
	buf = append(buf, r.authHead...)
	start := len(buf)
	for range 8 - len(ncs) {
		buf = append(buf, '0')
	}
	buf = append(buf, ncs...)
	nc8 := buf[start:]
	// response = H(HA1:nonce:nc:cnonce:auth:HA2), hashed from a tail of
	// buf that is cut off again.
	msg := len(buf)
	buf = append(buf, r.ha1...)
	buf = append(buf, ':')
	buf = append(buf, r.nonce...)
	buf = append(buf, ':')
	buf = append(buf, nc8...)
	buf = append(buf, ':')
	buf = append(buf, r.cnonce...)
	buf = append(buf, ":auth:"...)
	buf = append(buf, r.ha2...)
	sum := md5.Sum(buf[msg:])
	buf = buf[:msg]
	buf = append(buf, `, response="`...)
	buf = hex.AppendEncode(buf, sum[:])
	buf = append(buf, "\"\r\nExpires: 3600\r\nUser-Agent: bench\r\nContent-Length: 0\r\n\r\n"...)
	return buf
}

func benchProvision(b *testing.B, st store.Store, number, password string) {
	b.Helper()
	ctx := context.Background()
	if _, err := st.Number(ctx, number); errors.Is(err, store.ErrNotFound) {
		cu, err := st.CreateCustomer(ctx, store.Customer{Username: "customer-" + number})
		if err != nil {
			b.Fatal(err)
		}
		if err := st.AddNumber(ctx, store.Number{Number: number, CustomerID: cu.ID}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := st.CreateDevice(ctx, store.Device{Number: number, Kind: store.DeviceSIP, Name: number, SIPUser: number,
		Cred: store.NewCredentials(number, testDomain, password)}); err != nil {
		b.Fatal(err)
	}
}

func (r *rawTCP) benchSend(b *testing.B, s string) {
	b.Helper()
	r.c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(r.c, s); err != nil {
		b.Fatalf("write: %v", err)
	}
}

func (r *rawTCP) benchRead(b *testing.B) sipmsg.Message {
	b.Helper()
	m, err := r.read(2 * time.Second)
	if err != nil || m == nil {
		b.Fatalf("no response: %v", err)
	}
	return m
}
