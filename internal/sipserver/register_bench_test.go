package sipserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
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
	msgs := make([][]byte, b.N)
	for i := range msgs {
		u, round := i%len(users), i/len(users)
		msgs[i] = []byte(benchRegister(users[u], 3+round, 2+round, challenges[u]))
	}

	window := make(chan struct{}, benchWindow)
	done := make(chan error, 1)
	c.SetDeadline(time.Now().Add(10 * time.Minute))
	b.ReportAllocs()
	b.ResetTimer()
	go func() { done <- benchCount(c, b.N, window) }()
	var werr error
	for _, m := range msgs {
		window <- struct{}{}
		if _, werr = c.Write(m); werr != nil {
			break
		}
	}
	err = <-done
	b.StopTimer()
	if werr != nil {
		b.Fatalf("write: %v", werr)
	}
	if err != nil {
		b.Fatal(err)
	}
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
