// Package localpg runs a PostgreSQL server on this machine from the PostgreSQL binaries
// installed on it, for the test harness (a throwaway cluster) and for `wxhub dev` (a cluster
// kept in a folder between runs).
//
// The server listens on 127.0.0.1 only and trusts every local connection as the superuser
// postgres: it is meant for one developer's machine or a test run, never for shared use.
// When the caller is root the server runs as the `postgres` OS user, since PostgreSQL refuses
// to run as root. The server's output goes to postgres.log in the data folder.
package localpg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	// startTimeout bounds waiting for the server to accept connections. It is generous
	// because a restart after Kill replays the WAL first.
	startTimeout = time.Minute
	// stopTimeout is how long Stop lets a fast shutdown take before it kills the server.
	stopTimeout = 15 * time.Second
	// logTailBytes is how much of postgres.log a start-up error quotes.
	logTailBytes = 4000
	// portAttempts bounds retries when a port picked as free was taken before the server
	// bound it.
	portAttempts = 3
)

// ErrNoBinaries explains what to install, since a missing server is the usual first-run
// failure on a developer machine.
var ErrNoBinaries = errors.New("localpg: PostgreSQL server binaries (initdb, postgres) not found in PATH " +
	"or in `pg_config --bindir`; install them (Debian/Ubuntu: apt-get install postgresql)")

// Options say where and how to run the server.
type Options struct {
	// DataDir holds the cluster. Empty: a temporary folder removed by Stop. Non-empty:
	// created and initialised (initdb) on first use and reused as is on later starts (the
	// data survives).
	DataDir string
	// Port to listen on at 127.0.0.1; 0 picks a free one.
	Port int
	// Durable keeps fsync on (for a DataDir meant to survive); false turns fsync,
	// synchronous_commit and full_page_writes off (tests). Without synchronous_commit a
	// Kill can lose the last commits, so fault tests that expect committed rows to survive
	// a Kill set Durable.
	Durable bool
}

// Server is a running PostgreSQL server started by Start.
type Server struct {
	dir     string // the data folder
	temp    bool   // dir was made by Start and is removed when the server ends
	sockDir string // separate folder for the unix socket when dir's path is too long; "" otherwise
	port    int
	logPath string
	logFrom int64 // size of postgres.log before this start, so errors quote this run only

	cmd    *exec.Cmd
	exited chan struct{} // closed once the postmaster has exited and been reaped

	mu    sync.Mutex
	ended bool // Stop, StopImmediate or Kill ran
}

// Start initialises the cluster if needed, starts the server and waits until it accepts
// connections. ctx bounds the start-up only; the server then runs until Stop or Kill, or
// until this process dies (the server gets SIGQUIT then, so no server outlives its owner).
func Start(ctx context.Context, opts Options) (*Server, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	id, err := serverIdentity()
	if err != nil {
		return nil, err
	}
	s := &Server{}
	if opts.DataDir == "" {
		dir, err := os.MkdirTemp("", "wxhub-pg-")
		if err != nil {
			return nil, fmt.Errorf("localpg: %w", err)
		}
		s.dir, s.temp = dir, true
		if err := id.own(dir); err != nil {
			s.removeFiles()
			return nil, err
		}
	} else {
		if s.dir, err = filepath.Abs(opts.DataDir); err != nil {
			return nil, fmt.Errorf("localpg: %w", err)
		}
		if err := makeDataDir(s.dir, id); err != nil {
			return nil, err
		}
	}
	if err := s.start(ctx, bin, id, opts); err != nil {
		s.removeFiles()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context, bin string, id identity, opts Options) error {
	if err := id.checkTraversable(s.dir); err != nil {
		return err
	}
	if hasCluster(s.dir) {
		if err := checkNoLivePostmaster(s.dir); err != nil {
			return err
		}
	} else if err := initdb(ctx, bin, id, s.dir, opts.Durable); err != nil {
		return err
	}
	sockDir, err := socketDir(s.dir, id)
	if err != nil {
		return err
	}
	if sockDir != s.dir {
		s.sockDir = sockDir
	}
	logFile, err := openLog(filepath.Join(s.dir, "postgres.log"), id)
	if err != nil {
		return err
	}
	// The server writes through its own copy of the descriptor.
	defer logFile.Close()
	s.logPath = logFile.Name()
	if s.logFrom, err = logFile.Seek(0, io.SeekEnd); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	for attempt := 1; ; attempt++ {
		port := opts.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return err
			}
		}
		portTaken, err := s.launch(ctx, bin, id, opts.Durable, sockDir, port, logFile)
		if err == nil || !portTaken || opts.Port != 0 || attempt == portAttempts {
			return err
		}
	}
}

// launch runs the postmaster on port and waits until it is ready; on failure no server
// is left running, and portTaken says whether another process held the port.
func (s *Server) launch(ctx context.Context, bin string, id identity, durable bool, sockDir string, port int, logFile *os.File) (portTaken bool, err error) {
	attemptFrom, err := logFile.Seek(0, io.SeekEnd)
	if err != nil {
		return false, fmt.Errorf("localpg: %w", err)
	}
	s.port = port
	args := []string{"-D", s.dir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port=" + strconv.Itoa(port),
		"-c", "unix_socket_directories=" + sockDir,
		"-c", "max_connections=500",
		"-c", "shared_buffers=256MB",
		"-c", "log_min_messages=warning",
	}
	if !durable {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	cmd := exec.Command(filepath.Join(bin, "postgres"), args...)
	cmd.Dir = s.dir // the server's user may not be allowed into the caller's working folder
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	// Pdeathsig ends the server if this process dies without stopping it; it is tied to the
	// forking thread, so the fork happens on a thread that stays locked until the server
	// exits. SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its children
	// down with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: id.cred, Pdeathsig: syscall.SIGQUIT}
	exited := make(chan struct{})
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			close(exited)
			return
		}
		started <- nil
		_ = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		return false, fmt.Errorf("localpg: start postgres: %w", err)
	}
	s.cmd, s.exited = cmd, exited
	if err := s.waitReady(ctx); err != nil {
		_ = s.halt(syscall.SIGINT)
		return strings.Contains(s.logSince(attemptFrom), "could not create any TCP/IP sockets"), err
	}
	return false, nil
}

// waitReady polls until this server accepts connections, or reports why it did not.
func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for {
		err := s.probe(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("localpg: postgres exited during start-up:\n%s", s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("localpg: start postgres: %w\n%s", ctx.Err(), s.logTail())
		case <-deadline.C:
			return fmt.Errorf("localpg: postgres not ready after %s: %w\n%s", startTimeout, err, s.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// probe connects once and checks that the server answering is this one: with a fixed port,
// another server may hold it while ours fails to bind.
func (s *Server) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var dir string
	if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dir); err != nil {
		return err
	}
	if dir != s.dir {
		return fmt.Errorf("port %d is served by another PostgreSQL (data in %s)", s.port, dir)
	}
	return nil
}

// URL returns the URL of database on this server, as the superuser postgres.
func (s *Server) URL(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, url.PathEscape(database))
}

// Port returns the TCP port the server listens on at 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Dir returns the data folder (absolute), which also holds postgres.log.
func (s *Server) Dir() string { return s.dir }

// Stop shuts the server down in fast mode (open sessions are ended, a checkpoint is
// written), kills it if that takes over 15 s, and removes a temporary data folder. Calls
// after the first, and after Kill, do nothing.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil
	}
	s.ended = true
	return errors.Join(s.halt(syscall.SIGINT), s.removeFiles())
}

// Kill crashes the server at once: the postmaster and its children get SIGKILL, so no
// checkpoint is written and postmaster.pid stays behind, as after a power cut or the OOM
// killer. Start with the same Options then recovers the cluster from its WAL. A temporary
// data folder is removed, since nothing could restart it. Calls after the first, and after
// Stop, do nothing.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil
	}
	s.ended = true
	return errors.Join(s.killTree(), s.removeFiles())
}

// StopImmediate shuts the server down as `pg_ctl stop -m immediate` does: the postmaster
// gets SIGQUIT, its children quit without a checkpoint, and the next Start with the same
// Options runs crash recovery. Unlike Kill it lets PostgreSQL end its own processes, so it is
// the crash an operator or a supervisor causes. A temporary data folder is removed, since
// nothing could restart it. Calls after the first, and after Stop or Kill, do nothing.
func (s *Server) StopImmediate() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ended {
		return nil
	}
	s.ended = true
	return errors.Join(s.halt(syscall.SIGQUIT), s.removeFiles())
}

// halt sends the postmaster sig (SIGINT: fast shutdown; SIGQUIT: immediate) and waits for
// it, killing it if it hangs.
func (s *Server) halt(sig syscall.Signal) error {
	// An already exited server makes Signal fail; the wait below then returns at once.
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
		return nil
	case <-time.After(stopTimeout):
		if err := s.killTree(); err != nil {
			return err
		}
		return fmt.Errorf("localpg: postgres did not stop within %s of %s and was killed", stopTimeout, sig)
	}
}

// killTree SIGKILLs the postmaster and its children and waits until they are gone. The
// children go too because, left alone, they linger attached to the old shared memory for a
// moment after the postmaster dies, and a restart in that moment would refuse to start.
func (s *Server) killTree() error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	// Freezing the postmaster first stops it from starting new children (or replacing the
	// ones being killed) between listing and killing them.
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		<-s.exited // it had exited already
		return nil
	}
	children := childProcesses(s.cmd.Process.Pid)
	for _, pid := range children {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	return waitGone(children, 10*time.Second)
}

// removeFiles deletes what the server leaves that nobody may reuse: a temporary data folder
// and a separate socket folder.
func (s *Server) removeFiles() error {
	var errs []error
	if s.temp {
		errs = append(errs, os.RemoveAll(s.dir))
	}
	if s.sockDir != "" {
		errs = append(errs, os.RemoveAll(s.sockDir))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	return nil
}

// logTail returns the end of what the server logged since this Start.
func (s *Server) logTail() string { return s.logSince(s.logFrom) }

// logSince returns the end of postgres.log from offset on; it reads only the end, since a
// kept cluster's log grows run after run.
func (s *Server) logSince(offset int64) string {
	f, err := os.Open(s.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	if offset > fi.Size() {
		offset = 0 // the log was truncated meanwhile
	}
	offset = max(offset, fi.Size()-logTailBytes)
	b, _ := io.ReadAll(io.NewSectionReader(f, offset, fi.Size()-offset))
	return string(b)
}

// EnsureDatabase creates the database name on s unless it exists. Concurrent callers are
// safe: the one that loses the race finds the database there, which is all it asked for.
func EnsureDatabase(ctx context.Context, s *Server, name string) error {
	conn, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return fmt.Errorf("localpg: ensure database %s: %w", name, err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("localpg: ensure database %s: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	// 42P04 is duplicate_database; a creator that raced ours past that check instead trips
	// the unique index on pg_database (23505).
	if errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("localpg: create database %s: %w", name, err)
	}
	return nil
}
