package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/server"
)

// promised reads an account's token through n and returns when the node says it is good
// until, and its generation.
func promised(t *testing.T, n *node, appid string) (time.Time, int64) {
	t.Helper()
	return promised2(t, n, appid)
}

// promised2 is promised for a path that may carry a query after the appid.
func promised2(t *testing.T, n *node, appidAndQuery string) (time.Time, int64) {
	t.Helper()
	appid, query, _ := strings.Cut(appidAndQuery, "?")
	path := "/v1/accounts/" + appid + "/access-token"
	if query != "" {
		path += "?" + query
	}
	res := n.call(t, adminKey, http.MethodGet, path, nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	m := res.json(t)
	until, err := time.Parse(time.RFC3339Nano, m["expires_at"].(string))
	require.NoError(t, err)
	return until, int64(m["generation"].(float64))
}

// classicEnv is an environment whose nodes know the simulator's overlap, with one classic
// account.
func classicEnv(t *testing.T, appid string) (*env, server.Config) {
	t.Helper()
	e := newEnv(t, time.Hour, promiseOverlap)
	cfg := server.Config{ListenerURL: e.dsn, StalenessBound: promiseBound, RefreshWait: 2 * time.Second, Overlap: promiseOverlap, Logger: quiet}
	n := e.startNodeWith(t, cfg)
	e.tenant(t, n, "acme")
	e.account(t, n, "acme", appid)
	_, err := pool(t, e).Exec(context.Background(), `UPDATE accounts SET token_mode = 'classic' WHERE appid = $1`, appid)
	require.NoError(t, err)
	return e, cfg
}

const promiseOverlap, promiseBound = 8 * time.Second, 3 * time.Second

func TestARequestedRefreshShortensWhatEveryNodePromises(t *testing.T) {
	t.Parallel()
	e, cfg := classicEnv(t, "wxpromise")
	n1, n2 := e.startNodeWith(t, cfg), e.startNodeWith(t, cfg)
	// The first token, written as a worker would, due in an hour; no worker runs, so nothing
	// is fetched whatever is asked.
	storeToken(t, e.store, "token", true, "token-1", promiseOverlap)

	// Due in an hour, yet promised only for the overlap minus the staleness bound from now:
	// a refresh may be asked for at any moment.
	asked := time.Now()
	until, _ := promised(t, n2, "wxpromise")
	require.WithinDuration(t, asked.Add(promiseOverlap-promiseBound), until, time.Second)

	// An app server asks node 1 for more than any classic token can be promised: a refresh
	// is requested (WeChat's replacement may come at once), and with no worker the current
	// token is the answer once the wait is over.
	requested := time.Now()
	r := n1.call(t, adminKey, http.MethodGet, "/v1/accounts/wxpromise/access-token?min_ttl=1800", nil)
	require.Equal(t, http.StatusOK, r.status, r.text)
	// A worker claims the requested refresh (claims notify nobody): from now on it may fetch
	// the replacement at any moment.
	claimDue(t, e.store, "token", true)

	// Node 2's listener is alive, so it reads nothing again on its own; the request's
	// notification alone stops it from promising past the overlap after the request.
	time.Sleep(time.Until(requested.Add(promiseBound + 1500*time.Millisecond)))
	until, _ = promised(t, n2, "wxpromise")
	// Without it, node 2 would promise the overlap minus the bound from now: 1.5 s more.
	require.False(t, until.After(requested.Add(promiseOverlap+500*time.Millisecond)), "node 2 promised until %s, %s after the request",
		until.Format(time.StampMilli), until.Sub(requested))
}

func TestMinTTLBeyondWhatAClassicTokenCanHaveAnswersWithTheRefreshedOne(t *testing.T) {
	t.Parallel()
	e, cfg := classicEnv(t, "wxminttl")
	n := e.startNodeWith(t, cfg)
	e.startWorker(t)
	var generation int64
	waitUntil(t, 10*time.Second, "the first token", func() bool {
		r := n.call(t, adminKey, http.MethodGet, "/v1/accounts/wxminttl/access-token", nil)
		if r.status == http.StatusOK {
			generation = int64(r.json(t)["generation"].(float64))
		}
		return r.status == http.StatusOK
	})
	start := time.Now()
	until, refreshed := promised2(t, n, "wxminttl?min_ttl=1800")
	require.Greater(t, refreshed, generation, "refreshed")
	require.Less(t, time.Since(start), cfg.RefreshWait, "answered with the new token, not after the full wait")
	require.False(t, until.After(time.Now().Add(promiseOverlap)))
}

func TestANodeNeverHandsOutAValueWhosePromiseHasRunOut(t *testing.T) {
	t.Parallel()
	e, cfg := classicEnv(t, "wxrunout")
	n := e.startNodeWith(t, cfg)
	e.startWorker(t)
	waitUntil(t, 10*time.Second, "the first token", func() bool {
		return n.call(t, adminKey, http.MethodGet, "/v1/accounts/wxrunout/access-token", nil).status == http.StatusOK
	})
	// Refreshing stops; the token's replacement may have been fetched 7.5 s ago (by a worker
	// that vanished since), so WeChat may kill it half a second from now. A node started
	// after the change reads it, without racing a notification.
	_, err := pool(t, e).Exec(context.Background(), `UPDATE accounts SET status = 'disabled' WHERE appid = 'wxrunout';
		UPDATE credentials SET replace_not_before = now() - interval '7.5 seconds', claimed_by = 'vanished'
		WHERE account_id = (SELECT id FROM accounts WHERE appid = 'wxrunout');
		UPDATE credential_schedule SET refresh_at = NULL
		WHERE account_id = (SELECT id FROM accounts WHERE appid = 'wxrunout')`)
	require.NoError(t, err)
	n = e.startNodeWith(t, cfg)
	res := n.call(t, adminKey, http.MethodGet, "/v1/accounts/wxrunout/access-token", nil)
	require.Equal(t, http.StatusConflict, res.status, "a token with less than a second of promise left is not handed out: %s", res.text)
	require.Equal(t, "urn:wxhub:problem:account-disabled", res.json(t)["type"], "and no refresh will come: the account is disabled")
	require.NotContains(t, res.text, "access_token")
}

func TestAnOverdueClassicTokenNoFetchHasReachedIsServedAtOnce(t *testing.T) {
	t.Parallel()
	e, cfg := classicEnv(t, "wxoverdue")
	storeToken(t, e.store, "token", true, "token-1", promiseOverlap)
	ctx := context.Background()
	// Its replacement was due 30 s ago, more than the overlap, and no worker has claimed it
	// (none runs): every fetch of the replacement comes after a read now, so the token works
	// for the overlap after it.
	_, err := pool(t, e).Exec(ctx, `UPDATE credentials SET replace_not_before = now() - interval '30 seconds'
		WHERE account_id = (SELECT id FROM accounts WHERE appid = 'wxoverdue')`)
	require.NoError(t, err)
	n := e.startNodeWith(t, cfg)
	start := time.Now()
	until, _ := promised(t, n, "wxoverdue")
	require.Less(t, time.Since(start), cfg.RefreshWait/2, "answered at once, without waiting for a refresh")
	require.WithinDuration(t, start.Add(promiseOverlap-promiseBound), until, time.Second)

	// With a claim recorded, a fetch may have reached WeChat 30 s ago and killed the token
	// since: it is not handed out, and with no worker the wait ends in a 503.
	_, err = pool(t, e).Exec(ctx, `UPDATE credentials SET claimed_by = 'vanished'
		WHERE account_id = (SELECT id FROM accounts WHERE appid = 'wxoverdue')`)
	require.NoError(t, err)
	n = e.startNodeWith(t, cfg)
	r := n.call(t, adminKey, http.MethodGet, "/v1/accounts/wxoverdue/access-token", nil)
	require.Equal(t, http.StatusServiceUnavailable, r.status, r.text)
}
