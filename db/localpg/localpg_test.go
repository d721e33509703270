package localpg_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"wxhub/db/localpg"
)

// start starts a server and stops it when t ends, in case the test does not get there.
func start(t *testing.T, opts localpg.Options) *localpg.Server {
	t.Helper()
	s, err := localpg.Start(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Stop()) })
	return s
}

// persistentDir returns a data folder path under a new folder that the server's user may
// enter (t.TempDir's folders are private to the test's user, which keeps a server run as
// the postgres user out). The data folder and a parent of it do not exist yet.
func persistentDir(t *testing.T) string {
	t.Helper()
	base, err := os.MkdirTemp("", "localpg-test-")
	require.NoError(t, err)
	require.NoError(t, os.Chmod(base, 0o755))
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	return filepath.Join(base, "state", "pg")
}

// connect opens a connection to database on s, closed when t ends.
func connect(t *testing.T, s *localpg.Server, database string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), s.URL(database))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func mustExec(t *testing.T, s *localpg.Server, sql string) {
	t.Helper()
	_, err := connect(t, s, "postgres").Exec(t.Context(), sql)
	require.NoError(t, err)
}

func notes(t *testing.T, s *localpg.Server) []string {
	t.Helper()
	rows, err := connect(t, s, "postgres").Query(t.Context(), "SELECT body FROM notes ORDER BY id")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return got
}

func systemIdentifier(t *testing.T, s *localpg.Server) int64 {
	t.Helper()
	var id int64
	require.NoError(t, connect(t, s, "postgres").QueryRow(t.Context(),
		"SELECT system_identifier FROM pg_control_system()").Scan(&id))
	return id
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestTempClusterStopRemovesItsFolder(t *testing.T) {
	t.Parallel()
	s, err := localpg.Start(t.Context(), localpg.Options{})
	require.NoError(t, err)
	require.DirExists(t, s.Dir())
	require.FileExists(t, filepath.Join(s.Dir(), "postgres.log"))
	require.Equal(t, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port()), s.URL("postgres"))
	mustExec(t, s, "SELECT 1")

	require.NoError(t, s.Stop())
	require.NoDirExists(t, s.Dir())
	require.NoError(t, s.Stop(), "a second Stop does nothing")
	_, err = pgx.Connect(t.Context(), s.URL("postgres"))
	require.Error(t, err, "the server is gone")
}

func TestPersistentDataSurvivesStop(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		durable bool
	}{
		{"durable", true},
		{"fast", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := localpg.Options{DataDir: persistentDir(t), Durable: tc.durable}
			first, err := localpg.Start(t.Context(), opts)
			require.NoError(t, err)
			require.Equal(t, opts.DataDir, first.Dir())
			mustExec(t, first, "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'kept')")
			cluster := systemIdentifier(t, first)
			require.NoError(t, first.Stop())
			require.DirExists(t, opts.DataDir, "Stop keeps a given DataDir")

			second := start(t, opts)
			require.Equal(t, cluster, systemIdentifier(t, second), "the second start reuses the cluster instead of running initdb")
			require.Equal(t, []string{"kept"}, notes(t, second))
		})
	}
}

func TestCrashThenStartRecoversCommittedData(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		port  func(t *testing.T) int
		crash func(*localpg.Server) error
	}{
		{"kill, same port", freePort, (*localpg.Server).Kill},
		{"kill, any port", func(*testing.T) int { return 0 }, (*localpg.Server).Kill},
		{"immediate stop, same port", freePort, (*localpg.Server).StopImmediate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := localpg.Options{DataDir: persistentDir(t), Port: tc.port(t), Durable: true}
			first, err := localpg.Start(t.Context(), opts)
			require.NoError(t, err)
			mustExec(t, first, "CREATE TABLE notes (id int PRIMARY KEY, body text)")
			mustExec(t, first, "INSERT INTO notes VALUES (1, 'committed before the crash')")
			// An open session at the crash, as a real one would have.
			open := connect(t, first, "postgres")
			_, err = open.Exec(t.Context(), "BEGIN; INSERT INTO notes VALUES (2, 'never committed')")
			require.NoError(t, err)

			require.NoError(t, tc.crash(first))
			require.Error(t, open.Ping(t.Context()), "the open session ended with the server")
			require.NoError(t, first.Stop(), "Stop after a crash does nothing")

			second := start(t, opts)
			require.Equal(t, []string{"committed before the crash"}, notes(t, second))
			mustExec(t, second, "INSERT INTO notes VALUES (3, 'after recovery')")
		})
	}
}

func TestTwoTempClustersRunSideBySide(t *testing.T) {
	t.Parallel()
	// Started at the same time, as the test binaries of several packages do.
	var servers [2]*localpg.Server
	var errs [2]error
	var wg sync.WaitGroup
	for i := range servers {
		wg.Go(func() { servers[i], errs[i] = localpg.Start(t.Context(), localpg.Options{}) })
	}
	wg.Wait()
	for i, s := range servers {
		if s != nil {
			t.Cleanup(func() { require.NoError(t, s.Stop()) })
		}
		require.NoError(t, errs[i])
	}
	a, b := servers[0], servers[1]
	require.NotEqual(t, a.Port(), b.Port())
	require.NotEqual(t, a.Dir(), b.Dir())
	require.NotEqual(t, systemIdentifier(t, a), systemIdentifier(t, b))

	mustExec(t, a, "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'only in a')")
	var exists bool
	require.NoError(t, connect(t, b, "postgres").QueryRow(t.Context(), "SELECT to_regclass('notes') IS NOT NULL").Scan(&exists))
	require.False(t, exists, "the clusters share no data")
}

func TestEnsureDatabaseIsIdempotent(t *testing.T) {
	t.Parallel()
	s := start(t, localpg.Options{})
	for _, name := range []string{"wxhub_dev", "Mixed Case-name"} {
		t.Run(name, func(t *testing.T) {
			require.NoError(t, localpg.EnsureDatabase(t.Context(), s, name))
			mustExec(t, s, "SELECT 1") // the maintenance database still answers
			conn := connect(t, s, name)
			_, err := conn.Exec(t.Context(), "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'kept')")
			require.NoError(t, err)

			require.NoError(t, localpg.EnsureDatabase(t.Context(), s, name))
			var body string
			require.NoError(t, connect(t, s, name).QueryRow(t.Context(), "SELECT body FROM notes").Scan(&body))
			require.Equal(t, "kept", body, "a second call leaves the database as it was")
		})
	}
	t.Run("concurrent callers", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 6 {
			wg.Go(func() { assert.NoError(t, localpg.EnsureDatabase(t.Context(), s, "raced")) })
		}
		wg.Wait()
		connect(t, s, "raced")
	})
}

func TestSecondServerOnARunningClusterIsRefusedNamingThePid(t *testing.T) {
	t.Parallel()
	opts := localpg.Options{DataDir: persistentDir(t)}
	running := start(t, opts)

	_, err := localpg.Start(t.Context(), opts)
	require.Error(t, err)
	pid, readErr := os.ReadFile(filepath.Join(running.Dir(), "postmaster.pid"))
	require.NoError(t, readErr)
	var want int
	_, scanErr := fmt.Sscan(string(pid), &want)
	require.NoError(t, scanErr)
	require.Contains(t, err.Error(), fmt.Sprintf("a PostgreSQL server (pid %d) is still running", want))
	mustExec(t, running, "SELECT 1") // the running server is untouched
}

func TestStartRejectsAnUnusableDataDir(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		rootOnly bool
		prepare  func(t *testing.T, dir string) // dir does not exist yet; its parent does
		want     string
	}{
		{
			name: "folder with other files",
			prepare: func(t *testing.T, dir string) {
				require.NoError(t, os.MkdirAll(dir, 0o755))
				require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644))
			},
			want: "holds files but no PostgreSQL cluster",
		},
		{
			name: "a file",
			prepare: func(t *testing.T, dir string) {
				require.NoError(t, os.MkdirAll(filepath.Dir(dir), 0o755))
				require.NoError(t, os.WriteFile(dir, nil, 0o644))
			},
			want: "is not a folder",
		},
		{
			// A repository checked out by root under a private folder, as in ./.wxhub.
			name:     "parent the server's user cannot enter",
			rootOnly: true,
			prepare: func(t *testing.T, dir string) {
				require.NoError(t, os.MkdirAll(filepath.Dir(dir), 0o700))
			},
			want: "the postgres OS user cannot enter",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.rootOnly && os.Geteuid() != 0 {
				t.Skip("only a server run as another user can be locked out")
			}
			dir := persistentDir(t)
			tc.prepare(t, dir)
			_, err := localpg.Start(t.Context(), localpg.Options{DataDir: dir})
			require.ErrorContains(t, err, tc.want)
		})
	}
}

func TestStartOnATakenPortQuotesTheServerLog(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()

	_, err = localpg.Start(t.Context(), localpg.Options{Port: l.Addr().(*net.TCPAddr).Port})
	require.ErrorContains(t, err, "postgres exited during start-up")
	require.ErrorContains(t, err, "could not create any TCP/IP sockets", "the error quotes postgres.log")
}

func TestDataDirTooLongForASocketPathStarts(t *testing.T) {
	t.Parallel()
	// The kernel takes unix socket paths up to 107 bytes, so the socket goes elsewhere.
	dir := filepath.Join(persistentDir(t), strings.Repeat("d", 60), strings.Repeat("e", 60))
	s := start(t, localpg.Options{DataDir: dir})
	mustExec(t, s, "SELECT 1")
	require.NoError(t, s.Stop())
	require.FileExists(t, filepath.Join(dir, "PG_VERSION"))
}

func TestStartCancelledDuringInitdbLeavesNoHalfBuiltCluster(t *testing.T) {
	t.Parallel()
	opts := localpg.Options{DataDir: persistentDir(t), Durable: true}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	_, err := localpg.Start(ctx, opts)
	require.Error(t, err)

	// Whether initdb was interrupted (and removed its work) or had just finished, the
	// folder must now start.
	s := start(t, opts)
	mustExec(t, s, "SELECT 1")
}
