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
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

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
	return lookupOf(key, sum), sum[:]
}

// lookupOf is keyLookup's lookup part for a key whose SHA-256 is already known.
func lookupOf(key string, sum [32]byte) string {
	payload, ok := strings.CutPrefix(key, keyPrefix)
	if ok && len(payload) == 72 {
		return payload[:16]
	}
	return "h_" + hex.EncodeToString(sum[:8])
}

// Bootstrap keys, chosen by an operator, are 16 to 256 visible ASCII characters.
const (
	minBootstrapKey = 16
	maxBootstrapKey = 256
)

// checkKeyFormat refuses, before any lookup, what cannot be a key: a string with wxhub's
// prefix that is not 72 lowercase hex characters with the right checksum, or any other
// string that is not 16 to 256 visible ASCII characters (a bootstrap key).
func checkKeyFormat(key string) error {
	if payload, ok := strings.CutPrefix(key, keyPrefix); ok {
		if len(payload) != 72 || strings.Trim(payload, "0123456789abcdef") != "" || checksum(payload[:64]) != payload[64:] {
			return errMalformedKey
		}
		return nil
	}
	if len(key) < minBootstrapKey || len(key) > maxBootstrapKey {
		return errMalformedKey
	}
	for _, c := range []byte(key) {
		if c < 0x21 || c > 0x7e {
			return errMalformedKey
		}
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
	key       db.APIKey
	principal Principal
	epoch     uint64
	loadedAt  time.Time
}

// keyCache keeps authenticated keys in memory, so a request with a known key touches no
// database. A revocation arrives by NOTIFY; entries from an older listener session or older
// than the bound are read again.
type keyCache struct {
	store *db.Store
	log   *slog.Logger
	bound time.Duration
	epoch atomic.Uint64 // listener session; entries of an older one are read again
	// revocations counts revocation notices, so a key read just before its revocation
	// committed is not cached after the notice went by.
	revocations uint64
	mu          sync.Mutex // orders revocations and installs; reads take no lock
	byKey       sync.Map   // [32]byte SHA-256 of the key → keyEntry
	touch       sync.Map   // key id → time of the last last_used_at update
	// failures limits, per client address, lookups of keys that turned out unknown.
	failures *addrLimiter
	lookups  atomic.Int64
}

func newKeyCache(store *db.Store, bound time.Duration, log *slog.Logger, failuresPerSecond float64) *keyCache {
	return &keyCache{store: store, log: log, bound: bound, failures: newAddrLimiter(failuresPerSecond)}
}

func (k *keyCache) sessionStarted() { k.epoch.Add(1) }

func (k *keyCache) revoked(lookup string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.revocations++
	k.byKey.Range(func(h, e any) bool {
		if e.(keyEntry).key.Lookup == lookup {
			k.byKey.Delete(h)
		}
		return true
	})
}

var (
	errBadKey         = errors.New("unknown, revoked or expired API key")
	errTooManyBadKeys = errors.New("too many unknown API keys from this address; slow down")
)

// authenticate resolves a bearer key to its principal. addr is the client's address: the
// database is asked about a key not cached only while that address has not sent too many
// unknown keys.
func (k *keyCache) authenticate(ctx context.Context, key, addr string, listenerUp bool) (Principal, error) {
	now := time.Now()
	sum := sha256.Sum256([]byte(key))
	if p, found, err := k.cached(sum, listenerUp, now); found {
		return p, err
	}
	if err := checkKeyFormat(key); err != nil {
		return Principal{}, err
	}
	if k.failures.exhausted(addr, now) {
		return Principal{}, errTooManyBadKeys
	}
	epoch := k.epoch.Load()
	k.mu.Lock()
	revocations := k.revocations
	k.mu.Unlock()
	k.lookups.Add(1)
	stored, err := k.store.GetAPIKey(ctx, lookupOf(key, sum))
	if errors.Is(err, db.ErrNotFound) || err == nil && subtle.ConstantTimeCompare(stored.Hash, sum[:]) != 1 {
		// Only keys whose hash matched are cached: keys sharing a real key's lookup prefix
		// must not grow the cache.
		k.failures.failed(addr, now)
		return Principal{}, errBadKey
	}
	if err != nil {
		return Principal{}, err
	}
	e := keyEntry{key: stored, epoch: epoch, loadedAt: now,
		principal: Principal{KeyID: stored.ID, Role: stored.Role, TenantName: stored.TenantName}}
	if stored.TenantID != nil {
		e.principal.TenantID = *stored.TenantID
	}
	k.mu.Lock()
	if k.revocations == revocations {
		k.byKey.Store(sum, e)
	}
	k.mu.Unlock()
	return k.admit(e, now)
}

// cached answers for a key this node holds and may trust without a lookup: loaded in the
// current listener session, and within the bound of its load while the listener is down.
// found is false when the key must be looked up. sum, the key's SHA-256, is the cache's index,
// so a cached key costs one hash and no lock.
func (k *keyCache) cached(sum [32]byte, listenerUp bool, now time.Time) (p Principal, found bool, err error) {
	v, ok := k.byKey.Load(sum)
	if !ok {
		return Principal{}, false, nil
	}
	e := v.(keyEntry)
	if e.epoch != k.epoch.Load() || !listenerUp && now.Sub(e.loadedAt) > k.bound {
		return Principal{}, false, nil
	}
	p, err = k.admit(e, now)
	return p, true, err
}

// admit checks a known key is still usable and records its use.
func (k *keyCache) admit(e keyEntry, now time.Time) (Principal, error) {
	if e.key.RevokedAt != nil || (e.key.ExpiresAt != nil && !now.Before(*e.key.ExpiresAt)) {
		return Principal{}, errBadKey
	}
	k.touchLater(e.key.ID, now)
	return e.principal, nil
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

// entries is how many keys the cache holds.
func (k *keyCache) entries() int {
	n := 0
	k.byKey.Range(func(any, any) bool { n++; return true })
	return n
}

// addrLimiter is a token bucket per client address, spent by failures only: an address that
// has sent no unknown key is never limited, one that sends many is refused before they reach
// the database.
type addrLimiter struct {
	perSecond float64 // negative: no limit
	mu        sync.Mutex
	byAddr    map[string]*rate.Limiter
}

func newAddrLimiter(perSecond float64) *addrLimiter {
	return &addrLimiter{perSecond: perSecond, byAddr: map[string]*rate.Limiter{}}
}

// exhausted reports whether addr has no failure left to spend now.
func (a *addrLimiter) exhausted(addr string, now time.Time) bool {
	if a.perSecond < 0 {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	l, ok := a.byAddr[addr]
	return ok && l.TokensAt(now) < 1
}

// failed spends one failure of addr.
func (a *addrLimiter) failed(addr string, now time.Time) {
	if a.perSecond < 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	l, ok := a.byAddr[addr]
	if !ok {
		l = rate.NewLimiter(rate.Limit(a.perSecond), int(max(1, 2*a.perSecond)))
		a.byAddr[addr] = l
	}
	l.AllowN(now, 1)
}

// prune forgets addresses whose bucket is full again: they are as if never seen.
func (a *addrLimiter) prune(now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for addr, l := range a.byAddr {
		if l.TokensAt(now) >= float64(l.Burst()) {
			delete(a.byAddr, addr)
		}
	}
}
