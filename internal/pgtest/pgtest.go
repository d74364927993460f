// Package pgtest gives tests a throwaway PostgreSQL server: initdb in a
// temporary directory, a postmaster listening only on 127.0.0.1 at a free
// port (and on a unix socket in that directory), a fresh database per
// caller, and everything stopped and removed when the tests are done.
//
// It needs the server binaries (initdb, postgres) of the Debian package
// postgresql under /usr/lib/postgresql/<version>/bin, or on PATH; without
// them the calling test is skipped. As root the server runs as the postgres
// user; as anyone else it runs as the caller. The distribution's own
// cluster (port 5432) is never touched.
//
// A package whose TestMain calls Main shares one server among all its tests,
// each Start getting its own database; without Main every Start starts a
// server of its own, which is correct but slower (initdb each time).
//
// The server runs with fsync on and synchronous_commit on, like production,
// so durability tests mean something. It is password-protected (SCRAM) with
// a random password: other local users cannot reach a test's data.
//
// If the test binary dies (a panic, a timeout, SIGKILL), the kernel kills
// the server with it (PR_SET_PDEATHSIG); the directory left behind is
// removed by the next test binary that starts a server.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Bounds on the slow steps; the machine running tests may be busy.
const (
	initdbTimeout = 3 * time.Minute
	readyTimeout  = time.Minute
	stopTimeout   = 15 * time.Second
	adminTimeout  = time.Minute
)

// superuser is the bootstrap role initdb creates.
const superuser = "z5test"

// ErrNoServer means the PostgreSQL server binaries are not installed.
var ErrNoServer = errors.New("pgtest: PostgreSQL server binaries (initdb, postgres) not found in /usr/lib/postgresql/*/bin or PATH; install the Debian package postgresql")

// Server is one throwaway PostgreSQL server.
type Server struct {
	bin      string              // directory holding initdb and postgres
	base     string              // temporary directory: data/, socket, log
	port     int                 // TCP port on 127.0.0.1
	password string              // of superuser
	cred     *syscall.Credential // the postgres user when we are root, else nil

	mu      sync.Mutex // guards the following
	proc    *os.Process
	exited  chan struct{} // closed when proc has exited and been reaped
	dbSeq   int
	stopped bool // Stop ran: the directory is gone
}

// shared is the server a package's tests share once Main turned sharing
// on. Sharing is per test binary, which is what package state is.
var shared struct {
	enabled bool // set by Main before any test runs
	once    sync.Once
	srv     *Server
	err     error
}

// Main runs a package's tests with one shared server and stops it (and
// removes its directory) afterwards. Call it from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// The testing package exits with m.Run's code when TestMain returns. The
// server is started by the first Start, so packages whose selected tests
// need none start none.
func Main(m *testing.M) {
	shared.enabled = true
	m.Run()
	if shared.srv != nil {
		if err := shared.srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}

// Start returns the connection string (a postgres:// URL) of a new, empty
// database owned by the superuser, on the shared server when Main runs the
// tests, else on a server of t's own. The database is dropped in
// t.Cleanup. It skips t when the server binaries are missing.
func Start(t testing.TB) string {
	t.Helper()
	if !shared.enabled {
		return NewServer(t).CreateDB(t)
	}
	shared.once.Do(func() { shared.srv, shared.err = newServer() })
	if errors.Is(shared.err, ErrNoServer) || errors.Is(shared.err, errNoUser) {
		t.Skip(shared.err)
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.srv.CreateDB(t)
}

// NewServer starts a server of t's own, stopped and removed in t.Cleanup:
// for tests that kill or restart it. It skips t when the server binaries
// are missing.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s, err := newServer()
	if errors.Is(err, ErrNoServer) || errors.Is(err, errNoUser) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

var errNoUser = errors.New("pgtest: running as root but there is no postgres user to run the server as (the Debian package postgresql creates it)")

// newServer runs initdb in a new temporary directory and starts the server.
func newServer() (*Server, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := serverCredential()
	if err != nil {
		return nil, err
	}
	sweepStale()
	// Not t.TempDir: a unix socket path must fit in 107 bytes, and test
	// names make long paths. The name carries our PID for sweepStale.
	base, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	s := &Server{bin: bin, base: base, cred: cred}
	if err := s.initdb(); err != nil {
		os.RemoveAll(base)
		return nil, err
	}
	// The port is found free, then bound by the server: another process may
	// take it in between, so a failed bind is retried on a new port.
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			os.RemoveAll(base)
			return nil, err
		}
		err = s.start()
		if err == nil {
			return s, nil
		}
		if attempt == 2 || !strings.Contains(err.Error(), "could not bind") {
			os.RemoveAll(base)
			return nil, err
		}
	}
}

// dirPrefix starts the name of every server directory, followed by the PID
// of the test binary that made it.
const dirPrefix = "z5-pgtest-"

// sweepStale removes server directories left by test binaries that died
// before they could clean up (their servers died with them, see
// Pdeathsig). A directory whose binary still runs is left alone.
func sweepStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*-*"))
	for _, d := range dirs {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), dirPrefix), "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // alive (or not ours to signal): maybe still in use
		}
		// The server's own pid file, when present, must name a dead process
		// too: a reused binary PID must not take a live server's files.
		if b, err := os.ReadFile(filepath.Join(d, "data", "postmaster.pid")); err == nil {
			line, _, _ := strings.Cut(string(b), "\n")
			if pm, err := strconv.Atoi(strings.TrimSpace(line)); err == nil && pm > 0 {
				if err := syscall.Kill(pm, 0); !errors.Is(err, syscall.ESRCH) {
					continue
				}
			}
		}
		os.RemoveAll(d)
	}
}

// findBinaries returns the bin directory of the newest PostgreSQL holding
// both initdb and postgres.
func findBinaries() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		return v
	}
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if isExecutable(filepath.Join(d, "initdb")) && isExecutable(filepath.Join(d, "postgres")) {
			return d, nil
		}
	}
	return "", ErrNoServer
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// serverCredential is who the server runs as: PostgreSQL refuses to run
// as root, so root hands it to the postgres user.
func serverCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoUser, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgtest: postgres user has uid %q gid %q", u.Uid, u.Gid)
	}
	// Groups empty: drop root's supplementary groups too.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.base, "data") }
func (s *Server) logPath() string { return filepath.Join(s.base, "postgres.log") }

// command prepares a server binary to run as the server's user.
func (s *Server) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, name), args...)
	cmd.Dir = s.base
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd
}

// initdb creates the cluster with a random superuser password.
func (s *Server) initdb() error {
	pw := make([]byte, 24)
	rand.Read(pw) // never fails (crypto/rand, Go 1.24+)
	s.password = hex.EncodeToString(pw)
	pwFile := filepath.Join(s.base, "pwfile")
	if err := os.WriteFile(pwFile, []byte(s.password+"\n"), 0o600); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer os.Remove(pwFile)
	if s.cred != nil {
		for _, p := range []string{s.base, pwFile} {
			if err := os.Chown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				return fmt.Errorf("pgtest: %w", err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), initdbTimeout)
	defer cancel()
	// -N: no fsync of the initial files; this cluster is thrown away, and
	// the server itself still fsyncs every commit.
	out, err := s.command(ctx, "initdb", "-D", s.dataDir(), "-U", superuser, "--pwfile", pwFile,
		"-A", "scram-sha-256", "-E", "UTF8", "--no-locale", "-N").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pgtest: initdb in %s: %w\n%s", s.base, err, out)
	}
	return nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start runs the postmaster and waits until it accepts connections.
func (s *Server) start() error {
	log, err := os.OpenFile(s.logPath(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	defer log.Close() // the child keeps its own descriptor
	cmd := s.command(context.Background(), "postgres", "-D", s.dataDir(),
		"-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories="+s.base,
		"-c", "unix_socket_permissions=0700",
		"-c", "logging_collector=off",
		"-c", "shared_buffers=32MB",
		"-c", "max_connections=200",
		"-c", "autovacuum=off", // short-lived databases; spare the shared CPUs
		"-c", "fsync=on",
		"-c", "synchronous_commit=on",
		"-c", "timezone=UTC")
	cmd.Stdout, cmd.Stderr = log, log
	// Own process group: Kill takes the postmaster and its backends at
	// once. Pdeathsig: the server dies with the test binary.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL

	started := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		// The kernel sends Pdeathsig when the thread that forked the child
		// ends, not the process (go.dev/issue/27505). Holding this thread
		// until the server exits keeps the signal for the binary's death.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		started <- err
		if err == nil {
			cmd.Wait()
		}
		close(exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("pgtest: start postgres: %w", err)
	}
	s.mu.Lock()
	s.proc, s.exited = cmd.Process, exited
	s.mu.Unlock()

	if err := s.waitReady(exited); err != nil {
		s.Kill()
		return fmt.Errorf("%w\n%s", err, s.logTail())
	}
	return nil
}

// waitReady polls until the server accepts an authenticated connection,
// it exits, or readyTimeout passes.
func (s *Server) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(readyTimeout)
	var last error
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-exited:
			return fmt.Errorf("pgtest: postgres on 127.0.0.1:%d exited while starting", s.port)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: postgres on 127.0.0.1:%d not ready after %v: %w", s.port, readyTimeout, last)
		}
	}
}

// logTail is the end of the server log, for error messages.
func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.logPath())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// DSN is the connection string of database db on this server.
func (s *Server) DSN(db string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, s.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

var unsafeName = regexp.MustCompile(`[^a-z0-9_]+`)

// CreateDB creates a new empty database, dropped in t.Cleanup, and returns
// its connection string.
func (s *Server) CreateDB(t testing.TB) string {
	t.Helper()
	s.mu.Lock()
	s.dbSeq++
	name := fmt.Sprintf("t%d_%s", s.dbSeq, unsafeName.ReplaceAllString(strings.ToLower(t.Name()), "_"))
	s.mu.Unlock()
	if len(name) > 63 { // NAMEDATALEN - 1
		name = name[:63]
	}
	if err := s.admin("CREATE DATABASE " + pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		s.mu.Lock()
		gone := s.stopped || s.proc == nil
		s.mu.Unlock()
		if gone {
			return
		}
		// FORCE ends connections a test left open.
		if err := s.admin("DROP DATABASE IF EXISTS " + pgx.Identifier{name}.Sanitize() + " WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	return s.DSN(name)
}

// admin runs one statement as superuser in the postgres database.
func (s *Server) admin(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// Kill ends the server as a crash would: SIGKILL to the postmaster and all
// its backends at once, with no shutdown checkpoint. Restart brings it
// back through crash recovery.
func (s *Server) Kill() error {
	s.mu.Lock()
	proc, exited := s.proc, s.exited
	s.proc = nil
	s.mu.Unlock()
	if proc == nil {
		return nil
	}
	// Negative pid: the process group (Setpgid made it the postmaster's
	// pid), so no backend survives the postmaster.
	if err := syscall.Kill(-proc.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("pgtest: kill postgres %d: %w", proc.Pid, err)
	}
	select {
	case <-exited:
	case <-time.After(stopTimeout):
		return fmt.Errorf("pgtest: postgres %d still running %v after SIGKILL", proc.Pid, stopTimeout)
	}
	// Backends are reparented when the postmaster dies; a restart must
	// not find them still attached to the old shared memory.
	for deadline := time.Now().Add(stopTimeout); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := syscall.Kill(-proc.Pid, 0); errors.Is(err, syscall.ESRCH) {
			break
		}
	}
	return nil
}

// Restart starts the server again on the same directory and port after
// Kill; the server runs crash recovery first.
func (s *Server) Restart() error {
	s.mu.Lock()
	running, stopped := s.proc != nil, s.stopped
	s.mu.Unlock()
	if stopped {
		return errors.New("pgtest: restart: server was stopped and removed")
	}
	if running {
		return errors.New("pgtest: restart: server is running")
	}
	// A backend forked at the moment of the SIGKILL can outlive the
	// postmaster for a moment, still attached to the old shared memory;
	// postgres then refuses to start until it is gone. Retry, bounded.
	var err error
	for deadline := time.Now().Add(stopTimeout); ; time.Sleep(200 * time.Millisecond) {
		err = s.start()
		if err == nil || !strings.Contains(err.Error(), "exited while starting") || time.Now().After(deadline) {
			return err
		}
		if b, rerr := os.ReadFile(s.logPath()); rerr != nil || !strings.Contains(string(b), "pre-existing shared memory block") {
			return err
		}
	}
}

// Stop shuts the server down (immediate mode: no checkpoint, the data is
// thrown away) and removes its directory. Calling it again does nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	proc, exited := s.proc, s.exited
	s.proc = nil
	s.mu.Unlock()

	var errs []error
	if proc != nil {
		// SIGQUIT to the postmaster is "pg_ctl stop -m immediate".
		proc.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(stopTimeout):
			syscall.Kill(-proc.Pid, syscall.SIGKILL)
			select {
			case <-exited:
			case <-time.After(stopTimeout):
				errs = append(errs, fmt.Errorf("pgtest: postgres %d did not exit", proc.Pid))
			}
		}
	}
	if err := os.RemoveAll(s.base); err != nil {
		errs = append(errs, fmt.Errorf("pgtest: remove %s: %w", s.base, err))
	}
	return errors.Join(errs...)
}
