package db

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"wxhub/db/dbsqlc"
	"wxhub/db/keyring"
)

// ErrNotFound means the tenant, account or credential does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict means a row with the same unique name already exists.
var ErrConflict = errors.New("already exists")

// Store is the one way in to wxhub's data: it runs the sqlc queries, encrypts secrets and
// credential values on the way in and decrypts them on the way out. Callers never see
// generated types or ciphertexts.
type Store struct {
	pool *pgxpool.Pool
	q    *dbsqlc.Queries
	ring *keyring.Ring
}

// NewStore returns a Store over pool that encrypts with ring.
func NewStore(pool *pgxpool.Pool, ring *keyring.Ring) *Store {
	return &Store{pool: pool, q: dbsqlc.New(pool), ring: ring}
}

// secretAD binds an account's secret ciphertext to the account, so it cannot be copied to
// another row.
func secretAD(appid string) []byte { return []byte("wxhub/accounts/" + appid + "/secret") }

// valueAD binds a credential value (current or previous) to its row.
func valueAD(accountID int64, kind string) []byte {
	return fmt.Appendf(nil, "wxhub/credentials/%d/%s", accountID, kind)
}

// Fingerprint is a short, non-reversible identifier of a value, stored so operators can
// match a token they see elsewhere without decrypting anything.
func Fingerprint(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:6])
}

func (s *Store) open(keyID *string, ciphertext, ad []byte) (string, error) {
	if ciphertext == nil {
		return "", nil
	}
	if keyID == nil {
		return "", errors.New("ciphertext without a key id")
	}
	plain, err := s.ring.Open(*keyID, ciphertext, ad)
	if err != nil {
		return "", err
	}
	return string(plain), nil
}

// isUniqueViolation reports whether err is PostgreSQL's unique_violation.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// notFound maps pgx's no-rows error to ErrNotFound, wrapped with what was looked for.
func notFound(err error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}
