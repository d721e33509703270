package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"wxhub/migrations"
)

// Migrator applies the embedded migrations to one database.
type Migrator struct {
	sqlDB    *sql.DB
	provider *goose.Provider
}

// NewMigrator prepares migrations for databaseURL. It takes goose's table-based lock rather
// than a session advisory lock, so migrating through a transaction pooler is safe and two
// processes starting at once apply each migration once.
func NewMigrator(databaseURL string) (*Migrator, error) {
	if databaseURL == "" {
		return nil, ErrNoDatabaseURL
	}
	connCfg, err := pgx.ParseConfig(databaseURL)
	if err != nil {
		return nil, errors.New("migrate: the database URL is not valid")
	}
	sqlDB := stdlib.OpenDB(*connCfg)
	locker, err := lock.NewPostgresTableLocker()
	if err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS,
		goose.WithLocker(locker), goose.WithDisableGlobalRegistry(true))
	if err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return &Migrator{sqlDB: sqlDB, provider: provider}, nil
}

// Up applies every pending migration and returns the versions it applied.
func (m *Migrator) Up(ctx context.Context) ([]int64, error) {
	results, err := m.provider.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate up: %w", err)
	}
	return versions(results), nil
}

// DownTo rolls back every applied migration above version (0 rolls back everything).
func (m *Migrator) DownTo(ctx context.Context, version int64) ([]int64, error) {
	results, err := m.provider.DownTo(ctx, version)
	if err != nil {
		return nil, fmt.Errorf("migrate down to %d: %w", version, err)
	}
	return versions(results), nil
}

// Down rolls back the most recent migration.
func (m *Migrator) Down(ctx context.Context) ([]int64, error) {
	result, err := m.provider.Down(ctx)
	if errors.Is(err, goose.ErrNoNextVersion) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("migrate down: %w", err)
	}
	return versions([]*goose.MigrationResult{result}), nil
}

// MigrationStatus says whether one migration is applied.
type MigrationStatus struct {
	Version int64
	Name    string
	Applied bool
}

// Status lists every known migration and whether it is applied.
func (m *Migrator) Status(ctx context.Context) ([]MigrationStatus, error) {
	statuses, err := m.provider.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate status: %w", err)
	}
	out := make([]MigrationStatus, 0, len(statuses))
	for _, s := range statuses {
		out = append(out, MigrationStatus{
			Version: s.Source.Version,
			Name:    s.Source.Path,
			Applied: s.State == goose.StateApplied,
		})
	}
	return out, nil
}

// Close releases the migrator's connections.
func (m *Migrator) Close() error {
	return m.sqlDB.Close()
}

func versions(results []*goose.MigrationResult) []int64 {
	out := make([]int64, 0, len(results))
	for _, r := range results {
		out = append(out, r.Source.Version)
	}
	return out
}
