package dbtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// errNoBinaries explains what to install, since a missing server is the usual first-run
// failure on a developer machine.
var errNoBinaries = errors.New("dbtest: PostgreSQL server binaries (initdb, postgres) not found in PATH " +
	"or in `pg_config --bindir`; install them (Debian/Ubuntu: apt-get install postgresql) " +
	"or point WXHUB_TEST_DATABASE_URL at a server where the user may create databases")

// cluster is a throwaway PostgreSQL server owned by this test process.
type cluster struct {
	dir    string // temporary folder: data, socket and log
	port   int
	cmd    *exec.Cmd
	exited chan struct{} // closed when the server process has ended
}

// findBinaries returns the folder holding initdb and postgres. Debian keeps them outside
// PATH, so pg_config's bindir is the fallback.
func findBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dir := filepath.Dir(real)
			if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
				return dir, nil
			}
		}
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir, nil
		}
	}
	return "", errNoBinaries
}

// serverCredential returns the identity to run PostgreSQL as: the server refuses to run as
// root, so root runs it as the postgres OS user.
func serverCredential() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, os.Getuid(), os.Getgid(), nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, errors.New("dbtest: running as root needs a `postgres` OS user to run the server as (it comes with the postgresql package)")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}

// startCluster initialises and starts a server tuned for tests: durability is off because
// the data is thrown away.
func startCluster() (*cluster, error) {
	bin, err := findBinaries()
	if err != nil {
		return nil, err
	}
	cred, uid, gid, err := serverCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "wxhub-pg-")
	if err != nil {
		return nil, fmt.Errorf("dbtest: %w", err)
	}
	c := &cluster{dir: dir, exited: make(chan struct{})}
	if err := c.start(bin, cred, uid, gid); err != nil {
		c.stop()
		return nil, err
	}
	return c, nil
}

func (c *cluster) start(bin string, cred *syscall.Credential, uid, gid int) error {
	if err := os.Chown(c.dir, uid, gid); err != nil {
		return fmt.Errorf("dbtest: %w", err)
	}
	data := filepath.Join(c.dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return fmt.Errorf("dbtest: initdb: %w\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	c.port = port
	logFile, err := os.Create(filepath.Join(c.dir, "postgres.log"))
	if err != nil {
		return fmt.Errorf("dbtest: %w", err)
	}
	defer logFile.Close()
	c.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+c.dir,
		"-c", "fsync=off",
		"-c", "synchronous_commit=off",
		"-c", "full_page_writes=off",
		"-c", "max_connections=500",
		"-c", "shared_buffers=256MB",
		"-c", "log_min_messages=warning",
	)
	c.cmd.Stdout = logFile
	c.cmd.Stderr = logFile
	// Pdeathsig ends the server if the test process dies without cleaning up; it is tied to
	// the forking thread, so the fork happens on a thread that stays locked until the
	// server exits.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := c.cmd.Start(); err != nil {
			started <- err
			close(c.exited)
			return
		}
		started <- nil
		_ = c.cmd.Wait()
		close(c.exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("dbtest: start postgres: %w", err)
	}
	return c.waitReady(30 * time.Second)
}

// waitReady polls until the server accepts connections, or reports why it did not.
func (c *cluster) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, c.url("postgres"))
		cancel()
		if err == nil {
			conn.Close(context.Background())
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("dbtest: postgres exited during start-up:\n%s", c.logTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("dbtest: postgres not ready after %s: %w\n%s", timeout, err, c.logTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *cluster) url(database string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, database)
}

func (c *cluster) logTail() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// stop shuts the server down (fast mode: open sessions are ended) and removes its files.
func (c *cluster) stop() {
	if c.cmd != nil && c.cmd.Process != nil {
		_ = c.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-c.exited:
		case <-time.After(15 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
	_ = os.RemoveAll(c.dir)
}

// freePort asks the kernel for an unused loopback port. Another process could take it
// before the server binds; start-up then fails with the server's own message.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("dbtest: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
