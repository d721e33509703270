package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/db"
	"wxhub/wechatsim"
)

func componentTokenBody(appid, secret string) string {
	b, _ := json.Marshal(map[string]string{"component_appid": appid, "component_appsecret": secret, "component_verify_ticket": "the app's own, stale"})
	return string(b)
}

// TestGatewayComponentTokenAnswersAsWeChatDoes: a platform's app that asks the gateway for
// its component token gets the one wxhub keeps, in WeChat's shape, and WeChat sees no call.
func TestGatewayComponentTokenAnswersAsWeChatDoes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute, func(c *wechatsim.Config) { c.Component.TicketInterval = time.Hour })
	t.Cleanup(e.sim.Close)
	n := e.startGatewayNode(t)
	createComponent(t, e, n.node)
	e.account(t, n.node, "acme", appid(1))
	e.startWorker(t)
	require.NoError(t, e.sim.AddAccount(wechatsim.Account{AppID: componentAppID, Secret: "component-secret", Kind: wechatsim.KindComponent,
		CallbackToken: callbackToken, EncodingAESKey: currentAESKey, CallbackURL: n.url + "/v1/components/" + componentAppID + "/events"}))
	var rest string
	waitUntil(t, 10*time.Second, "the component's token", func() bool {
		res := n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+componentAppID+"/access-token", nil)
		if res.status == http.StatusOK {
			rest = res.json(t)["access_token"].(string)
		}
		return rest != ""
	})
	calls := func() int64 {
		return e.sim.Stats(componentAppID).Accounts[componentAppID].Calls[wechatsim.APIComponentToken]
	}
	before := calls()

	got := wx(t, http.MethodPost, n.gw, "/cgi-bin/component/api_component_token", componentTokenBody(componentAppID, "component-secret"))
	require.Equal(t, map[string]string{"component_access_token": "string", "expires_in": "integer"}, shapeOf(got))
	require.Equal(t, rest, got["component_access_token"])
	require.Positive(t, got["expires_in"].(float64))
	require.Equal(t, before, calls(), "the gateway answers from what wxhub holds")

	for _, tt := range []struct {
		name, method, body string
		code               int
	}{
		{"wrong secret", http.MethodPost, componentTokenBody(componentAppID, "not-the-secret"), 40125},
		{"not a component", http.MethodPost, componentTokenBody(appid(1), "secret-"+appid(1)), 61011},
		{"unknown appid", http.MethodPost, componentTokenBody("wxcomponent000404", "s"), 40013},
		{"no appid", http.MethodPost, componentTokenBody("", "s"), 41002},
		{"no secret", http.MethodPost, componentTokenBody(componentAppID, ""), 41004},
		{"not JSON", http.MethodPost, "component_appid=" + componentAppID, 47001},
		{"GET", http.MethodGet, "", 43002},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := wx(t, tt.method, n.gw, "/cgi-bin/component/api_component_token", tt.body)
			require.Equal(t, errorShape, shapeOf(got), got)
			require.Equal(t, float64(tt.code), got["errcode"], got)
			require.NotContains(t, got["errmsg"], rest)
		})
	}
	require.Equal(t, before, calls())
}

// gatewayComponentToken is the component's token as its app gets it from the gateway, and
// the query that presents it.
func gatewayComponentToken(t *testing.T, n gwNode) (token, query string) {
	t.Helper()
	token = wx(t, http.MethodPost, n.gw, "/cgi-bin/component/api_component_token",
		componentTokenBody(componentAppID, "component-secret"))["component_access_token"].(string)
	return token, "?component_access_token=" + url.QueryEscape(token)
}

func queryAuthBody(component, code string) string {
	b, _ := json.Marshal(map[string]string{"component_appid": component, "authorization_code": code})
	return string(b)
}

func authorizerTokenBody(component, authorizer, refreshToken string) string {
	b, _ := json.Marshal(map[string]string{"component_appid": component, "authorizer_appid": authorizer, "authorizer_refresh_token": refreshToken})
	return string(b)
}

// funcInfo is WeChat's func_info for permission set ids, as JSON decodes it.
func funcInfo(ids ...int) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = map[string]any{"funcscope_category": map[string]any{"id": float64(id)}}
	}
	return out
}

// The shapes of the component endpoints' answers (WECHAT.md).
var (
	queryAuthShape         = map[string]string{"authorization_info": "map[string]interface {}"}
	authorizationInfoShape = map[string]string{"authorizer_appid": "string", "authorizer_access_token": "string",
		"expires_in": "integer", "authorizer_refresh_token": "string", "func_info": "[]interface {}"}
	authorizerTokenShape = map[string]string{"authorizer_access_token": "string", "expires_in": "integer", "authorizer_refresh_token": "string"}
	preAuthCodeShape     = map[string]string{"pre_auth_code": "string", "expires_in": "integer"}
)

// TestGatewayAuthorizerEndpointsAnswerAsWeChatDoes is a platform's app behind the gateway:
// the codes its redirect page receives (whether or not the event reached wxhub first), its
// authorizers' tokens and its other component calls are answered in WeChat's shapes, and
// WeChat sees no token call from the app; its mistakes are answered with WeChat's errcodes,
// checked against the simulator's answer to the same request.
func TestGatewayAuthorizerEndpointsAnswerAsWeChatDoes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute, func(c *wechatsim.Config) { c.Component.TicketInterval = time.Second })
	t.Cleanup(e.sim.Close)
	ctx := context.Background()
	n := e.startGatewayNode(t)
	e.startWorker(t)
	sw := startSwallowingComponent(t, e, n.node)
	e.account(t, n.node, "acme", appid(1))
	stats := func() wechatsim.AccountStats { return e.sim.Stats(componentAppID).Accounts[componentAppID] }
	authorize := func(appid string, swallow bool, ids ...int) wechatsim.Push {
		sw.on.Store(swallow)
		defer sw.on.Store(false)
		p, err := e.sim.Authorize(ctx, wechatsim.Authorization{ComponentAppID: componentAppID, AuthorizerAppID: appid,
			Action: wechatsim.ActionAuthorize, FuncInfo: ids})
		require.NoError(t, err)
		require.True(t, p.Delivered, p.Reply)
		return p
	}
	ctok, q := gatewayComponentToken(t, n)
	simc := &wechatsim.Client{BaseURL: e.simURL, HTTP: http.DefaultClient}

	// The event reaches wxhub, which exchanges the code; then the platform's redirect page
	// asks the gateway for the same code, which WeChat would refuse as used.
	first := authorize(merchant(1), false, 1, 7, 18)
	before := stats()
	got := wx(t, http.MethodPost, n.gw, "/cgi-bin/component/api_query_auth"+q, queryAuthBody(componentAppID, first.AuthorizationCode))
	require.Equal(t, queryAuthShape, shapeOf(got), got)
	info := got["authorization_info"].(map[string]any)
	require.Equal(t, authorizationInfoShape, shapeOf(info), info)
	token, expiresIn := restExpiresIn(t, n.node, merchant(1))
	require.Equal(t, merchant(1), info["authorizer_appid"])
	require.Equal(t, token, info["authorizer_access_token"])
	require.InDelta(t, expiresIn, info["expires_in"], 2)
	require.Equal(t, funcInfo(1, 7, 18), info["func_info"])
	require.Equal(t, before.Calls[wechatsim.APIQueryAuth], stats().Calls[wechatsim.APIQueryAuth], "answered from the event's exchange")

	// The simulator's own answer to a code, for its shape: this one's event never reached
	// wxhub, so the code is used by WeChat's side alone.
	elsewhere := authorize(merchant(2), true)
	atSim := wx(t, http.MethodPost, e.simURL, "/cgi-bin/component/api_query_auth"+q, queryAuthBody(componentAppID, elsewhere.AuthorizationCode))
	require.Equal(t, shapeOf(atSim), shapeOf(got))
	require.Equal(t, shapeOf(atSim["authorization_info"].(map[string]any)), shapeOf(info))

	// A code whose event was lost: the gateway exchanges it, and the account exists.
	third := authorize(merchant(3), true, 18)
	before = stats()
	got = wx(t, http.MethodPost, n.gw, "/cgi-bin/component/api_query_auth"+q, queryAuthBody(componentAppID, third.AuthorizationCode))
	info3 := got["authorization_info"].(map[string]any)
	require.Equal(t, authorizationInfoShape, shapeOf(info3), info3)
	require.Equal(t, merchant(3), info3["authorizer_appid"])
	require.Equal(t, funcInfo(18), info3["func_info"])
	require.Equal(t, before.Calls[wechatsim.APIQueryAuth]+1, stats().Calls[wechatsim.APIQueryAuth])
	code, err := simc.Use(ctx, info3["authorizer_access_token"].(string))
	require.NoError(t, err)
	require.Zero(t, code, "WeChat takes the token the gateway answered")
	again := wx(t, http.MethodPost, n.gw, "/cgi-bin/component/api_query_auth"+q, queryAuthBody(componentAppID, third.AuthorizationCode))
	require.Equal(t, info3["authorizer_access_token"], again["authorization_info"].(map[string]any)["authorizer_access_token"])
	require.Equal(t, before.Calls[wechatsim.APIQueryAuth]+1, stats().Calls[wechatsim.APIQueryAuth], "asked once")

	// An updateauthorized event reaches wxhub, which keeps the tokens it holds and reads what
	// was granted; the redirect page's code is answered from the account, not by an exchange
	// that would replace them.
	update, err := e.sim.Authorize(ctx, wechatsim.Authorization{ComponentAppID: componentAppID, AuthorizerAppID: merchant(1),
		Action: wechatsim.ActionUpdateAuthorize, FuncInfo: []int{1, 7}})
	require.NoError(t, err)
	require.True(t, update.Delivered, update.Reply)
	got = wx(t, http.MethodPost, n.gw, "/cgi-bin/component/api_query_auth"+q, queryAuthBody(componentAppID, update.AuthorizationCode))
	updated := got["authorization_info"].(map[string]any)
	require.Equal(t, authorizationInfoShape, shapeOf(updated), got)
	require.Equal(t, funcInfo(1, 7), updated["func_info"])
	require.Equal(t, token, updated["authorizer_access_token"])
	require.Equal(t, before.Calls[wechatsim.APIQueryAuth]+1, stats().Calls[wechatsim.APIQueryAuth], "WeChat was not asked")

	// The authorizer's token, whatever refresh token the app kept, from wxhub's cache.
	before = stats()
	got = wx(t, http.MethodPost, n.gw, "/cgi-bin/component/api_authorizer_token"+q, authorizerTokenBody(componentAppID, merchant(1), "the app's own copy, stale"))
	require.Equal(t, authorizerTokenShape, shapeOf(got), got)
	require.Equal(t, token, got["authorizer_access_token"])
	require.InDelta(t, expiresIn, got["expires_in"], 2)
	require.Equal(t, info["authorizer_refresh_token"], got["authorizer_refresh_token"])
	require.Equal(t, before.Calls[wechatsim.APIAuthorizerToken], stats().Calls[wechatsim.APIAuthorizerToken], "no token call to WeChat")
	// Another node knows the component token this one handed out.
	other := e.startGatewayNode(t)
	got = wx(t, http.MethodPost, other.gw, "/cgi-bin/component/api_authorizer_token"+q, authorizerTokenBody(componentAppID, merchant(1), ""))
	require.Equal(t, token, got["authorizer_access_token"], got)
	// It works through the proxy as an account's token.
	got = wx(t, http.MethodGet, n.gw, "/cgi-bin/get_api_domain_ip?access_token="+url.QueryEscape(token), "")
	require.Equal(t, map[string]string{"ip_list": "[]interface {}"}, shapeOf(got), got)

	// Other component calls are forwarded with the component's token.
	preauth := `{"component_appid":"` + componentAppID + `"}`
	got = wx(t, http.MethodPost, n.gw, "/cgi-bin/component/api_create_preauthcode"+q, preauth)
	require.Equal(t, preAuthCodeShape, shapeOf(got), got)
	require.Equal(t, shapeOf(wx(t, http.MethodPost, e.simURL, "/cgi-bin/component/api_create_preauthcode"+q, preauth)), shapeOf(got))
	got = wx(t, http.MethodPost, n.gw, "/cgi-bin/component/api_get_authorizer_info"+q,
		`{"component_appid":"`+componentAppID+`","authorizer_appid":"`+merchant(1)+`"}`)
	require.Equal(t, merchant(1), got["authorization_info"].(map[string]any)["authorizer_appid"], got)
	// A component path that takes an authorizer's access_token is forwarded as the proxy's
	// calls are: WeChat's answer comes back as it came.
	privacy := "/cgi-bin/component/setprivacysetting?access_token=" + url.QueryEscape(token)
	gwStatus, gwBody := rawPost(t, n.gw+privacy, "{}")
	simStatus, simBody := rawPost(t, e.simURL+privacy, "{}")
	require.Equal(t, simStatus, gwStatus)
	require.Equal(t, simBody, gwBody)

	accountToken := wx(t, http.MethodGet, n.gw, tokenQuery(appid(1), "secret-"+appid(1)), "")["access_token"].(string)
	aq := "?component_access_token=" + url.QueryEscape(accountToken)
	for _, tt := range []struct {
		name, method, path, body string
		code                     int
		sameAtWeChat             bool
	}{
		{"GET", http.MethodGet, "/cgi-bin/component/api_query_auth" + q, "", 43002, true},
		{"no token", http.MethodPost, "/cgi-bin/component/api_query_auth", queryAuthBody(componentAppID, "c"), 41001, true},
		{"forged token", http.MethodPost, "/cgi-bin/component/api_query_auth?component_access_token=forged", queryAuthBody(componentAppID, "c"), 40001, true},
		{"an account's token", http.MethodPost, "/cgi-bin/component/api_query_auth" + aq, queryAuthBody(componentAppID, "c"), 61014, true},
		{"another component", http.MethodPost, "/cgi-bin/component/api_query_auth" + q, queryAuthBody("wxcomponent000404", "c"), 40013, true},
		{"no component", http.MethodPost, "/cgi-bin/component/api_query_auth" + q, queryAuthBody("", "c"), 41002, true},
		{"not JSON", http.MethodPost, "/cgi-bin/component/api_query_auth" + q, "authorization_code=c", 47001, true},
		{"no code", http.MethodPost, "/cgi-bin/component/api_query_auth" + q, queryAuthBody(componentAppID, ""), 61009, true},
		{"a code used elsewhere", http.MethodPost, "/cgi-bin/component/api_query_auth" + q, queryAuthBody(componentAppID, elsewhere.AuthorizationCode), 61009, true},
		{"no authorizer", http.MethodPost, "/cgi-bin/component/api_authorizer_token" + q, authorizerTokenBody(componentAppID, "", "r"), 41002, true},
		{"an unknown authorizer", http.MethodPost, "/cgi-bin/component/api_authorizer_token" + q, authorizerTokenBody(componentAppID, "wxmerchant999999", "r"), 61003, true},
		{"an account that is not an authorizer", http.MethodPost, "/cgi-bin/component/api_authorizer_token" + q, authorizerTokenBody(componentAppID, appid(1), "r"), 61003, true},
		// WeChat knows this authorizer (its event was lost), wxhub does not: WeChat would
		// refuse the refresh token the app made up (61023).
		{"an authorizer wxhub does not keep", http.MethodPost, "/cgi-bin/component/api_authorizer_token" + q, authorizerTokenBody(componentAppID, merchant(2), "r"), 61003, false},
		{"a forwarded call with an account's token", http.MethodPost, "/cgi-bin/component/api_create_preauthcode" + aq, preauth, 61014, true},
		{"the component's token as an account's", http.MethodGet, "/cgi-bin/get_api_domain_ip?access_token=" + url.QueryEscape(ctok), "", 61015, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := wx(t, tt.method, n.gw, tt.path, tt.body)
			require.Equal(t, errorShape, shapeOf(got), got)
			require.Equal(t, float64(tt.code), got["errcode"], got)
			for _, secret := range []string{ctok, token, info["authorizer_refresh_token"].(string), accountToken} {
				require.NotContains(t, got["errmsg"], secret)
			}
			if tt.sameAtWeChat {
				atSim := wx(t, tt.method, e.simURL, tt.path, tt.body)
				require.Equal(t, atSim["errcode"], got["errcode"], "the simulator answered %v", atSim)
			}
		})
	}

	text := metrics(t, n.node)
	for _, line := range []string{
		`wxhub_gateway_requests_total{outcome="ok",path="query_auth"} 4`,
		`wxhub_gateway_requests_total{outcome="ok",path="authorizer_token"} 1`,
		`wxhub_gateway_requests_total{outcome="ok",path="component_proxy"} 2`,
		`wxhub_gateway_requests_total{outcome="61014",path="component_proxy"} 1`,
		`wxhub_gateway_requests_total{outcome="61003",path="authorizer_token"} 3`,
	} {
		require.Contains(t, text, line)
	}

	// A merchant that withdrew its authorization: its code and its token are refused.
	act(t, e, merchant(3), wechatsim.ActionRevoke)
	for _, tt := range []struct{ path, body string }{
		{"/cgi-bin/component/api_query_auth" + q, queryAuthBody(componentAppID, third.AuthorizationCode)},
		{"/cgi-bin/component/api_authorizer_token" + q, authorizerTokenBody(componentAppID, merchant(3), "r")},
	} {
		got := wx(t, http.MethodPost, n.gw, tt.path, tt.body)
		atSim := wx(t, http.MethodPost, e.simURL, tt.path, tt.body)
		require.Equal(t, errorShape, shapeOf(got), got)
		require.Equal(t, atSim["errcode"], got["errcode"], "the simulator answered %v", atSim)
	}

	// A code is answered for an hour, as long as WeChat could take it; then it is WeChat's
	// to refuse, and the workers prune it.
	n2, err := e.store.PruneAuthorizationCodes(ctx)
	require.NoError(t, err)
	require.Zero(t, n2, "codes of the last hour are kept")
	_, err = pool(t, e).Exec(ctx, "UPDATE authorization_codes SET recorded_at = now() - interval '61 minutes'")
	require.NoError(t, err)
	got = wx(t, http.MethodPost, n.gw, "/cgi-bin/component/api_query_auth"+q, queryAuthBody(componentAppID, first.AuthorizationCode))
	require.Equal(t, float64(wechatsim.CodeAuthCodeInvalid), got["errcode"], got)
	n2, err = e.store.PruneAuthorizationCodes(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(3), n2, "the codes of merchant 1 (two) and merchant 3")

	// The refresh token the gateway answered is WeChat's current one: an app that goes back
	// to calling WeChat itself keeps its authorizers.
	atSim = wx(t, http.MethodPost, e.simURL, "/cgi-bin/component/api_authorizer_token"+q,
		authorizerTokenBody(componentAppID, merchant(1), info["authorizer_refresh_token"].(string)))
	require.Equal(t, authorizerTokenShape, shapeOf(atSim), atSim)
}

// TestGatewayRetriesAComponentCallWeChatRejectsWithTheRefreshedToken: the component's token
// dies at WeChat (someone fetched a new one outside wxhub) between the app's token fetch and
// its call; the forwarded call is rejected, wxhub refreshes the component's token (one
// upstream fetch with the verify ticket it holds), and the call succeeds on the retry.
func TestGatewayRetriesAComponentCallWeChatRejectsWithTheRefreshedToken(t *testing.T) {
	t.Parallel()
	// WeChat lets a replaced component token live five seconds: the token wxhub holds dies
	// soon after someone else fetches one.
	e := newEnv(t, time.Hour, 5*time.Second, func(c *wechatsim.Config) { c.Component.TicketInterval = time.Hour })
	t.Cleanup(e.sim.Close)
	ctx := context.Background()
	n := e.startGatewayNode(t)
	e.startWorker(t)
	startComponent(t, e, n.node)
	ctok, q := gatewayComponentToken(t, n)
	preauth := `{"component_appid":"` + componentAppID + `"}`
	require.Equal(t, preAuthCodeShape, shapeOf(wx(t, http.MethodPost, n.gw, "/cgi-bin/component/api_create_preauthcode"+q, preauth)))

	// Someone outside wxhub fetches a new component token with a ticket WeChat pushed.
	push, err := e.sim.PushVerifyTicket(ctx, componentAppID)
	require.NoError(t, err)
	b, _ := json.Marshal(map[string]string{"component_appid": componentAppID, "component_appsecret": "component-secret",
		"component_verify_ticket": push.ComponentVerifyTicket})
	require.Contains(t, wx(t, http.MethodPost, e.simURL, "/cgi-bin/component/api_component_token", string(b)), "component_access_token")
	waitUntil(t, 15*time.Second, "the token wxhub holds to die at WeChat", func() bool {
		got := wx(t, http.MethodPost, e.simURL, "/cgi-bin/component/api_create_preauthcode"+q, preauth)
		return got["errcode"] == float64(wechatsim.CodeInvalidCredential)
	})
	fetches := e.sim.Stats(componentAppID).Accounts[componentAppID].Calls[wechatsim.APIComponentToken]
	retries := counter(t, n.node, "wxhub_gateway_retries_total")

	got := wx(t, http.MethodPost, n.gw, "/cgi-bin/component/api_create_preauthcode"+q, preauth)
	require.Equal(t, preAuthCodeShape, shapeOf(got), "the call succeeds on the retry: %v", got)
	require.Equal(t, retries+1, counter(t, n.node, "wxhub_gateway_retries_total"))
	require.Equal(t, fetches+1, e.sim.Stats(componentAppID).Accounts[componentAppID].Calls[wechatsim.APIComponentToken], "one new upstream fetch")
	current, _ := n.token(t, adminKey, componentAppID)
	require.NotEqual(t, ctok, current)
}

// rawPost posts body to url and returns the answer's status and body, whatever they are.
func rawPost(t *testing.T, url, body string) (int, string) {
	t.Helper()
	res, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer res.Body.Close()
	text, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, string(text)
}

// TestACodeAskedByItsEventAndTheRedirectPageAtOnceIsExchangedOnce: WeChat pushes the
// authorized event and sends the merchant's browser to the platform's redirect page at the
// same moment. wxhub is still exchanging the event's code (WeChat answers slowly) when the
// page's api_query_auth reaches the gateway: the page waits for the event's exchange to be
// recorded and is answered from it. One exchange, both answered.
func TestACodeAskedByItsEventAndTheRedirectPageAtOnceIsExchangedOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute, func(c *wechatsim.Config) { c.Component.TicketInterval = time.Second })
	t.Cleanup(e.sim.Close)
	ctx := context.Background()
	n := e.startGatewayNode(t)
	e.startWorker(t)
	sw := startSwallowingComponent(t, e, n.node)
	_, q := gatewayComponentToken(t, n)
	exchanges := func() int64 {
		return e.sim.Stats(componentAppID).Accounts[componentAppID].Calls[wechatsim.APIQueryAuth]
	}

	sw.on.Store(true)
	p, err := e.sim.Authorize(ctx, wechatsim.Authorization{ComponentAppID: componentAppID, AuthorizerAppID: merchant(1),
		Action: wechatsim.ActionAuthorize})
	require.NoError(t, err)
	sw.on.Store(false)
	require.NoError(t, e.sim.SetFaults(wechatsim.Faults{AppID: componentAppID, Latency: 500 * time.Millisecond}))
	before := exchanges()

	// The event arrives (WeChat's delivery, held back a moment by the relay).
	type answer struct {
		status int
		reply  string
		err    error
	}
	event := make(chan answer, 1)
	go func() {
		sw.mu.Lock()
		r, body := sw.last, sw.body
		sw.mu.Unlock()
		res, err := http.Post(sw.target+"?"+r.URL.RawQuery, r.Header.Get("Content-Type"), strings.NewReader(string(body)))
		if err != nil {
			event <- answer{err: err}
			return
		}
		defer res.Body.Close()
		reply, err := io.ReadAll(res.Body)
		event <- answer{status: res.StatusCode, reply: string(reply), err: err}
	}()
	waitUntil(t, 5*time.Second, "the event's exchange to reach WeChat", func() bool { return exchanges() == before+1 })
	_, err = e.store.GetAccount(ctx, merchant(1))
	require.ErrorIs(t, err, db.ErrNotFound, "the fault reached its mechanism: the event's exchange is not recorded yet")

	// The redirect page asks for the same code.
	got := wx(t, http.MethodPost, n.gw, "/cgi-bin/component/api_query_auth"+q, queryAuthBody(componentAppID, p.AuthorizationCode))
	ev := <-event
	require.NoError(t, ev.err)
	require.Equal(t, http.StatusOK, ev.status, ev.reply)
	require.Equal(t, "success", ev.reply)
	require.Equal(t, queryAuthShape, shapeOf(got), "the page is answered: %v", got)
	info := got["authorization_info"].(map[string]any)
	require.Equal(t, merchant(1), info["authorizer_appid"])
	require.Equal(t, before+1, exchanges(), "one exchange")
	require.Zero(t, e.sim.Stats(componentAppID).Accounts[componentAppID].Errors[wechatsim.APIQueryAuth][wechatsim.CodeAuthCodeInvalid])
	token, _ := n.token(t, adminKey, merchant(1))
	require.Equal(t, token, info["authorizer_access_token"])
}
