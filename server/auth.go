package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	"wxhub/db"
)

// Roles a key can have.
const (
	RoleAdmin  = "admin"  // everything
	RoleTenant = "tenant" // credentials, settings and reads of its own tenant's accounts
)

// keyPrefix makes wxhub keys recognisable to secret scanners and people.
const keyPrefix = "wxh_"

// NewKey returns a new random API key and the parts stored for it. The key is
// wxh_<lookup 16 hex><secret 48 hex><checksum 8 hex>; the checksum catches typos before any
// database read.
func NewKey() (key, lookup string, hash []byte, err error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", "", nil, err
	}
	payload := hex.EncodeToString(raw)
	key = keyPrefix + payload + checksum(payload)
	lookup, hash = keyLookup(key)
	return key, lookup, hash, nil
}

func checksum(payload string) string {
	sum := sha256.Sum256([]byte(keyPrefix + payload))
	return hex.EncodeToString(sum[:4])
}

// errMalformedKey means the key cannot be a wxhub key: wrong checksum.
var errMalformedKey = errors.New("malformed API key")

// keyLookup returns the indexed, non-secret lookup part of a key and the hash stored for it.
// Keys that are not in wxhub's format (a bootstrap key chosen by an operator) are looked up
// by a prefix of their hash.
func keyLookup(key string) (lookup string, hash []byte) {
	sum := sha256.Sum256([]byte(key))
	payload, ok := strings.CutPrefix(key, keyPrefix)
	if ok && len(payload) == 72 {
		return payload[:16], sum[:]
	}
	return "h_" + hex.EncodeToString(sum[:8]), sum[:]
}

// checkKeyFormat rejects keys with wxhub's prefix and length whose checksum is wrong.
func checkKeyFormat(key string) error {
	payload, ok := strings.CutPrefix(key, keyPrefix)
	if ok && len(payload) == 72 && checksum(payload[:64]) != payload[64:] {
		return errMalformedKey
	}
	return nil
}

// Principal is who is calling.
type Principal struct {
	KeyID      int64
	Role       string
	TenantID   int64 // 0 for admin keys
	TenantName string
}

// mayAccess reports whether the principal may touch an account of this tenant.
func (p Principal) mayAccess(tenantID int64) bool {
	return p.Role == RoleAdmin || p.TenantID == tenantID
}

type keyEntry struct {
	key      db.APIKey
	epoch    uint64
	loadedAt time.Time
}

// keyCache keeps authenticated keys in memory, so a request with a known key touches no
// database. A revocation arrives by NOTIFY; entries from an older listener session or older
// than the bound are read again.
type keyCache struct {
	store *db.Store
	log   *slog.Logger
	bound time.Duration
	epoch uint64
	// revocations counts revocation notices, so a key read just before its revocation
	// committed is not cached after the notice went by.
	revocations uint64
	mu          sync.Mutex
	byKey       map[[32]byte]keyEntry
	touch       sync.Map // key id → time of the last last_used_at update
}

func newKeyCache(store *db.Store, bound time.Duration, log *slog.Logger) *keyCache {
	return &keyCache{store: store, log: log, bound: bound, byKey: map[[32]byte]keyEntry{}}
}

func (k *keyCache) sessionStarted() {
	k.mu.Lock()
	k.epoch++
	k.mu.Unlock()
}

func (k *keyCache) revoked(lookup string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.revocations++
	for h, e := range k.byKey {
		if e.key.Lookup == lookup {
			delete(k.byKey, h)
		}
	}
}

var errBadKey = errors.New("unknown, revoked or expired API key")

// authenticate resolves a bearer key to its principal.
func (k *keyCache) authenticate(ctx context.Context, key string, listenerUp bool) (Principal, error) {
	if err := checkKeyFormat(key); err != nil {
		return Principal{}, err
	}
	lookup, hash := keyLookup(key)
	h := [32]byte(hash)
	now := time.Now()
	k.mu.Lock()
	e, ok := k.byKey[h]
	epoch, revocations := k.epoch, k.revocations
	k.mu.Unlock()
	if !ok || e.epoch != epoch || (!listenerUp && now.Sub(e.loadedAt) > k.bound) {
		stored, err := k.store.GetAPIKey(ctx, lookup)
		if errors.Is(err, db.ErrNotFound) {
			return Principal{}, errBadKey
		}
		if err != nil {
			return Principal{}, err
		}
		e = keyEntry{key: stored, epoch: epoch, loadedAt: now}
		k.mu.Lock()
		if k.revocations == revocations {
			k.byKey[h] = e
		}
		k.mu.Unlock()
	}
	if subtle.ConstantTimeCompare(e.key.Hash, hash) != 1 || e.key.RevokedAt != nil ||
		(e.key.ExpiresAt != nil && !now.Before(*e.key.ExpiresAt)) {
		return Principal{}, errBadKey
	}
	k.touchLater(e.key.ID, now)
	p := Principal{KeyID: e.key.ID, Role: e.key.Role, TenantName: e.key.TenantName}
	if e.key.TenantID != nil {
		p.TenantID = *e.key.TenantID
	}
	return p, nil
}

// touchLater updates last_used_at at most once a minute per key, off the request path.
func (k *keyCache) touchLater(id int64, now time.Time) {
	if last, ok := k.touch.Load(id); ok && now.Sub(last.(time.Time)) < time.Minute {
		return
	}
	k.touch.Store(id, now)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := k.store.TouchAPIKey(ctx, id); err != nil {
			k.log.Warn("last_used_at not recorded", "key_id", id, "err", err)
		}
	}()
}
