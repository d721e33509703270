package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"wxhub/db"
)

// credKey names a cached credential the way requests do.
type credKey struct{ appid, kind string }

// accountKind names a credential the way notifications do.
type accountKind struct {
	accountID int64
	kind      string
}

type cacheEntry struct {
	cred        db.CachedCredential
	epoch       uint64    // listener session in which it was loaded
	validatedAt time.Time // when it was read from the database
	// prefix and suffix are the token answer's JSON around its expiry, rendered once: the
	// fast read path writes prefix, expires_at, expires_in and suffix (see fastToken).
	prefix, suffix []byte
}

// Cache holds credentials in memory so a read touches no database. Entries are loaded on
// first request (one database read per key however many requests wait), dropped when a
// NOTIFY says they changed, and never served:
//   - past the value's expiry (the entry is read again instead);
//   - from a listener session that has ended: after any gap in LISTEN, every entry is read
//     again before it is served, since notifications may have been lost;
//   - more than Bound after the last proof that the listener is alive, unless read again
//     within Bound.
type Cache struct {
	store *db.Store
	bound time.Duration

	mu sync.RWMutex
	// entries (credKey → *cacheEntry) is read without a lock on every request and changed
	// under mu, together with the maps below.
	entries   sync.Map
	byAccount map[int64]map[credKey]struct{}
	// notified remembers recent change notifications, so a load that read the database just
	// before a change committed is not installed over it.
	notified        map[accountKind]notifiedGen
	accountNotified map[int64]time.Time // when each account last changed, for recent changes
	waiters         map[accountKind]waiter
	// accountWaiters are closed at the next change notification of their account.
	accountWaiters map[int64]chan struct{}

	group   singleflight.Group
	epoch   atomic.Uint64 // incremented by every new listener session
	aliveAt atomic.Int64  // unix nanoseconds of the last proof the listener session is alive
	loads   atomic.Int64
}

// waiter is the channel closed at the next notification of a credential, and when a
// request last asked for it.
type waiter struct {
	ch    chan struct{}
	asked time.Time
}

type notifiedGen struct {
	generation int64
	at         time.Time
}

// NewCache returns an empty cache over store; bound is the longest an entry is served
// without a live listener or a fresh read.
func NewCache(store *db.Store, bound time.Duration) *Cache {
	return &Cache{
		store: store, bound: bound,
		byAccount:       map[int64]map[credKey]struct{}{},
		notified:        map[accountKind]notifiedGen{},
		accountNotified: map[int64]time.Time{},
		waiters:         map[accountKind]waiter{},
		accountWaiters:  map[int64]chan struct{}{},
	}
}

// Loads is the number of database reads the cache made.
func (c *Cache) Loads() int64 { return c.loads.Load() }

// Get returns the credential, from memory when the entry may be served, else from the
// database.
func (c *Cache) Get(ctx context.Context, appid, kind string) (db.CachedCredential, error) {
	k := credKey{appid, kind}
	if e := c.entry(k, time.Now()); e != nil {
		return e.cred, nil
	}
	return c.load(ctx, k, false)
}

// entry is the cached entry of k if it may be served at now, else nil.
func (c *Cache) entry(k credKey, now time.Time) *cacheEntry {
	v, ok := c.entries.Load(k)
	if !ok {
		return nil
	}
	if e := v.(*cacheEntry); c.servable(e, now) {
		return e
	}
	return nil
}

// Reload reads the credential from the database whatever the cache holds.
func (c *Cache) Reload(ctx context.Context, appid, kind string) (db.CachedCredential, error) {
	return c.load(ctx, credKey{appid, kind}, true)
}

func (c *Cache) servable(e *cacheEntry, now time.Time) bool {
	if e.cred.Value == "" || !now.Before(e.cred.ExpiresAt) || e.epoch != c.epoch.Load() {
		return false
	}
	return now.Sub(time.Unix(0, c.aliveAt.Load())) < c.bound || now.Sub(e.validatedAt) < c.bound
}

// load reads one credential with single-flight: concurrent misses share one read. The read
// runs on its own context so one caller hanging up does not fail the others. A miss (not
// forced) looks at the cache again first: a read that finished between the caller's look and
// its turn has installed what it wants. Forced reads (Reload) fly apart from misses.
func (c *Cache) load(ctx context.Context, k credKey, force bool) (db.CachedCredential, error) {
	flight := k.appid + "\x00" + k.kind
	if force {
		flight += "\x00reload"
	}
	ch := c.group.DoChan(flight, func() (any, error) {
		if e := c.entry(k, time.Now()); e != nil && !force {
			return e.cred, nil
		}
		readCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for attempt := 0; ; attempt++ {
			epoch := c.epoch.Load()
			start := time.Now()
			c.loads.Add(1)
			cred, err := c.store.LoadCredential(readCtx, k.appid, k.kind)
			if err != nil {
				return db.CachedCredential{}, err
			}
			if c.install(k, cred, epoch, start) || attempt == 2 {
				return cred, nil
			}
		}
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return db.CachedCredential{}, r.Err
		}
		return r.Val.(db.CachedCredential), nil
	case <-ctx.Done():
		return db.CachedCredential{}, ctx.Err()
	}
}

// install stores a loaded credential unless a notification already announced a newer
// generation, or arrived after the read began (a change to the same generation, such as a
// requested refresh that shortens what nodes promise, may postdate the read): the read
// raced the change and is done again.
func (c *Cache) install(k credKey, cred db.CachedCredential, epoch uint64, readAt time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n, ok := c.notified[accountKind{cred.AccountID, cred.Kind}]; ok && (n.generation > cred.Generation || !n.at.Before(readAt)) {
		return false
	}
	if at, ok := c.accountNotified[cred.AccountID]; ok && !at.Before(readAt) {
		return false
	}
	keys := c.byAccount[cred.AccountID]
	if keys == nil {
		keys = map[credKey]struct{}{}
		c.byAccount[cred.AccountID] = keys
	}
	keys[k] = struct{}{}
	prefix, suffix := renderToken(cred)
	c.entries.Store(k, &cacheEntry{cred: cred, epoch: epoch, validatedAt: readAt, prefix: prefix, suffix: suffix})
	return true
}

// Changed returns a channel closed at the next change notification for the credential.
func (c *Cache) Changed(accountID int64, kind string) <-chan struct{} {
	ak := accountKind{accountID, kind}
	c.mu.Lock()
	defer c.mu.Unlock()
	w, ok := c.waiters[ak]
	if !ok {
		w.ch = make(chan struct{})
	}
	w.asked = time.Now()
	c.waiters[ak] = w
	return w.ch
}

// credentialChanged handles a NOTIFY for one credential: entries of that generation or
// older are dropped (a notification of the same generation means its schedule changed) and
// waiters woken.
func (c *Cache) credentialChanged(accountID int64, kind string, generation int64) {
	ak := accountKind{accountID, kind}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.notified[ak]; generation >= n.generation {
		c.notified[ak] = notifiedGen{generation, now}
	}
	for k := range c.byAccount[accountID] {
		if v, ok := c.entries.Load(k); ok && k.kind == kind && v.(*cacheEntry).cred.Generation <= generation {
			c.entries.Delete(k)
		}
	}
	if w, ok := c.waiters[ak]; ok {
		close(w.ch)
		delete(c.waiters, ak)
	}
}

// accountChanged handles a NOTIFY for an account (status change, deletion): every entry of
// the account is dropped, and loads that read the account before the change are not
// installed. Waiters are not woken: a credential notification means the value changed, and
// waiters notice a deleted account by their periodic read.
func (c *Cache) accountChanged(accountID int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.byAccount[accountID] {
		c.entries.Delete(k)
	}
	delete(c.byAccount, accountID)
	c.accountNotified[accountID] = time.Now()
	if ch, ok := c.accountWaiters[accountID]; ok {
		close(ch)
		delete(c.accountWaiters, accountID)
	}
}

// accountChange returns a channel closed at the next change notification of the account,
// or when a new listener session starts (changes may have been missed before it). Taken
// before the account is read, it cannot miss a change committed after that read.
func (c *Cache) accountChange(accountID int64) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.accountWaiters[accountID]
	if !ok {
		ch = make(chan struct{})
		c.accountWaiters[accountID] = ch
	}
	return ch
}

// sessionStarted marks a new listener session: everything loaded before it must be read
// again, since notifications may have been missed in the gap.
func (c *Cache) sessionStarted() {
	c.epoch.Add(1)
	c.alive()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, ch := range c.accountWaiters {
		close(ch)
		delete(c.accountWaiters, id)
	}
}

// alive records proof that the listener session is alive.
func (c *Cache) alive() { c.aliveAt.Store(time.Now().UnixNano()) }

// sessionEnded marks the listener as down: entries are served only within Bound of their
// last read until a new session starts.
func (c *Cache) sessionEnded() { c.aliveAt.Store(0) }

// forget drops what is older than olderThan: remembered notifications, which no load in
// flight can race with any more (loads time out after 10 s), and the channels of
// credentials no request has waited for since, which no notification may ever close (a
// request still holding one falls back on its periodic read). The node calls it on a
// timer, so a busy listener does not grow these maps.
func (c *Cache) forget(olderThan time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ak, w := range c.waiters {
		if w.asked.Before(olderThan) {
			delete(c.waiters, ak)
		}
	}
	for ak, n := range c.notified {
		if n.at.Before(olderThan) {
			delete(c.notified, ak)
		}
	}
	for id, at := range c.accountNotified {
		if at.Before(olderThan) {
			delete(c.accountNotified, id)
		}
	}
}

// sizes is how many notifications, account changes and waiters the cache remembers.
func (c *Cache) sizes() (notified, accounts, waiters int) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.notified), len(c.accountNotified), len(c.waiters)
}
