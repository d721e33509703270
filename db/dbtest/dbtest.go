// Package dbtest gives tests a real, migrated, empty PostgreSQL database.
//
// It uses the server at WXHUB_TEST_DATABASE_URL when that is set (a URL whose user may
// create databases); otherwise it starts one throwaway cluster per test process from the
// PostgreSQL binaries on the machine, and removes it when the tests end. Every test gets its
// own database cloned from a migrated template, so tests run in parallel, commit, LISTEN and
// NOTIFY without seeing each other's rows.
//
// A package that uses it must run its tests through Main:
//
//	func TestMain(m *testing.M) { dbtest.Main(m) }
package dbtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"wxhub/db"
	"wxhub/db/localpg"
	"wxhub/migrations"
)

// EnvURL names the variable that points the harness at an existing server.
const EnvURL = "WXHUB_TEST_DATABASE_URL"

var (
	setupOnce sync.Once
	setupErr  error
	server    struct {
		baseURL  *url.URL // URL of the maintenance database; per-test URLs swap the path
		admin    *pgxpool.Pool
		template string
		own      *localpg.Server // nil when WXHUB_TEST_DATABASE_URL is used
	}
	databaseSeq atomic.Int64
)

// Main runs the package's tests and then stops the cluster the harness started, if any.
func Main(m *testing.M) {
	code := m.Run()
	teardown()
	os.Exit(code)
}

// URL returns the URL of a new, migrated, empty database that is dropped when t ends.
func URL(t testing.TB) string {
	t.Helper()
	setupOnce.Do(func() { setupErr = setup() })
	if setupErr != nil {
		t.Fatal(setupErr)
	}
	name := fmt.Sprintf("wxhub_test_%d_%d", os.Getpid(), databaseSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := server.admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+
		" TEMPLATE "+pgx.Identifier{server.template}.Sanitize()); err != nil {
		t.Fatalf("dbtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := server.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("dbtest: drop database %s: %v", name, err)
		}
	})
	return databaseURL(name)
}

// Pool returns a pool connected to a new database from URL; it is closed when t ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	dsn := URL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := db.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func databaseURL(name string) string {
	u := *server.baseURL
	u.Path = "/" + name
	return u.String()
}

func setup() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	raw := os.Getenv(EnvURL)
	if raw == "" {
		// Durability is off because the data is thrown away.
		s, err := localpg.Start(ctx, localpg.Options{})
		if errors.Is(err, localpg.ErrNoBinaries) {
			return fmt.Errorf("%w, or point %s at a server where the user may create databases", err, EnvURL)
		}
		if err != nil {
			return err
		}
		server.own = s
		raw = s.URL("postgres")
		// The line shows in test output that the harness, not a running server, was used.
		fmt.Fprintf(os.Stderr, "dbtest: started a throwaway PostgreSQL cluster on 127.0.0.1:%d (data in %s)\n", s.Port(), s.Dir())
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf("dbtest: %s must be a postgres:// URL", EnvURL)
	}
	server.baseURL = u
	admin, err := db.Open(ctx, raw)
	if err != nil {
		return fmt.Errorf("dbtest: %w", err)
	}
	server.admin = admin
	server.template, err = ensureTemplate(ctx, admin)
	return err
}

// ensureTemplate creates the migrated template database once per migration set. Its name
// carries a hash of the migrations, so a shared server keeps one template per schema; it is
// built under another name and renamed when complete, so a crash never leaves a half-migrated
// template behind.
func ensureTemplate(ctx context.Context, admin *pgxpool.Pool) (string, error) {
	hash, err := migrationsHash()
	if err != nil {
		return "", err
	}
	name := "wxhub_template_" + hash
	conn, err := admin.Acquire(ctx)
	if err != nil {
		return "", fmt.Errorf("dbtest: %w", err)
	}
	defer conn.Release()
	// Several test processes may share one server: only one builds the template.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext($1))", name); err != nil {
		return "", fmt.Errorf("dbtest: lock template: %w", err)
	}
	defer func() { _, _ = conn.Exec(context.Background(), "SELECT pg_advisory_unlock(hashtext($1))", name) }()

	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("dbtest: %w", err)
	}
	if exists {
		return name, nil
	}
	building := fmt.Sprintf("%s_building_%d", name, os.Getpid())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{building}.Sanitize()); err != nil {
		return "", fmt.Errorf("dbtest: %w", err)
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{building}.Sanitize()); err != nil {
		return "", fmt.Errorf("dbtest: create template: %w", err)
	}
	m, err := db.NewMigrator(databaseURL(building))
	if err != nil {
		return "", fmt.Errorf("dbtest: %w", err)
	}
	_, err = m.Up(ctx)
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("dbtest: migrate template: %w", err)
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{building}.Sanitize()+" RENAME TO "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("dbtest: %w", err)
	}
	return name, nil
}

// migrationsHash identifies the migration set by content.
func migrationsHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".sql") {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("dbtest: hash migrations: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

func teardown() {
	if server.admin != nil {
		server.admin.Close()
	}
	if server.own != nil {
		if err := server.own.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "dbtest: stop the throwaway cluster:", err)
		}
	}
}
