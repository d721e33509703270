package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"wxhub/db/dbsqlc"
)

// APIKey is a stored API key: never the key itself, only its lookup part and hash.
type APIKey struct {
	ID         int64
	Lookup     string
	Hash       []byte
	Name       string
	Role       string
	TenantID   *int64
	TenantName string
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
	LastUsedAt *time.Time
}

// NewAPIKey is what creating a key stores.
type NewAPIKey struct {
	Lookup    string
	Hash      []byte
	Name      string
	Role      string
	Tenant    string // required for role tenant, empty for admin
	ExpiresAt *time.Time
}

// CreateAPIKey stores a new key; ErrNotFound if the tenant does not exist.
func (s *Store) CreateAPIKey(ctx context.Context, k NewAPIKey) (APIKey, error) {
	p := dbsqlc.ApiKeyCreateParams{Lookup: k.Lookup, Hash: k.Hash, Name: k.Name, Role: k.Role, ExpiresAt: k.ExpiresAt}
	var tenantName string
	if k.Tenant != "" {
		t, err := s.q.TenantGetByName(ctx, k.Tenant)
		if err != nil {
			return APIKey{}, notFound(err, "tenant "+k.Tenant)
		}
		p.TenantID, tenantName = &t.ID, t.Name
	}
	row, err := s.q.ApiKeyCreate(ctx, p)
	if isUniqueViolation(err) {
		return APIKey{}, fmt.Errorf("create api key: %w", ErrConflict)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("create api key: %w", err)
	}
	return APIKey{ID: row.ID, Lookup: row.Lookup, Hash: row.Hash, Name: row.Name, Role: row.Role,
		TenantID: row.TenantID, TenantName: tenantName, CreatedAt: row.CreatedAt, ExpiresAt: row.ExpiresAt}, nil
}

// ErrKeyRevoked means the bootstrap key exists but was revoked; it is not brought back.
var ErrKeyRevoked = errors.New("the key was revoked")

// EnsureAdminKey makes sure an admin key with this lookup and hash exists. ErrKeyRevoked if
// it was revoked: it stays revoked.
func (s *Store) EnsureAdminKey(ctx context.Context, lookup string, hash []byte, name string) error {
	revoked, err := s.q.ApiKeyEnsureAdmin(ctx, dbsqlc.ApiKeyEnsureAdminParams{Lookup: lookup, Hash: hash, Name: name})
	if err != nil {
		return fmt.Errorf("ensure bootstrap admin key: %w", err)
	}
	if revoked {
		return fmt.Errorf("ensure bootstrap admin key: %w", ErrKeyRevoked)
	}
	return nil
}

// GetAPIKey finds a key by its lookup part.
func (s *Store) GetAPIKey(ctx context.Context, lookup string) (APIKey, error) {
	r, err := s.q.ApiKeyGetByLookup(ctx, lookup)
	if err != nil {
		return APIKey{}, notFound(err, "api key")
	}
	k := APIKey{ID: r.ID, Lookup: r.Lookup, Hash: r.Hash, Name: r.Name, Role: r.Role, TenantID: r.TenantID,
		CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt, LastUsedAt: r.LastUsedAt}
	if r.TenantName != nil {
		k.TenantName = *r.TenantName
	}
	return k, nil
}

// ListAPIKeys returns every key (without secrets: none are stored).
func (s *Store) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	rows, err := s.q.ApiKeyList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	out := make([]APIKey, 0, len(rows))
	for _, r := range rows {
		k := APIKey{ID: r.ID, Lookup: r.Lookup, Name: r.Name, Role: r.Role, TenantID: r.TenantID,
			CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, RevokedAt: r.RevokedAt, LastUsedAt: r.LastUsedAt}
		if r.TenantName != nil {
			k.TenantName = *r.TenantName
		}
		out = append(out, k)
	}
	return out, nil
}

// RevokeAPIKey revokes a key and notifies API nodes; ErrNotFound for an unknown id.
func (s *Store) RevokeAPIKey(ctx context.Context, id int64) error {
	_, err := s.q.ApiKeyRevoke(ctx, id)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("revoke api key %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("revoke api key %d: %w", id, err)
	}
	return nil
}

// TouchAPIKey records that a key was used (at most once a minute per key).
func (s *Store) TouchAPIKey(ctx context.Context, id int64) error {
	if err := s.q.ApiKeyTouch(ctx, id); err != nil {
		return fmt.Errorf("touch api key %d: %w", id, err)
	}
	return nil
}

// Ping checks that the database answers, for the readiness check.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }
