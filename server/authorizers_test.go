package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/db"
	"wxhub/server"
	"wxhub/wechat"
	"wxhub/wechatsim"
	"wxhub/worker"
)

// startStrictNode starts a node that promises with the env's overlap and a one-second
// staleness bound, so that tests through a few short token lifetimes hold it to its word.
func (e *env) startStrictNode(t *testing.T) *node {
	t.Helper()
	return e.startNodeWith(t, server.Config{ListenerURL: e.dsn, StalenessBound: time.Second, RefreshWait: 5 * time.Second,
		Overlap: e.overlap, WeChat: wechat.New(e.simURL, nil), Logger: quiet})
}

// merchant is the appid of the i-th merchant that authorizes the component.
func merchant(i int) string { return fmt.Sprintf("wxmerchant%06d", i) }

// startComponent registers the component with wxhub through the API and with the simulator,
// which pushes its verify tickets to the node's event URL, and waits for its token.
func startComponent(t *testing.T, e *env, n *node) {
	t.Helper()
	createComponent(t, e, n)
	require.NoError(t, e.sim.AddAccount(wechatsim.Account{AppID: componentAppID, Secret: "component-secret", Kind: wechatsim.KindComponent,
		CallbackToken: callbackToken, EncodingAESKey: currentAESKey, CallbackURL: n.url + "/v1/components/" + componentAppID + "/events"}))
	waitUntil(t, 15*time.Second, "the component's token", func() bool {
		return n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+componentAppID+"/access-token", nil).status == http.StatusOK
	})
}

// act makes the simulated merchant act in WeChat's pages; the simulator pushes the event to
// the node, which must answer success.
func act(t *testing.T, e *env, appid, action string, funcInfo ...int) {
	t.Helper()
	p, err := e.sim.Authorize(context.Background(), wechatsim.Authorization{ComponentAppID: componentAppID,
		AuthorizerAppID: appid, Action: action, FuncInfo: funcInfo})
	require.NoError(t, err)
	require.True(t, p.Delivered, "the node answered the %s event of %s: %s", action, appid, p.Reply)
}

// appServer reads an authorizer's token through the node as an application server would,
// uses it at the simulator at once and again at the last moment its expires_at promises,
// and counts the uses WeChat rejected.
type appServer struct {
	uses, rejected atomic.Int64
	mu             sync.Mutex
	failures       []string
}

func (s *appServer) run(ctx context.Context, t *testing.T, n *node, sim *wechatsim.Client, appid string) {
	use := func(token string, when string) {
		code, err := sim.Use(context.Background(), token)
		if err != nil {
			return // the simulator's transport, not WeChat's answer
		}
		s.uses.Add(1)
		if code != 0 {
			s.rejected.Add(1)
			s.mu.Lock()
			s.failures = append(s.failures, fmt.Sprintf("%s: errcode %d %s", appid, code, when))
			s.mu.Unlock()
		}
	}
	for ctx.Err() == nil {
		res := n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+appid+"/access-token", nil)
		if res.status != http.StatusOK {
			s.mu.Lock()
			s.failures = append(s.failures, fmt.Sprintf("%s: HTTP %d %s", appid, res.status, res.text))
			s.mu.Unlock()
			return
		}
		body := res.json(t)
		token := body["access_token"].(string)
		expires, err := time.Parse(time.RFC3339Nano, body["expires_at"].(string))
		if err != nil {
			panic(err)
		}
		use(token, "when handed out")
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(expires) - 150*time.Millisecond):
		}
		use(token, fmt.Sprintf("150 ms before the expires_at promised (%s)", expires.Format(time.StampMilli)))
	}
}

// TestAuthorizersStayFreshAndARevokedOneStopsUntilItAuthorizesAgain is the third-party
// platform end to end, against the simulator pushing verify tickets every second: 100
// merchants authorize the component through WeChat's events, their tokens are kept fresh
// with their refresh tokens (which the simulator replaces on every refresh, only the newest
// working) through at least three lifetimes while app servers use every token until the
// last moment promised; one merchant revokes and its account stops being refreshed and
// served, then authorizes again and works.
func TestAuthorizersStayFreshAndARevokedOneStopsUntilItAuthorizesAgain(t *testing.T) {
	if testing.Short() {
		t.Skip("runs through three token lifetimes")
	}
	const merchants = 100
	ttl := 8 * time.Second
	e := newEnv(t, ttl, 3500*time.Millisecond, func(c *wechatsim.Config) { c.Component.TicketInterval = time.Second })
	t.Cleanup(e.sim.Close)
	n := e.startStrictNode(t)
	e.startWorker(t)
	startComponent(t, e, n)

	for i := range merchants {
		act(t, e, merchant(i), wechatsim.ActionAuthorize)
	}
	res := n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+merchant(7), nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	account := res.json(t)
	require.Equal(t, "authorizer", account["kind"])
	require.Equal(t, "acme", account["tenant"], "an authorizer belongs to its component's tenant")
	require.Equal(t, "Merchant "+merchant(7), account["wechat_info"].(map[string]any)["nick_name"], "the context WeChat reports")
	require.Len(t, account["authorization"].(map[string]any)["func_info"], len(wechatsim.DefaultFuncInfo))

	ctx, stop := context.WithCancel(context.Background())
	var apps appServer
	var wg sync.WaitGroup
	simc := &wechatsim.Client{BaseURL: e.simURL, HTTP: http.DefaultClient}
	for i := range merchants {
		wg.Go(func() { apps.run(ctx, t, n, simc, merchant(i)) })
	}
	// Three lifetimes: every authorizer's token replaced at least three times after the one
	// the authorization answered.
	start := time.Now()
	waitUntil(t, 6*ttl, "three refreshes of every authorizer", func() bool {
		for i := range merchants {
			a, err := e.store.GetAccount(context.Background(), merchant(i))
			require.NoError(t, err)
			c, err := e.store.GetCredential(context.Background(), a.ID, "access_token")
			if err != nil || c.Generation < 4 {
				return false
			}
		}
		return time.Since(start) > 3*ttl
	})
	stop()
	wg.Wait()
	require.Empty(t, apps.failures)
	require.Zero(t, apps.rejected.Load())
	require.Greater(t, apps.uses.Load(), int64(merchants*6), "every authorizer's tokens were used")
	st := e.sim.Stats(componentAppID).Accounts[componentAppID]
	require.Zero(t, st.PushFailures, "every push answered success")
	// Each refresh stored the refresh token WeChat answered with the access token: none was
	// sent after WeChat had replaced it.
	require.Zero(t, st.Errors[wechatsim.APIAuthorizerToken][61023], "refresh tokens WeChat no longer took")
	require.GreaterOrEqual(t, st.Calls[wechatsim.APIAuthorizerToken], int64(3*merchants))
	t.Logf("%d merchants, %s: %d uses, none rejected; %d verify tickets pushed", merchants,
		time.Since(start).Round(time.Second), apps.uses.Load(), st.Pushes["component_verify_ticket"])

	// One merchant revokes: its account stops being served at once, and refreshed.
	gone := merchant(0)
	act(t, e, gone, wechatsim.ActionRevoke)
	res = n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+gone+"/access-token", nil)
	require.Equal(t, http.StatusGone, res.status, res.text)
	require.Equal(t, "urn:wxhub:problem:account-unauthorized", res.json(t)["type"])
	a, err := e.store.GetAccount(context.Background(), gone)
	require.NoError(t, err)
	require.Equal(t, "unauthorized", a.Status)
	before, err := e.store.GetCredential(context.Background(), a.ID, "access_token")
	require.NoError(t, err)
	time.Sleep(ttl)
	after, err := e.store.GetCredential(context.Background(), a.ID, "access_token")
	require.NoError(t, err)
	require.Equal(t, before.Generation, after.Generation, "no refresh of a revoked authorizer in a whole lifetime")
	require.Nil(t, after.RefreshAt, "nothing scheduled")

	// It authorizes again: the account is active and its token works.
	act(t, e, gone, wechatsim.ActionAuthorize)
	token, _ := n.token(t, adminKey, gone)
	code, err := simc.Use(context.Background(), token)
	require.NoError(t, err)
	require.Zero(t, code, "WeChat takes the token of the authorization made again")
	a, err = e.store.GetAccount(context.Background(), gone)
	require.NoError(t, err)
	require.Equal(t, "active", a.Status)

	// Another changes what it grants: the account says so.
	act(t, e, merchant(2), wechatsim.ActionUpdateAuthorize, 1, 2, 3)
	res = n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+merchant(2), nil)
	require.Len(t, res.json(t)["authorization"].(map[string]any)["func_info"], 3)
}

// tokenGate stands between a worker and the simulator: every api_authorizer_token call
// reaches WeChat, which answers (and replaces the refresh token), but the answer is held
// back until release is closed, so the test can crash the worker in between.
type tokenGate struct {
	answered chan string // the authorizer appid of each answer WeChat gave with errcode 0
	release  chan struct{}
}

func newTokenGate(t *testing.T, sim http.Handler) (*tokenGate, string) {
	g := &tokenGate{answered: make(chan string, 1000), release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/"+wechat.APIAuthorizerToken) {
			sim.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		var req struct {
			AuthorizerAppID string `json:"authorizer_appid"`
		}
		_ = json.Unmarshal(body, &req)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, r)
		var answer struct {
			ErrCode int `json:"errcode"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &answer)
		if answer.ErrCode == 0 {
			g.answered <- req.AuthorizerAppID
		}
		select {
		case <-g.release:
		case <-r.Context().Done():
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	return g, srv.URL
}

// TestACrashBetweenTheRefreshAndItsCommitStrandsNoAuthorizer: WeChat replaces an
// authorizer's refresh token on every refresh, so a worker that crashes after WeChat answered
// api_authorizer_token and before its commit leaves wxhub holding refresh tokens WeChat no
// longer takes (61023). Every authorizer must refresh afterwards all the same: the worker
// reads the current refresh token with api_get_authorizer_info and retries.
func TestACrashBetweenTheRefreshAndItsCommitStrandsNoAuthorizer(t *testing.T) {
	if testing.Short() {
		t.Skip("waits out a crashed worker's leases")
	}
	const merchants = 20
	ttl := 10 * time.Second
	e := newEnv(t, ttl, 3500*time.Millisecond, func(c *wechatsim.Config) { c.Component.TicketInterval = time.Second })
	t.Cleanup(e.sim.Close)
	ctx := context.Background()
	n := e.startStrictNode(t)
	healthyPool, err := db.Open(ctx, e.dsn)
	require.NoError(t, err)
	t.Cleanup(healthyPool.Close)
	stopHealthy := e.startWorkerOn(t, "healthy", e.simURL, healthyPool)
	startComponent(t, e, n)
	for i := range merchants {
		act(t, e, merchant(i), wechatsim.ActionAuthorize)
	}
	stopHealthy()

	ids := make([]int64, merchants)
	before := make([]int64, merchants)
	for i := range merchants {
		a, err := e.store.GetAccount(ctx, merchant(i))
		require.NoError(t, err)
		c, err := e.store.GetCredential(ctx, a.ID, "access_token")
		require.NoError(t, err)
		ids[i], before[i] = a.ID, c.Generation
	}

	// The crashing worker refreshes every authorizer; WeChat answers each call, replacing
	// its refresh token, and the worker loses its database before the answers reach it.
	g, gateURL := newTokenGate(t, e.sim)
	pool, err := db.Open(ctx, e.dsn)
	require.NoError(t, err)
	stopCrashing := e.startWorkerOn(t, "crashing", gateURL, pool)
	for i := range merchants {
		_, err := e.store.RequestRefresh(ctx, ids[i], "access_token", before[i], 0)
		require.NoError(t, err)
	}
	replaced := map[string]bool{}
	deadline := time.After(15 * time.Second)
	for len(replaced) < merchants {
		select {
		case appid := <-g.answered:
			replaced[appid] = true
		case <-deadline:
			t.Fatalf("the fault did not reach its mechanism: WeChat replaced the refresh tokens of %d of %d authorizers", len(replaced), merchants)
		}
	}
	pool.Close()
	close(g.release)
	stopCrashing()
	for i := range merchants {
		c, err := e.store.GetCredential(ctx, ids[i], "access_token")
		require.NoError(t, err)
		require.Equal(t, before[i], c.Generation, "%s: the crashed worker stored nothing", merchant(i))
	}
	stale := e.sim.Stats(componentAppID).Accounts[componentAppID].Errors[wechatsim.APIAuthorizerToken][61023]

	// Another worker takes over: every authorizer refreshes, though each stored refresh
	// token is one WeChat replaced.
	e.startWorker(t)
	refreshedPast := func(gen []int64) func() bool {
		return func() bool {
			for i := range merchants {
				c, err := e.store.GetCredential(ctx, ids[i], "access_token")
				if err != nil || c.Generation <= gen[i] {
					return false
				}
			}
			return true
		}
	}
	waitUntil(t, 30*time.Second, "every authorizer's refresh after the crash", refreshedPast(before))
	st := e.sim.Stats(componentAppID).Accounts[componentAppID]
	require.Equal(t, stale+merchants, st.Errors[wechatsim.APIAuthorizerToken][61023],
		"each authorizer's first refresh after the crash sent the refresh token WeChat had replaced")

	// And they go on refreshing with the refresh tokens those recoveries stored, every token
	// wxhub serves working at WeChat.
	after := make([]int64, merchants)
	for i := range merchants {
		c, err := e.store.GetCredential(ctx, ids[i], "access_token")
		require.NoError(t, err)
		after[i] = c.Generation
	}
	waitUntil(t, 2*ttl, "a scheduled refresh of every authorizer", refreshedPast(after))
	simc := &wechatsim.Client{BaseURL: e.simURL, HTTP: http.DefaultClient}
	for i := range merchants {
		token, _ := n.token(t, adminKey, merchant(i))
		code, err := simc.Use(ctx, token)
		require.NoError(t, err)
		require.Zero(t, code, "%s: WeChat takes the token wxhub serves", merchant(i))
		a, err := e.store.GetAccount(ctx, merchant(i))
		require.NoError(t, err)
		require.Equal(t, "active", a.Status, merchant(i))
	}
	st = e.sim.Stats(componentAppID).Accounts[componentAppID]
	require.Equal(t, stale+merchants, st.Errors[wechatsim.APIAuthorizerToken][61023], "no refresh token was stale again")
	t.Logf("%d authorizers: %d refresh tokens replaced by WeChat and never stored, %d answered 61023 and recovered "+
		"(%d api_get_authorizer_info calls in all), every one refreshed twice since", merchants, len(replaced),
		st.Errors[wechatsim.APIAuthorizerToken][61023]-stale, st.Calls[wechatsim.APIGetAuthorizerInfo])
}

// swallower is a relay between the simulator's pushes and the node that, while on, answers
// success without passing a push on, and keeps the last one it swallowed: a push WeChat made
// that never reached wxhub, or reached a node that failed before its commit.
type swallower struct {
	on     atomic.Bool
	target string
	mu     sync.Mutex
	last   *http.Request
	body   []byte
}

// replay delivers the last swallowed push to the node, as WeChat sends a push again that
// was not answered success, and returns the node's answer.
func (s *swallower) replay(t *testing.T) (int, string) {
	t.Helper()
	s.mu.Lock()
	r, body := s.last, s.body
	s.mu.Unlock()
	require.NotNil(t, r, "a push was swallowed")
	res, err := http.Post(s.target+"?"+r.URL.RawQuery, r.Header.Get("Content-Type"), bytes.NewReader(body))
	require.NoError(t, err)
	defer res.Body.Close()
	reply, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(reply)
}

// startSwallowingComponent is startComponent with a swallower between the simulator's
// pushes and the node.
func startSwallowingComponent(t *testing.T, e *env, n *node) *swallower {
	t.Helper()
	sw := &swallower{target: n.url + "/v1/components/" + componentAppID + "/events"}
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if sw.on.Load() {
			sw.mu.Lock()
			sw.last, sw.body = r, body
			sw.mu.Unlock()
			_, _ = io.WriteString(w, "success")
			return
		}
		res, err := http.Post(sw.target+"?"+r.URL.RawQuery, r.Header.Get("Content-Type"), bytes.NewReader(body))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer res.Body.Close()
		w.WriteHeader(res.StatusCode)
		_, _ = io.Copy(w, res.Body)
	}))
	t.Cleanup(relay.Close)
	createComponent(t, e, n)
	require.NoError(t, e.sim.AddAccount(wechatsim.Account{AppID: componentAppID, Secret: "component-secret", Kind: wechatsim.KindComponent,
		CallbackToken: callbackToken, EncodingAESKey: currentAESKey, CallbackURL: relay.URL}))
	waitUntil(t, 15*time.Second, "the component's token", func() bool {
		return n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+componentAppID+"/access-token", nil).status == http.StatusOK
	})
	return sw
}

// TestAnAuthorizationCodeCreatesTheAuthorizerOnce is the admin endpoint a platform calls
// when its redirect page receives the code before (or instead of) the authorized event: a
// relay in front of the node swallows the events, so only the endpoint sees the codes.
func TestAnAuthorizationCodeCreatesTheAuthorizerOnce(t *testing.T) {
	e := newEnv(t, time.Hour, time.Minute, func(c *wechatsim.Config) { c.Component.TicketInterval = time.Second })
	t.Cleanup(e.sim.Close)
	ctx := context.Background()
	n := e.startStrictNode(t)
	e.startWorker(t)
	sw := startSwallowingComponent(t, e, n)
	code := func(action string) string {
		sw.on.Store(true)
		defer sw.on.Store(false)
		p, err := e.sim.Authorize(ctx, wechatsim.Authorization{ComponentAppID: componentAppID, AuthorizerAppID: merchant(1), Action: action})
		require.NoError(t, err)
		require.NotEmpty(t, p.AuthorizationCode)
		return p.AuthorizationCode
	}
	path := "/v1/components/" + componentAppID + "/authorizations"
	e.tenant(t, n, "other")
	otherKey, acmeKey := e.tenantKey(t, n, "other"), e.tenantKey(t, n, "acme")

	first := code(wechatsim.ActionAuthorize)
	res := n.call(t, otherKey, http.MethodPost, path, map[string]any{"authorization_code": first})
	require.Equal(t, http.StatusNotFound, res.status, "another tenant's component: %s", res.text)
	res = n.call(t, acmeKey, http.MethodPost, path, map[string]any{"authorization_code": ""})
	require.Equal(t, http.StatusUnprocessableEntity, res.status, res.text)
	_, err := e.store.GetAccount(ctx, merchant(1))
	require.ErrorIs(t, err, db.ErrNotFound, "neither request created the authorizer")

	res = n.call(t, acmeKey, http.MethodPost, path, map[string]any{"authorization_code": first})
	require.Equal(t, http.StatusCreated, res.status, res.text)
	body := res.json(t)
	require.Equal(t, merchant(1), body["appid"])
	require.Equal(t, "authorizer", body["kind"])
	require.Equal(t, "acme", body["tenant"])
	require.NotContains(t, res.text, "refresh", "no refresh token in the account")
	token, _ := n.token(t, acmeKey, merchant(1))
	simc := &wechatsim.Client{BaseURL: e.simURL, HTTP: http.DefaultClient}
	use, err := simc.Use(ctx, token)
	require.NoError(t, err)
	require.Zero(t, use, "WeChat takes the token the code bought")

	// The same code again (the redirect page asks after the event did, or asks twice): the
	// account it created, from what wxhub stored, without asking WeChat, which would refuse.
	queries := func() int64 {
		return e.sim.Stats(componentAppID).Accounts[componentAppID].Calls[wechatsim.APIQueryAuth]
	}
	asked := queries()
	res = n.call(t, acmeKey, http.MethodPost, path, map[string]any{"authorization_code": first})
	require.Equal(t, http.StatusOK, res.status, res.text)
	require.Equal(t, merchant(1), res.json(t)["appid"])
	require.Equal(t, asked, queries(), "WeChat was not asked again")

	// A code used elsewhere: WeChat's 61009 comes back as a 502 with its errcode.
	usedElsewhere := code(wechatsim.ActionUpdateAuthorize)
	componentToken, _ := n.token(t, adminKey, componentAppID)
	_, _, err = wechat.New(e.simURL, nil).QueryAuth(ctx, componentAppID, componentToken, usedElsewhere)
	require.NoError(t, err)
	res = n.call(t, acmeKey, http.MethodPost, path, map[string]any{"authorization_code": usedElsewhere})
	require.Equal(t, http.StatusBadGateway, res.status, res.text)
	problem := res.json(t)
	require.Equal(t, "urn:wxhub:problem:upstream-refused", problem["type"])
	require.EqualValues(t, wechatsim.CodeAuthCodeInvalid, problem["errcode"])

	// A revoked authorizer authorizing again: the same account, served again.
	act(t, e, merchant(1), wechatsim.ActionRevoke)
	res = n.call(t, acmeKey, http.MethodGet, "/v1/accounts/"+merchant(1)+"/access-token", nil)
	require.Equal(t, http.StatusGone, res.status, res.text)
	res = n.call(t, acmeKey, http.MethodPost, path, map[string]any{"authorization_code": code(wechatsim.ActionAuthorize)})
	require.Equal(t, http.StatusOK, res.status, res.text)
	require.Equal(t, "active", res.json(t)["status"])
	token, _ = n.token(t, acmeKey, merchant(1))
	use, err = simc.Use(ctx, token)
	require.NoError(t, err)
	require.Zero(t, use)
}

// TestAnAuthorizersContextIsKeptCurrentAndWatchersAreTold: a merchant changes its grant and
// its account's name, and the event WeChat pushes never reaches wxhub; the worker's periodic
// read of the context finds the change, and an app server waiting on the context with the
// ETag it holds is answered with the new one. A revocation wakes it too.
func TestAnAuthorizersContextIsKeptCurrentAndWatchersAreTold(t *testing.T) {
	e := newEnv(t, time.Hour, time.Minute, func(c *wechatsim.Config) { c.Component.TicketInterval = time.Second })
	t.Cleanup(e.sim.Close)
	ctx := context.Background()
	n := e.startStrictNode(t)
	pool, err := db.Open(ctx, e.dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	e.startWorkerOn(t, "w", e.simURL, pool, func(c *worker.Config) { c.ContextEvery = 2 * time.Second })
	sw := startSwallowingComponent(t, e, n)
	appid := merchant(3)
	act(t, e, appid, wechatsim.ActionAuthorize)
	path := "/v1/accounts/" + appid + "/context"
	key := e.tenantKey(t, n, "acme")

	res := n.call(t, key, http.MethodGet, path, nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	held := res.header.Get("ETag")
	require.NotEmpty(t, held)
	body := res.json(t)
	require.Equal(t, "Merchant "+appid, body["wechat_info"].(map[string]any)["nick_name"])
	require.Len(t, body["authorization"].(map[string]any)["func_info"], len(wechatsim.DefaultFuncInfo))
	res = n.call(t, key, http.MethodGet, path, nil, "If-None-Match", held)
	require.Equal(t, http.StatusNotModified, res.status, res.text)
	require.Equal(t, held, res.header.Get("ETag"))
	require.Empty(t, res.text)

	// The app server waits for a change; the merchant's change reaches wxhub only through
	// the periodic read, since the relay swallows the event.
	reads := e.sim.Stats(componentAppID).Accounts[componentAppID].Calls[wechatsim.APIGetAuthorizerInfo]
	watched := make(chan response, 1)
	go func() { watched <- n.call(t, key, http.MethodGet, path+"?wait=20", nil, "If-None-Match", held) }()
	sw.on.Store(true)
	_, err = e.sim.Authorize(ctx, wechatsim.Authorization{ComponentAppID: componentAppID, AuthorizerAppID: appid,
		Action: wechatsim.ActionUpdateAuthorize, FuncInfo: []int{1, 2}, Info: &wechatsim.AuthorizerInfo{NickName: "Renamed shop"}})
	require.NoError(t, err)
	sw.on.Store(false)
	res = <-watched
	require.Equal(t, http.StatusOK, res.status, "the wait ended with a change, not at its end: %s", res.text)
	require.NotEqual(t, held, res.header.Get("ETag"))
	body = res.json(t)
	require.Equal(t, "Renamed shop", body["wechat_info"].(map[string]any)["nick_name"])
	require.Len(t, body["authorization"].(map[string]any)["func_info"], 2)
	require.Greater(t, e.sim.Stats(componentAppID).Accounts[componentAppID].Calls[wechatsim.APIGetAuthorizerInfo], reads,
		"wxhub read the context from WeChat")

	// A read that finds nothing new changes no ETag; a revocation does.
	held = res.header.Get("ETag")
	res = n.call(t, key, http.MethodGet, path+"?wait=3", nil, "If-None-Match", held)
	require.Equal(t, http.StatusNotModified, res.status, "periodic reads of an unchanged context: %s", res.text)
	go func() { watched <- n.call(t, key, http.MethodGet, path+"?wait=20", nil, "If-None-Match", held) }()
	act(t, e, appid, wechatsim.ActionRevoke)
	res = <-watched
	require.Equal(t, http.StatusOK, res.status, res.text)
	require.Equal(t, "unauthorized", res.json(t)["status"])
}

// TestAnAuthorizedEventSentAgainAfterItsCodeWasUsedStillCreatesTheAuthorizer: a node
// exchanged the event's code and failed before its commit; WeChat sends the event again, and
// the code now answers 61009. The authorizer is created all the same, from what WeChat holds
// now, and its refresh token works.
func TestAnAuthorizedEventSentAgainAfterItsCodeWasUsedStillCreatesTheAuthorizer(t *testing.T) {
	e := newEnv(t, time.Hour, time.Minute, func(c *wechatsim.Config) { c.Component.TicketInterval = time.Second })
	t.Cleanup(e.sim.Close)
	ctx := context.Background()
	n := e.startStrictNode(t)
	e.startWorker(t)
	sw := startSwallowingComponent(t, e, n)
	appid := merchant(5)

	sw.on.Store(true)
	p, err := e.sim.Authorize(ctx, wechatsim.Authorization{ComponentAppID: componentAppID, AuthorizerAppID: appid, Action: wechatsim.ActionAuthorize})
	require.NoError(t, err)
	sw.on.Store(false)
	// What the failed node did before it failed: the code is used up.
	componentToken, _ := n.token(t, adminKey, componentAppID)
	_, _, err = wechat.New(e.simURL, nil).QueryAuth(ctx, componentAppID, componentToken, p.AuthorizationCode)
	require.NoError(t, err)
	_, err = e.store.GetAccount(ctx, appid)
	require.ErrorIs(t, err, db.ErrNotFound)

	status, reply := sw.replay(t)
	require.Equal(t, http.StatusOK, status, reply)
	require.Equal(t, "success", reply)
	st := e.sim.Stats(componentAppID).Accounts[componentAppID]
	require.Equal(t, int64(1), st.Errors[wechatsim.APIQueryAuth][wechatsim.CodeAuthCodeInvalid], "the fault reached its mechanism: the code was used")
	a, err := e.store.GetAccount(ctx, appid)
	require.NoError(t, err)
	require.Equal(t, "active", a.Status)
	require.Equal(t, "Merchant "+appid, n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+appid, nil).json(t)["wechat_info"].(map[string]any)["nick_name"])
	token, _ := n.token(t, adminKey, appid)
	simc := &wechatsim.Client{BaseURL: e.simURL, HTTP: http.DefaultClient}
	code, err := simc.Use(ctx, token)
	require.NoError(t, err)
	require.Zero(t, code, "WeChat takes the token")

	// The stored refresh token is WeChat's newest: the next refresh takes it.
	c, err := e.store.GetCredential(ctx, a.ID, "access_token")
	require.NoError(t, err)
	_, err = e.store.RequestRefresh(ctx, a.ID, "access_token", c.Generation, 0)
	require.NoError(t, err)
	waitUntil(t, 10*time.Second, "the next refresh", func() bool {
		next, err := e.store.GetCredential(ctx, a.ID, "access_token")
		return err == nil && next.Generation > c.Generation
	})
	require.Zero(t, e.sim.Stats(componentAppID).Accounts[componentAppID].Errors[wechatsim.APIAuthorizerToken][61023])
}
