package server_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/server"
)

// wxhubKey makes a key in wxhub's format (checksum included) from a lookup part and a
// random secret part.
func wxhubKey(t *testing.T, lookup string) string {
	t.Helper()
	secret := make([]byte, 24)
	_, err := rand.Read(secret)
	require.NoError(t, err)
	payload := lookup + hex.EncodeToString(secret)
	sum := sha256.Sum256([]byte("wxh_" + payload))
	return "wxh_" + payload + hex.EncodeToString(sum[:4])
}

func TestStringsThatCannotBeKeysNeverReachTheDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second)
	good, _, _, err := server.NewKey()
	require.NoError(t, err)
	before := n.srv.KeyLookups()
	for _, key := range []string{
		"short",
		"fifteen-chars!!",
		strings.Repeat("k", 257),
		"a bootstrap key with spaces",
		"wxh_" + strings.Repeat("0", 72),   // wrong checksum
		"wxh_0123456789abcdef",             // too short
		good[:10] + "X" + good[11:],        // a typo
		"wxh_" + strings.ToUpper(good[4:]), // not lowercase hex
		"wxh_" + strings.Repeat("g", 64) + "00000000",
	} {
		res := n.call(t, key, http.MethodGet, "/v1/accounts", nil)
		require.Equal(t, http.StatusUnauthorized, res.status, "%q: %s", key, res.text)
		require.Equal(t, "urn:wxhub:problem:unauthorized", res.json(t)["type"])
	}
	require.Equal(t, before, n.srv.KeyLookups(), "refused without a lookup")
}

func TestUnknownKeysAreLimitedPerAddressBeforeAnyLookup(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second) // 5 unknown keys a second, bursts of 10
	require.Equal(t, http.StatusOK, n.call(t, adminKey, http.MethodGet, "/v1/tenants", nil).status, "the admin key is cached")
	before := n.srv.KeyLookups()
	start := time.Now()
	var unauthorized, limited int
	for range 100 {
		res := n.call(t, wxhubKey(t, "0123456789abcdef"), http.MethodGet, "/v1/accounts", nil)
		switch res.status {
		case http.StatusUnauthorized:
			unauthorized++
		case http.StatusTooManyRequests:
			limited++
			require.Equal(t, "1", res.header.Get("Retry-After"))
			require.Equal(t, "urn:wxhub:problem:rate-limited", res.json(t)["type"])
		default:
			t.Fatalf("unexpected answer %d: %s", res.status, res.text)
		}
	}
	allowed := 10 + int(5*time.Since(start).Seconds()) + 1
	lookups := int(n.srv.KeyLookups() - before)
	require.LessOrEqual(t, lookups, allowed, "lookups within the burst and the rate")
	require.Equal(t, lookups, unauthorized, "every lookup was a 401, every other key a 429")
	require.Positive(t, limited)
	require.Equal(t, http.StatusOK, n.call(t, adminKey, http.MethodGet, "/v1/tenants", nil).status,
		"a cached key from the same address still works")
}

func TestKeysSharingALookupDoNotGrowTheKeyCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNodeWith(t, server.Config{ListenerURL: e.dsn, BadKeyRate: -1, Logger: quiet})
	e.tenant(t, n, "acme")
	key := e.tenantKey(t, n, "acme")
	require.Equal(t, http.StatusOK, n.call(t, key, http.MethodGet, "/v1/accounts", nil).status)
	entries := n.srv.KeyCacheEntries()
	for range 1000 {
		res := n.call(t, wxhubKey(t, key[4:20]), http.MethodGet, "/v1/accounts", nil)
		require.Equal(t, http.StatusUnauthorized, res.status, res.text)
	}
	require.Equal(t, entries, n.srv.KeyCacheEntries(), "1,000 keys with a real key's lookup, none cached")
	require.Equal(t, http.StatusOK, n.call(t, key, http.MethodGet, "/v1/accounts", nil).status)
}
