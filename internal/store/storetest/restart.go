package storetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/z5vrs/z5/internal/store"
)

// Tests across a restart, shared by the drivers.
//
// The crash test of a store runs the test binary again as a child (only
// the test named childTest, with env added to its environment) whose body
// is CrashChild: it writes through a store, printing one line for each
// write after its method returned, an acknowledgement. KillWriter kills
// the child with SIGKILL mid-stream and returns the lines; CheckAcks then
// checks that a store reopened on the same database holds every
// acknowledged write.

// restartOwner is the book these tests write contacts to.
const restartOwner = "2025550100"

// KillWriter starts the child, waits for wantAcks acknowledgements (or
// maxWait), kills it with SIGKILL and returns every acknowledgement it
// printed, including those still in the pipe at the kill.
func KillWriter(t *testing.T, childTest, env string, wantAcks int, maxWait time.Duration) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^"+childTest+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := false
	t.Cleanup(func() {
		if !done {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var acks []string
	timeout := time.After(maxWait)
wait:
	for len(acks) < wantAcks {
		select {
		case l, ok := <-lines:
			if !ok {
				break wait // the child ended on its own: reported below
			}
			if strings.HasPrefix(l, "ack ") {
				acks = append(acks, l)
			}
		case <-timeout:
			break wait
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatal(err)
	}
	// Lines already in the pipe were printed after their write returned:
	// they are acknowledged too.
	for l := range lines {
		if strings.HasPrefix(l, "ack ") {
			acks = append(acks, l)
		}
	}
	werr := cmd.Wait()
	done = true
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die by SIGKILL (%v); stderr:\n%s", werr, stderr.String())
	}
	if len(acks) == 0 {
		t.Fatalf("child acknowledged nothing in %v; stderr:\n%s", maxWait, stderr.String())
	}
	t.Logf("%d writes acknowledged before SIGKILL", len(acks))
	return acks
}

// CrashChild is the body of the child test: it skips unless env is set
// (the test run on its own), opens a store on env's value and writes
// through it with WriteUntilKilled until it is killed.
func CrashChild(t *testing.T, env string, open func(ctx context.Context, where string) (store.Store, error)) {
	where := os.Getenv(env)
	if where == "" {
		t.Skip("only runs as the crash test's child")
	}
	// Bounded in case the parent dies without killing us.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := open(ctx, where)
	if err != nil {
		t.Fatal(err)
	}
	WriteUntilKilled(ctx, s)
}

// WriteUntilKilled is the child's body: two writers, one creating
// customers and one creating contacts (so writes overlap), each printing
// an acknowledgement after every write that returned, until ctx ends or a
// write fails.
func WriteUntilKilled(ctx context.Context, s store.Store) {
	var mu sync.Mutex // one whole line per write(2)
	ack := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(os.Stdout, "ack "+format+"\n", args...)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			name := fmt.Sprint("crash-", i)
			c, err := s.CreateCustomer(ctx, store.Customer{Username: name})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return
			}
			ack("customer %d %s", c.ID, name)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			id := fmt.Sprint("k", i)
			c, err := s.CreateContact(ctx, store.Contact{Owner: restartOwner, ID: id, Name: "name " + id}, 0)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return
			}
			ack("contact %s %s", c.Owner, c.ID)
		}
	}()
	wg.Wait()
}

// CheckAcks checks that s holds every acknowledged write, and that the
// change log the child left is whole: a transaction cut off by the kill
// left nothing half done, so the book's rev counts exactly the contacts
// stored.
func CheckAcks(t *testing.T, s store.Store, acks []string) {
	t.Helper()
	ctx := t.Context()
	for _, l := range acks {
		f := strings.Fields(l)
		switch {
		case len(f) == 4 && f[1] == "customer":
			id, _ := strconv.ParseInt(f[2], 10, 64)
			c, err := s.Customer(ctx, id)
			if err != nil || c.Username != f[3] {
				t.Errorf("acknowledged %q: got %+v, %v", l, c, err)
			}
		case len(f) == 4 && f[1] == "contact":
			c, err := s.Contact(ctx, f[2], f[3])
			if err != nil {
				t.Errorf("acknowledged %q: %v", l, err)
			} else if want := "name " + f[3]; c.Name != want {
				t.Errorf("acknowledged %q: name %q, want %q", l, c.Name, want)
			}
		default:
			t.Errorf("malformed ack line %q", l)
		}
	}
	changes, rev, err := s.ContactChanges(ctx, restartOwner, 0)
	if err != nil || int64(len(changes)) != rev {
		t.Errorf("after crash: %d changes, rev %d, %v", len(changes), rev, err)
	}
}

// Reopen checks that what a store wrote is there after it is closed and
// opened again, twice (opening an up-to-date database changes nothing), and
// that new IDs continue after the highest one ever used. open opens the
// same database at each call; Reopen closes what it returns.
func Reopen(t *testing.T, open func(t *testing.T) store.Store) {
	ctx := t.Context()
	s := open(t)
	c := must[store.Customer](t, "create customer")(s.CreateCustomer(ctx, store.Customer{Username: "zoe"}))
	k := must[store.Contact](t, "create contact")(s.CreateContact(ctx, store.Contact{Owner: restartOwner, Name: "K"}, 0))
	noErr(t, "close", s.Close())
	for i := range 2 {
		s := open(t)
		if got, err := s.Customer(ctx, c.ID); err != nil || got.Username != c.Username {
			t.Errorf("reopen %d: customer %+v, %v", i, got, err)
		}
		if got, err := s.Contact(ctx, k.Owner, k.ID); err != nil || got.Name != k.Name || got.Rev != k.Rev {
			t.Errorf("reopen %d: contact %+v, %v", i, got, err)
		}
		c2, err := s.CreateCustomer(ctx, store.Customer{Username: fmt.Sprint("zoe", i)})
		if err != nil || c2.ID <= c.ID {
			t.Errorf("reopen %d: new customer ID %d (%v), want > %d", i, c2.ID, err, c.ID)
		}
		noErr(t, "close", s.Close())
	}
}
