// Package db is wxhub's data layer: the pgx pool, migrations, and the sqlc-generated
// queries in db/dbsqlc (generated, never edited by hand).
package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNoDatabaseURL is returned when a command needs PostgreSQL and no URL was given.
var ErrNoDatabaseURL = errors.New("no database URL: set --database-url or DATABASE_URL")

// Open connects a pool to databaseURL and checks that the server answers, since a pool
// connects lazily and a wrong URL would otherwise surface on the first request.
func Open(ctx context.Context, databaseURL string) (*pgxpool.Pool, error) {
	return OpenFor(ctx, databaseURL, "")
}

// OpenFor is Open for a named part of wxhub: its connections carry application as their
// application_name (unless the URL names one), so a DBA sees in pg_stat_activity which
// process holds what.
func OpenFor(ctx context.Context, databaseURL, application string) (*pgxpool.Pool, error) {
	if databaseURL == "" {
		return nil, ErrNoDatabaseURL
	}
	cfg, err := pgxpool.ParseConfig(databaseURL)
	if err != nil {
		// pgx's parse errors can echo the URL, password included, so they stay out.
		return nil, errors.New("open database: the database URL is not valid")
	}
	if _, named := cfg.ConnConfig.RuntimeParams["application_name"]; !named && application != "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = application
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open database %s: %w", describe(cfg), err)
	}
	return pool, nil
}

// describe names a database without its password, for error messages.
func describe(cfg *pgxpool.Config) string {
	return fmt.Sprintf("%s@%s:%d/%s", cfg.ConnConfig.User, cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)
}

// WaitForDatabase tries to reach the database at url until it answers or wait has passed,
// for a process started beside the database (Docker Compose) that must not give up while
// the server is still starting.
func WaitForDatabase(ctx context.Context, url string, wait time.Duration) error {
	if url == "" {
		return ErrNoDatabaseURL
	}
	deadline := time.Now().Add(wait)
	for {
		attemptCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := pgx.Connect(attemptCtx, url)
		if err == nil {
			err = conn.Ping(attemptCtx)
			conn.Close(attemptCtx)
		}
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the database did not answer within %s: %w", wait, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
