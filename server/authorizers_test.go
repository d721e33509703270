package server_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/server"
	"wxhub/wechat"
	"wxhub/wechatsim"
)

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
	n := e.startNodeWith(t, server.Config{ListenerURL: e.dsn, StalenessBound: time.Second, RefreshWait: 5 * time.Second,
		Overlap: e.overlap, WeChat: wechat.New(e.simURL, nil), Logger: quiet})
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
