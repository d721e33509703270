package localpg

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// socketPathMax is the longest unix socket path the kernel takes (sun_path minus its NUL).
const socketPathMax = 107

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
	return "", ErrNoBinaries
}

// identity is the OS user the server runs as.
type identity struct {
	cred   *syscall.Credential // nil: the server runs as this process's user
	uid    int
	gid    int
	groups []int // all groups of the user, for judging folder permissions
}

// serverIdentity returns the identity to run PostgreSQL as: the server refuses to run as
// root, so root runs it as the postgres OS user.
func serverIdentity() (identity, error) {
	if os.Geteuid() != 0 {
		return identity{uid: os.Getuid(), gid: os.Getgid()}, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return identity{}, errors.New("localpg: running as root needs a `postgres` OS user to run the server as (it comes with the postgresql package)")
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	id := identity{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid: uid, gid: gid, groups: []int{gid}}
	if gids, err := u.GroupIds(); err == nil {
		for _, g := range gids {
			if n, err := strconv.Atoi(g); err == nil {
				id.groups = append(id.groups, n)
			}
		}
	}
	return id, nil
}

// own makes a folder the server's private one, as PostgreSQL demands of its data folder.
func (id identity) own(dir string) error {
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	if id.cred != nil {
		if err := os.Chown(dir, id.uid, id.gid); err != nil {
			return fmt.Errorf("localpg: %w", err)
		}
	}
	return nil
}

// checkTraversable fails when the server's user could not reach dir through its parents,
// which initdb and postgres would otherwise report in less direct words. Only a server run
// as another user can be locked out of a folder its caller reached.
func (id identity) checkTraversable(dir string) error {
	if id.cred == nil {
		return nil
	}
	var parents []string
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		parents = append(parents, p)
		if p == filepath.Dir(p) {
			break
		}
	}
	// Outermost first, so the error names the folder to fix first.
	slices.Reverse(parents)
	for _, p := range parents {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("localpg: %w", err)
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		if !id.canEnter(fi.Mode().Perm(), int(st.Uid), int(st.Gid)) {
			return fmt.Errorf("localpg: the postgres OS user cannot enter %s (mode %s, owner uid %d), "+
				"so the server could not reach %s; allow it with `chmod o+x %s` or put the data folder elsewhere",
				p, fi.Mode(), st.Uid, dir, p)
		}
	}
	return nil
}

// canEnter applies the permission bits the way the kernel does: the owner's bits alone
// count for the owner, the group's for a member, the others' for everyone else.
func (id identity) canEnter(perm fs.FileMode, uid, gid int) bool {
	switch {
	case uid == id.uid:
		return perm&0o100 != 0
	case slices.Contains(id.groups, gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// makeDataDir prepares a persistent data folder: an existing cluster is left as it is, an
// empty or missing folder becomes the server's private folder for initdb.
func makeDataDir(dir string, id identity) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil:
		if !fi.IsDir() {
			return fmt.Errorf("localpg: %s is not a folder", dir)
		}
		if hasCluster(dir) {
			return nil
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("localpg: %w", err)
		}
		if len(entries) > 0 {
			return fmt.Errorf("localpg: %s holds files but no PostgreSQL cluster (no PG_VERSION); give an empty or missing folder", dir)
		}
		return id.own(dir)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("localpg: %w", err)
	}
	var missing []string
	for p := filepath.Dir(dir); p != filepath.Dir(p); p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		}
		missing = append(missing, p)
	}
	for _, p := range slices.Backward(missing) {
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("localpg: %w", err)
		}
		if id.cred != nil {
			// A strict umask would lock the server's user out of folders made for it.
			if fi, err := os.Stat(p); err == nil {
				_ = os.Chmod(p, fi.Mode().Perm()|0o111)
			}
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	return id.own(dir)
}

// hasCluster reports whether initdb has run in dir; PG_VERSION is what PostgreSQL itself
// checks for.
func hasCluster(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "PG_VERSION"))
	return err == nil
}

// checkNoLivePostmaster fails when postmaster.pid names a process that is still alive: two
// servers on one cluster would corrupt it. A pid file whose process is gone is what a crash
// leaves, and the server replaces it itself and recovers.
func checkNoLivePostmaster(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "postmaster.pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return nil // the server judges a damaged file itself
	}
	// Like PostgreSQL, count only a process this user may signal: any other cannot hold a
	// cluster owned by this user.
	if syscall.Kill(pid, 0) == nil {
		return fmt.Errorf("localpg: a PostgreSQL server (pid %d) is still running on %s; stop it (kill -INT %d) before starting another", pid, dir, pid)
	}
	return nil
}

// initdb creates the cluster in dir (an empty folder owned by the server's user).
func initdb(ctx context.Context, bin string, id identity, dir string, durable bool) error {
	args := []string{"-D", dir, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--locale=C"}
	if !durable {
		args = append(args, "--no-sync")
	}
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), args...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: id.cred}
	// On cancel initdb gets SIGINT, on which it removes what it wrote; SIGKILL would leave a
	// half-built cluster with a PG_VERSION that later starts would take for a complete one.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 10 * time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("localpg: initdb: %w\n%s", err, out)
	}
	return nil
}

// socketDir returns the folder for the server's unix socket: the data folder when the
// socket's path fits the kernel's limit, else a new short temporary folder.
func socketDir(dir string, id identity) (string, error) {
	if len(dir)+len("/.s.PGSQL.65535") <= socketPathMax {
		// Sockets and their lock files left by a crash on another port would pile up; no
		// server runs on the cluster now (checked before), so they are all stale.
		stale, _ := filepath.Glob(filepath.Join(dir, ".s.PGSQL.*"))
		for _, f := range stale {
			_ = os.Remove(f)
		}
		return dir, nil
	}
	d, err := os.MkdirTemp("", "wxhub-pgsock-")
	if err != nil {
		return "", fmt.Errorf("localpg: %w", err)
	}
	if err := id.own(d); err != nil {
		_ = os.RemoveAll(d)
		return "", err
	}
	return d, nil
}

// openLog opens postgres.log for appending, so the lines of earlier runs (a crash, a
// recovery) stay readable.
func openLog(path string, id identity) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("localpg: %w", err)
	}
	if id.cred != nil {
		// Everything in a data folder belongs to the server's user, as PostgreSQL's own
		// tools expect.
		if err := f.Chown(id.uid, id.gid); err != nil {
			f.Close()
			return nil, fmt.Errorf("localpg: %w", err)
		}
	}
	return f, nil
}

// freePort asks the kernel for an unused loopback port. Another process could take it
// before the server binds; Start then tries another port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("localpg: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// childProcesses lists the processes whose parent is ppid, from /proc. Elsewhere it finds
// none, and the children then end on their own when they notice the postmaster is gone.
func childProcesses(ppid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if _, parent, ok := procStat(pid); ok && parent == ppid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat reads a process's state letter and parent from /proc/PID/stat.
func procStat(pid int) (state byte, ppid int, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	// The command name in parentheses may hold spaces and parentheses itself.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return f[0][0], ppid, err == nil
}

// waitGone waits until the processes have exited. A zombie counts as gone: it has released
// its memory, and reaping it is its new parent's business.
func waitGone(pids []int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids = slices.DeleteFunc(pids, func(pid int) bool {
			state, _, ok := procStat(pid)
			return !ok || state == 'Z' || state == 'X'
		})
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("localpg: server processes %v still alive %s after SIGKILL", pids, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
