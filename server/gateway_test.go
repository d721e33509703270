package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/server"
	"wxhub/wechatsim"
)

// gwNode is an API node and its WeChat-compatible gateway, both over real HTTP, the gateway
// forwarding to the env's simulator.
type gwNode struct {
	*node
	gw string
}

func (e *env) startGatewayNode(t testing.TB) gwNode {
	t.Helper()
	n := e.startNode(t, 30*time.Second)
	gw, err := n.srv.Gateway(server.GatewayConfig{Upstream: e.simURL})
	require.NoError(t, err)
	hs := httptest.NewServer(gw.Handler())
	t.Cleanup(hs.Close)
	return gwNode{node: n, gw: hs.URL}
}

// wx sends a request to base+path (the gateway or the simulator) and decodes the answer,
// which must be JSON with HTTP 200, as WeChat answers errors too.
func wx(t testing.TB, method, base, path, body string) map[string]any {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, base+path, rd)
	require.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	text, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, "%s", text)
	require.True(t, strings.HasPrefix(res.Header.Get("Content-Type"), "application/json"), res.Header.Get("Content-Type"))
	var m map[string]any
	require.NoError(t, json.Unmarshal(text, &m), "%s", text)
	return m
}

// The shapes of WeChat's answers (WECHAT.md): field names and JSON types, nothing else.
var (
	tokenShape  = map[string]string{"access_token": "string", "expires_in": "integer"}
	ticketShape = map[string]string{"errcode": "integer", "errmsg": "string", "ticket": "string", "expires_in": "integer"}
	errorShape  = map[string]string{"errcode": "integer", "errmsg": "string"}
)

// shapeOf names the JSON type of every field of an answer.
func shapeOf(m map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		switch v := v.(type) {
		case string:
			out[k] = "string"
		case float64:
			if v == math.Trunc(v) {
				out[k] = "integer"
			} else {
				out[k] = "number"
			}
		default:
			out[k] = fmt.Sprintf("%T", v)
		}
	}
	return out
}

func tokenQuery(appid, secret string) string {
	return "/cgi-bin/token?" + url.Values{"grant_type": {"client_credential"}, "appid": {appid}, "secret": {secret}}.Encode()
}

func stableBody(appid, secret string, force bool) string {
	b, _ := json.Marshal(map[string]any{"grant_type": "client_credential", "appid": appid, "secret": secret, "force_refresh": force})
	return string(b)
}

// restExpiresIn is the expires_in the REST API answers for an account's access token.
func restExpiresIn(t testing.TB, n *node, appid string) (string, int64) {
	t.Helper()
	res := n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+appid+"/access-token", nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	m := res.json(t)
	return m["access_token"].(string), int64(m["expires_in"].(float64))
}

// gatewaySetup is an env with a gateway node, a worker, tenant acme with a stable-token
// account (jsapi tickets) and a classic-token account, and tenant other.
type gatewaySetup struct {
	e                 *env
	n                 gwNode
	stable, classic   string
	acmeKey, otherKey string
}

func setupGateway(t *testing.T, simOptions ...func(*wechatsim.Config)) gatewaySetup {
	t.Helper()
	e := newEnv(t, time.Hour, 5*time.Minute, simOptions...)
	n := e.startGatewayNode(t)
	e.startWorker(t)
	e.tenant(t, n.node, "acme")
	e.tenant(t, n.node, "other")
	g := gatewaySetup{e: e, n: n, stable: appid(1), classic: appid(2)}
	e.account(t, n.node, "acme", g.stable, "jsapi")
	require.NoError(t, e.sim.AddAccount(simAccount(g.classic)))
	res := n.call(t, adminKey, http.MethodPost, "/v1/accounts", map[string]any{"appid": g.classic, "kind": "mini_program",
		"secret": "secret-" + g.classic, "tenant": "acme", "token_mode": "classic"})
	require.Equal(t, http.StatusCreated, res.status, res.text)
	g.acmeKey, g.otherKey = e.tenantKey(t, n.node, "acme"), e.tenantKey(t, n.node, "other")
	return g
}

// settle waits until the worker has fetched the stable account's first jsapi ticket: after
// that it leaves the account alone for most of an hour, so a token a test kills is refreshed
// only by what the test does.
func (g gatewaySetup) settle(t *testing.T) {
	t.Helper()
	res := g.n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+g.stable+"/tickets/jsapi", nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
}

func TestGatewayTokenAnswersAsWeChatDoes(t *testing.T) {
	t.Parallel()
	g := setupGateway(t)
	// The simulator answers the same requests for an account only it knows, so each row is
	// also checked against the oracle's shape and errcode.
	simOnly := "wxsimonly0000001"
	require.NoError(t, g.e.sim.AddAccount(simAccount(simOnly)))
	tests := []struct {
		name       string
		appid      string
		secret     string
		query      string // instead of appid and secret
		code       int    // 0: a token
		sameAtSim  bool
		simAppID   string
		simSecret  string
		classicTTL bool
	}{
		{name: "appsecret", appid: g.stable, secret: "secret-" + g.stable, sameAtSim: true},
		{name: "appsecret, classic token", appid: g.classic, secret: "secret-" + g.classic, classicTTL: true},
		{name: "tenant API key", appid: g.stable, secret: g.acmeKey},
		{name: "admin API key", appid: g.stable, secret: adminKey},
		{name: "another tenant's API key", appid: g.stable, secret: g.otherKey, code: 40125},
		{name: "wrong secret", appid: g.stable, secret: "wrong", code: 40125, sameAtSim: true},
		{name: "unknown appid", appid: "wxnobody00000001", secret: "x", code: 40013, sameAtSim: true},
		{name: "bad grant_type", query: "/cgi-bin/token?grant_type=password&appid=%s&secret=x", code: 40002, sameAtSim: true},
		{name: "missing appid", query: "/cgi-bin/token?grant_type=client_credential&secret=x", code: 41002, sameAtSim: true},
		{name: "missing secret", query: "/cgi-bin/token?grant_type=client_credential&appid=%s", code: 41004, sameAtSim: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path, simPath := tokenQuery(tt.appid, tt.secret), tokenQuery(simOnly, strings.ReplaceAll(tt.secret, g.stable, simOnly))
			if tt.query != "" {
				path, simPath = strings.ReplaceAll(tt.query, "%s", g.stable), strings.ReplaceAll(tt.query, "%s", simOnly)
			}
			if tt.appid == "wxnobody00000001" {
				simPath = path
			}
			got := wx(t, http.MethodGet, g.n.gw, path, "")
			if tt.code != 0 {
				require.Equal(t, errorShape, shapeOf(got), got)
				require.Equal(t, float64(tt.code), got["errcode"], got)
			} else {
				require.Equal(t, tokenShape, shapeOf(got), got)
				restToken, restTTL := restExpiresIn(t, g.n.node, tt.appid)
				require.Equal(t, restToken, got["access_token"], "the token wxhub holds")
				ttl := int64(got["expires_in"].(float64))
				require.LessOrEqual(t, ttl, restTTL, "never longer than wxhub promises")
				require.GreaterOrEqual(t, ttl, restTTL-2)
				if tt.classicTTL {
					require.LessOrEqual(t, ttl, int64((5*time.Minute-30*time.Second)/time.Second), "a classic token is promised for the overlap minus the staleness bound")
				}
			}
			if tt.sameAtSim {
				atSim := wx(t, http.MethodGet, g.e.simURL, simPath, "")
				require.Equal(t, shapeOf(atSim), shapeOf(got), "the simulator's answer %v", atSim)
				require.Equal(t, atSim["errcode"], got["errcode"])
			}
		})
	}
	t.Run("POST", func(t *testing.T) {
		got := wx(t, http.MethodPost, g.n.gw, tokenQuery(g.stable, "secret-"+g.stable), "{}")
		require.Equal(t, errorShape, shapeOf(got))
		require.Equal(t, float64(43001), got["errcode"])
	})
}

func TestGatewayStableTokenAnswersAsWeChatDoes(t *testing.T) {
	t.Parallel()
	g := setupGateway(t)
	simOnly := "wxsimonly0000001"
	require.NoError(t, g.e.sim.AddAccount(simAccount(simOnly)))
	tests := []struct {
		name      string
		body      string
		simBody   string
		code      int
		sameAtSim bool
	}{
		{name: "appsecret", body: stableBody(g.stable, "secret-"+g.stable, false), simBody: stableBody(simOnly, "secret-"+simOnly, false), sameAtSim: true},
		{name: "API key", body: stableBody(g.stable, g.acmeKey, false)},
		{name: "wrong secret", body: stableBody(g.stable, "wrong", false), simBody: stableBody(simOnly, "wrong", false), code: 40001, sameAtSim: true},
		{name: "unknown appid", body: stableBody("wxnobody00000001", "x", false), simBody: stableBody("wxnobody00000001", "x", false), code: 40013, sameAtSim: true},
		{name: "bad grant_type", body: `{"grant_type":"x","appid":"a","secret":"b"}`, simBody: `{"grant_type":"x","appid":"a","secret":"b"}`, code: 40002, sameAtSim: true},
		{name: "not JSON", body: `{`, simBody: `{`, code: 47001, sameAtSim: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := wx(t, http.MethodPost, g.n.gw, "/cgi-bin/stable_token", tt.body)
			if tt.code != 0 {
				require.Equal(t, errorShape, shapeOf(got), got)
				require.Equal(t, float64(tt.code), got["errcode"], got)
			} else {
				require.Equal(t, tokenShape, shapeOf(got), got)
				restToken, restTTL := restExpiresIn(t, g.n.node, g.stable)
				require.Equal(t, restToken, got["access_token"])
				require.LessOrEqual(t, int64(got["expires_in"].(float64)), restTTL)
			}
			if tt.sameAtSim {
				atSim := wx(t, http.MethodPost, g.e.simURL, "/cgi-bin/stable_token", tt.simBody)
				require.Equal(t, shapeOf(atSim), shapeOf(got), "the simulator's answer %v", atSim)
				require.Equal(t, atSim["errcode"], got["errcode"])
			}
		})
	}
	t.Run("GET", func(t *testing.T) {
		got := wx(t, http.MethodGet, g.n.gw, "/cgi-bin/stable_token", "")
		require.Equal(t, float64(43002), got["errcode"])
	})
}

// TestGatewayForceRefreshIsACompareAndRefresh: force_refresh makes the worker refresh the
// token the caller had (a stable_token call in normal mode, which keeps a token WeChat does
// not rotate yet), never a force at WeChat, and a second one within the minimum interval
// calls nobody.
func TestGatewayForceRefreshIsACompareAndRefresh(t *testing.T) {
	t.Parallel()
	g := setupGateway(t)
	first := wx(t, http.MethodPost, g.n.gw, "/cgi-bin/stable_token", stableBody(g.stable, "secret-"+g.stable, false))
	before := g.e.sim.Stats(g.stable).Accounts[g.stable]
	forced := wx(t, http.MethodPost, g.n.gw, "/cgi-bin/stable_token", stableBody(g.stable, "secret-"+g.stable, true))
	require.Equal(t, tokenShape, shapeOf(forced))
	require.Equal(t, first["access_token"], forced["access_token"], "WeChat keeps a stable token outside its last window")
	after := g.e.sim.Stats(g.stable).Accounts[g.stable]
	require.Equal(t, before.Calls[wechatsim.APIStableToken]+1, after.Calls[wechatsim.APIStableToken], "one refresh by the worker")
	require.Zero(t, after.ForcedRefreshes, "never a force at WeChat")

	res := g.n.call(t, adminKey, http.MethodGet, "/v1/audit-log?action=credential.force_refresh", nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	require.Len(t, res.json(t)["items"], 1, "the request is audited: %s", res.text)

	again := wx(t, http.MethodPost, g.n.gw, "/cgi-bin/stable_token", stableBody(g.stable, "secret-"+g.stable, true))
	require.Equal(t, first["access_token"], again["access_token"])
	require.Equal(t, after.Calls[wechatsim.APIStableToken], g.e.sim.Stats(g.stable).Accounts[g.stable].Calls[wechatsim.APIStableToken],
		"a second force within the minimum interval refreshes nothing")
}

func TestGatewayTicketAnswersAsWeChatDoes(t *testing.T) {
	t.Parallel()
	g := setupGateway(t)
	tok := wx(t, http.MethodGet, g.n.gw, tokenQuery(g.stable, "secret-"+g.stable), "")["access_token"].(string)
	// The simulator's own answers, with a token of an account only it knows.
	simOnly := "wxsimonly0000001"
	require.NoError(t, g.e.sim.AddAccount(simAccount(simOnly)))
	simTok := wx(t, http.MethodGet, g.e.simURL, tokenQuery(simOnly, "secret-"+simOnly), "")["access_token"].(string)
	tests := []struct {
		name, query, simQuery string
		code                  int
	}{
		{"jsapi", "access_token=" + tok + "&type=jsapi", "access_token=" + simTok + "&type=jsapi", 0},
		{"a ticket wxhub does not keep", "access_token=" + tok + "&type=wx_card", "", 40097},
		{"unknown type", "access_token=" + tok + "&type=bogus", "access_token=" + simTok + "&type=bogus", 40097},
		{"unknown token", "access_token=forged&type=jsapi", "access_token=forged&type=jsapi", 40001},
		{"no token", "type=jsapi", "type=jsapi", 41001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := wx(t, http.MethodGet, g.n.gw, "/cgi-bin/ticket/getticket?"+tt.query, "")
			if tt.code == 0 {
				require.Equal(t, ticketShape, shapeOf(got), got)
				require.Equal(t, float64(0), got["errcode"])
				require.Equal(t, "ok", got["errmsg"])
				res := g.n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+g.stable+"/tickets/jsapi", nil)
				require.Equal(t, http.StatusOK, res.status, res.text)
				rest := res.json(t)
				require.Equal(t, rest["ticket"], got["ticket"])
				require.LessOrEqual(t, got["expires_in"].(float64), rest["expires_in"].(float64))
				require.Greater(t, got["expires_in"].(float64), float64(0))
			} else {
				require.Equal(t, errorShape, shapeOf(got), got)
				require.Equal(t, float64(tt.code), got["errcode"], got)
			}
			if tt.simQuery != "" {
				atSim := wx(t, http.MethodGet, g.e.simURL, "/cgi-bin/ticket/getticket?"+tt.simQuery, "")
				require.Equal(t, shapeOf(atSim), shapeOf(got), "the simulator's answer %v", atSim)
				require.Equal(t, atSim["errcode"], got["errcode"])
			}
		})
	}
}

func TestGatewayProxyAnswersAsWeChatDoes(t *testing.T) {
	t.Parallel()
	g := setupGateway(t)
	tok := wx(t, http.MethodGet, g.n.gw, tokenQuery(g.stable, "secret-"+g.stable), "")["access_token"].(string)
	got := wx(t, http.MethodGet, g.n.gw, "/cgi-bin/get_api_domain_ip?access_token="+tok, "")
	require.Equal(t, map[string]string{"ip_list": "[]interface {}"}, shapeOf(got), "WeChat's answer passed through")

	tests := []struct {
		name, path string
		code       int
	}{
		{"unknown token", "/cgi-bin/get_api_domain_ip?access_token=forged", 40001},
		{"no token", "/cgi-bin/get_api_domain_ip", 41001},
		{"WeCom jsapi ticket with a WeChat token", "/cgi-bin/get_jsapi_ticket?access_token=" + tok, 40014},
		{"WeCom agent ticket with a WeChat token", "/cgi-bin/ticket/get?access_token=" + tok + "&type=agent_config", 40014},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := wx(t, http.MethodGet, g.n.gw, tt.path, "")
			require.Equal(t, errorShape, shapeOf(got), got)
			require.Equal(t, float64(tt.code), got["errcode"], got)
		})
	}
	// What the gateway answered itself is counted by path class and errcode.
	text := metrics(t, g.n.node)
	require.Contains(t, text, `wxhub_gateway_requests_total{outcome="ok",path="proxy"} 1`)
	require.Contains(t, text, `wxhub_gateway_requests_total{outcome="40001",path="proxy"} 1`)
	require.Contains(t, text, `wxhub_gateway_requests_total{outcome="40014",path="wecom_ticket"} 2`)
}

// metrics is a node's /metrics page.
func metrics(t testing.TB, n *node) string {
	t.Helper()
	res, err := http.Get(n.url + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return string(b)
}

// counter reads one unlabelled counter from a node's /metrics page.
func counter(t testing.TB, n *node, name string) int64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + ` (\d+)$`).FindStringSubmatch(metrics(t, n))
	require.NotNil(t, m, "%s not on /metrics", name)
	v, err := strconv.ParseInt(m[1], 10, 64)
	require.NoError(t, err)
	return v
}

// TestGatewayTenAppInstancesFetchLikeOne: ten instances of an app that each fetch the token
// at once, before wxhub has one, cause the one upstream token call a single instance causes.
func TestGatewayTenAppInstancesFetchLikeOne(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startGatewayNode(t)
	e.tenant(t, n.node, "acme")
	e.account(t, n.node, "acme", appid(1))

	answers := make([]map[string]any, 10)
	errs := make([]error, 10)
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			res, err := http.Get(n.gw + tokenQuery(appid(1), "secret-"+appid(1)))
			if err != nil {
				errs[i] = err
				return
			}
			defer res.Body.Close()
			errs[i] = json.NewDecoder(res.Body).Decode(&answers[i])
		})
	}
	// The instances are waiting for a token no worker has fetched yet.
	time.Sleep(300 * time.Millisecond)
	e.startWorker(t)
	wg.Wait()
	for i, a := range answers {
		require.NoError(t, errs[i])
		require.Equal(t, tokenShape, shapeOf(a), "%v", a)
		require.Equal(t, answers[0]["access_token"], a["access_token"])
	}
	st := e.sim.Stats(appid(1)).Accounts[appid(1)]
	calls := st.Calls[wechatsim.APIToken] + st.Calls[wechatsim.APIStableToken]
	t.Logf("ten instances: upstream token calls %d (token %d, stable_token %d), tokens issued %d",
		calls, st.Calls[wechatsim.APIToken], st.Calls[wechatsim.APIStableToken], st.TokensIssued)
	require.Equal(t, int64(1), calls, "the worker's one fetch")
	require.Equal(t, int64(1), st.TokensIssued)
}

// TestGatewayRetriesACallWeChatRejectsWithTheRefreshedToken: WeChat kills wxhub's token (a
// force refresh by someone else) between the app's token fetch and its call; the proxied
// call is rejected, wxhub refreshes the token it injected (one upstream fetch), and the call
// succeeds on the retry.
func TestGatewayRetriesACallWeChatRejectsWithTheRefreshedToken(t *testing.T) {
	t.Parallel()
	g := setupGateway(t)
	tok := wx(t, http.MethodGet, g.n.gw, tokenQuery(g.stable, "secret-"+g.stable), "")["access_token"].(string)
	require.Contains(t, wx(t, http.MethodGet, g.n.gw, "/cgi-bin/get_api_domain_ip?access_token="+tok, ""), "ip_list")

	g.settle(t)
	forceRefreshAtWeChat(t, g.e, g.stable)
	code, err := (&wechatsim.Client{BaseURL: g.e.simURL}).Use(context.Background(), tok)
	require.NoError(t, err)
	require.Equal(t, wechatsim.CodeInvalidCredential, code, "the token wxhub holds is dead")
	before := g.e.sim.Stats(g.stable).Accounts[g.stable]
	retries := counter(t, g.n.node, "wxhub_gateway_retries_total")

	got := wx(t, http.MethodGet, g.n.gw, "/cgi-bin/get_api_domain_ip?access_token="+tok, "")
	require.Contains(t, got, "ip_list", "the call succeeds on the retry: %v", got)
	after := g.e.sim.Stats(g.stable).Accounts[g.stable]
	require.Equal(t, retries+1, counter(t, g.n.node, "wxhub_gateway_retries_total"))
	require.Equal(t, before.Calls[wechatsim.APIStableToken]+1, after.Calls[wechatsim.APIStableToken], "one new upstream fetch")
	require.Equal(t, before.UsesRejected[wechatsim.CodeInvalidCredential]+1, after.UsesRejected[wechatsim.CodeInvalidCredential], "the first try")
	newTok, _ := restExpiresIn(t, g.n.node, g.stable)
	require.NotEqual(t, tok, newTok)
}

// TestGatewayWrongSecretsAreLimitedPerAddress: an address that sends wrong secrets is slowed
// down like one sending unknown API keys (--bad-key-rate), while the right secret, which the
// node holds, is still served; a new secret works at once.
func TestGatewayWrongSecretsAreLimitedPerAddress(t *testing.T) {
	t.Parallel()
	g := setupGateway(t)
	right := tokenQuery(g.stable, "secret-"+g.stable)
	require.Contains(t, wx(t, http.MethodGet, g.n.gw, right, ""), "access_token")
	codes := map[float64]int{}
	for i := range 20 {
		codes[wx(t, http.MethodGet, g.n.gw, tokenQuery(g.stable, fmt.Sprintf("guess-%d", i)), "")["errcode"].(float64)]++
	}
	require.Positive(t, codes[40125], "the first wrong secrets are told so: %v", codes)
	require.Positive(t, codes[45011], "then the address is slowed down: %v", codes)
	require.Equal(t, 20, codes[40125]+codes[45011], "%v", codes)
	require.Contains(t, wx(t, http.MethodGet, g.n.gw, right, ""), "access_token", "the right secret is still served")

	res := g.n.call(t, adminKey, http.MethodPatch, "/v1/accounts/"+g.stable, map[string]any{"secret": "rotated-" + g.stable})
	require.Equal(t, http.StatusOK, res.status, res.text)
	time.Sleep(1100 * time.Millisecond) // the address's budget refills
	require.Contains(t, wx(t, http.MethodGet, g.n.gw, tokenQuery(g.stable, "rotated-"+g.stable), ""), "access_token", "a new secret works at once")
}

// TestGatewayNodesKnowTheTokensEachOtherHandedOut: behind a load balancer an SDK fetches its
// token from one node and makes its calls through another, which has never seen the token
// (silenceper/wechat keeps it until it expires): the second node finds it among the tokens
// the gateways recorded. Made-up tokens are refused, and an address sending many is slowed
// down before they cost database lookups.
func TestGatewayNodesKnowTheTokensEachOtherHandedOut(t *testing.T) {
	t.Parallel()
	g := setupGateway(t)
	ctx := context.Background()
	other := g.e.startGatewayNode(t)
	tok := wx(t, http.MethodGet, g.n.gw, tokenQuery(g.stable, "secret-"+g.stable), "")["access_token"].(string)

	got := wx(t, http.MethodGet, other.gw, "/cgi-bin/get_api_domain_ip?access_token="+url.QueryEscape(tok), "")
	require.Equal(t, map[string]string{"ip_list": "[]interface {}"}, shapeOf(got), "a call through the other node: %v", got)
	got = wx(t, http.MethodGet, other.gw, "/cgi-bin/ticket/getticket?type=jsapi&access_token="+url.QueryEscape(tok), "")
	require.Equal(t, ticketShape, shapeOf(got), got)
	require.Equal(t, float64(0), got["errcode"])
	wecom := wx(t, http.MethodGet, other.gw, "/cgi-bin/get_jsapi_ticket?access_token="+url.QueryEscape(tok), "")
	require.Equal(t, float64(40014), wecom["errcode"], "still not a WeCom token: %v", wecom)

	// Made-up tokens: 40001, until the address has sent too many (--bad-key-rate, bursts of
	// 10); then 45011 without a lookup, while the token the node knows still works.
	codes := map[float64]int{}
	for i := range 30 {
		got := wx(t, http.MethodGet, other.gw, fmt.Sprintf("/cgi-bin/get_api_domain_ip?access_token=made-up-%d", i), "")
		codes[got["errcode"].(float64)]++
	}
	require.Positive(t, codes[40001], codes)
	require.Positive(t, codes[45011], "the address was slowed down: %v", codes)
	require.Equal(t, 30, codes[40001]+codes[45011], codes)
	got = wx(t, http.MethodGet, other.gw, "/cgi-bin/get_api_domain_ip?access_token="+url.QueryEscape(tok), "")
	require.Contains(t, got, "ip_list", got)

	// Expired tokens are forgotten by the workers' prune.
	a, err := g.e.store.GetAccount(ctx, g.stable)
	require.NoError(t, err)
	require.NoError(t, g.e.store.RecordGatewayToken(ctx, "an expired token", a.TenantID, a.ID, time.Now().Add(-time.Minute)))
	n, err := g.e.store.PruneGatewayTokens(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), n, "only the expired token")
	_, err = g.e.store.FindGatewayToken(ctx, tok)
	require.NoError(t, err)
}
