package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/wechat"
	"wxhub/wechatsim"
)

const (
	wecomCorp   = "ww_server_corp"
	wecomKeeper = "wecom_keeper"
	wecomOther  = "wecom_other"
)

// wecomApp creates agent agentID of wecomCorp in the simulator and, through the API, in
// wxhub (tenant acme).
func (e *env) wecomApp(t testing.TB, n *node, appid string, agentID int64, tickets ...string) {
	t.Helper()
	require.NoError(t, e.sim.AddAccount(wechatsim.Account{AppID: appid, Secret: "secret-" + appid,
		Kind: wechatsim.KindWeComApp, CorpID: wecomCorp, AgentID: agentID}))
	body := map[string]any{"appid": appid, "kind": "wecom_app", "secret": "secret-" + appid, "tenant": "acme",
		"corp_id": wecomCorp, "agent_id": agentID, "tickets": tickets}
	res := n.call(t, adminKey, http.MethodPost, "/v1/accounts", body)
	require.Equal(t, http.StatusCreated, res.status, res.text)
	m := res.json(t)
	require.Equal(t, wecomCorp, m["corp_id"])
	require.Equal(t, float64(agentID), m["agent_id"])
}

// setupWeCom is an env with a gateway node and a worker, tenant acme with two apps of one
// corp: the keeper of the corp's jsapi ticket (and its own agent_config ticket) and an app
// with its agent_config ticket only.
func setupWeCom(t *testing.T) gatewaySetup {
	t.Helper()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startGatewayNode(t)
	e.startWorker(t)
	e.tenant(t, n.node, "acme")
	e.tenant(t, n.node, "other")
	e.wecomApp(t, n.node, wecomKeeper, 1000001, "jsapi", "agent_config")
	e.wecomApp(t, n.node, wecomOther, 1000002, "agent_config")
	g := gatewaySetup{e: e, n: n}
	g.acmeKey, g.otherKey = e.tenantKey(t, n.node, "acme"), e.tenantKey(t, n.node, "other")
	for _, path := range []string{wecomKeeper + "/tickets/jsapi", wecomKeeper + "/tickets/agent_config", wecomOther + "/tickets/agent_config"} {
		res := n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+path, nil)
		require.Equal(t, http.StatusOK, res.status, res.text)
	}
	return g
}

func TestWeComAccountsAreCheckedOnCreation(t *testing.T) {
	t.Parallel()
	g := setupWeCom(t)
	tests := []struct {
		name   string
		body   map[string]any
		status int
	}{
		{"wecom_app without corp_id", map[string]any{"kind": "wecom_app", "agent_id": 7}, http.StatusUnprocessableEntity},
		{"wecom_app without agent_id", map[string]any{"kind": "wecom_app", "corp_id": wecomCorp}, http.StatusUnprocessableEntity},
		{"corp_id on an official account", map[string]any{"kind": "official_account", "corp_id": wecomCorp, "agent_id": 7}, http.StatusUnprocessableEntity},
		{"agent_config on an official account", map[string]any{"kind": "official_account", "tickets": []string{"agent_config"}}, http.StatusUnprocessableEntity},
		{"wx_card on a wecom_app", map[string]any{"kind": "wecom_app", "corp_id": wecomCorp, "agent_id": 7, "tickets": []string{"wx_card"}}, http.StatusUnprocessableEntity},
		{"a second keeper of the corp's jsapi ticket", map[string]any{"kind": "wecom_app", "corp_id": wecomCorp, "agent_id": 7, "tickets": []string{"jsapi"}}, http.StatusConflict},
		{"an agent of the corp twice", map[string]any{"kind": "wecom_app", "corp_id": wecomCorp, "agent_id": 1000002}, http.StatusConflict},
		{"another agent of the corp", map[string]any{"kind": "wecom_app", "corp_id": wecomCorp, "agent_id": 7, "tickets": []string{"agent_config"}}, http.StatusCreated},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.body["appid"], tt.body["secret"], tt.body["tenant"] = "wecom_new_"+strconv.Itoa(i), "s", "acme"
			res := g.n.call(t, adminKey, http.MethodPost, "/v1/accounts", tt.body)
			require.Equal(t, tt.status, res.status, res.text)
		})
	}
	// The keeper gives its corp ticket up; another app may then keep it.
	res := g.n.call(t, adminKey, http.MethodPatch, "/v1/accounts/"+wecomOther, map[string]any{"tickets": []string{"jsapi", "agent_config"}})
	require.Equal(t, http.StatusConflict, res.status, res.text)
	res = g.n.call(t, adminKey, http.MethodPatch, "/v1/accounts/"+wecomKeeper, map[string]any{"tickets": []string{"agent_config"}})
	require.Equal(t, http.StatusOK, res.status, res.text)
	res = g.n.call(t, adminKey, http.MethodPatch, "/v1/accounts/"+wecomOther, map[string]any{"tickets": []string{"jsapi", "agent_config"}})
	require.Equal(t, http.StatusOK, res.status, res.text)
}

func TestWeComCredentialsAreServedAndSignJSSDK(t *testing.T) {
	t.Parallel()
	g := setupWeCom(t)
	ctx := context.Background()
	simc := &wechatsim.Client{BaseURL: g.e.simURL}
	keeperTok, _ := g.n.token(t, g.acmeKey, wecomKeeper)
	otherTok, _ := g.n.token(t, g.acmeKey, wecomOther)
	require.NotEqual(t, keeperTok, otherTok, "two agents of one corp have their own tokens")
	for _, tok := range []string{keeperTok, otherTok} {
		code, err := simc.UseWeCom(ctx, tok)
		require.NoError(t, err)
		require.Zero(t, code, "the served token is alive at WeCom")
	}

	tests := []struct {
		appid, ticket string
	}{
		{wecomKeeper, "jsapi"},
		{wecomKeeper, "agent_config"},
		{wecomOther, "agent_config"},
	}
	for _, tt := range tests {
		t.Run(tt.appid+"/"+tt.ticket, func(t *testing.T) {
			const page = "https://example.com/wecom?x=1#top"
			res := g.n.call(t, g.acmeKey, http.MethodPost, "/v1/accounts/"+tt.appid+"/jssdk-config", map[string]any{"url": page, "ticket": tt.ticket})
			require.Equal(t, http.StatusOK, res.status, res.text)
			m := res.json(t)
			check := wechatsim.JSSDKCheck{AppID: tt.appid, URL: page, NonceStr: m["nonceStr"].(string),
				Timestamp: int64(m["timestamp"].(float64)), Signature: m["signature"].(string), Ticket: tt.ticket}
			valid, reason, err := simc.VerifyJSSDK(ctx, check)
			require.NoError(t, err)
			require.True(t, valid, reason)
			if tt.ticket == "agent_config" {
				// The same signature does not pass as one made with the corp's ticket.
				check.Ticket = "jsapi"
				valid, _, err = simc.VerifyJSSDK(ctx, check)
				require.NoError(t, err)
				require.False(t, valid)
			}
		})
	}
	res := g.n.call(t, g.acmeKey, http.MethodPost, "/v1/accounts/"+wecomOther+"/jssdk-config", map[string]any{"url": "https://example.com/", "ticket": "jsapi"})
	require.Equal(t, http.StatusNotFound, res.status, "the corp's ticket is the keeper's: %s", res.text)
}

func TestWeComTokenReported40014IsCompareAndRefreshed(t *testing.T) {
	t.Parallel()
	g := setupWeCom(t)
	ctx := context.Background()
	old, gen := g.n.token(t, g.acmeKey, wecomOther)
	// Someone else fetches two tokens with the app's secret: WeCom kills wxhub's at once.
	wecom := wechat.New(g.e.simURL+wechatsim.WeComPrefix, nil)
	for range 2 {
		_, err := wecom.WeComToken(ctx, wecomCorp, "secret-"+wecomOther)
		require.NoError(t, err)
	}
	simc := &wechatsim.Client{BaseURL: g.e.simURL}
	code, err := simc.UseWeCom(ctx, old)
	require.NoError(t, err)
	require.Equal(t, 40014, code)

	res := g.n.call(t, g.acmeKey, http.MethodPost, "/v1/accounts/"+wecomOther+"/access-token/invalidate",
		map[string]any{"access_token": old, "errcode": 40014})
	require.Equal(t, http.StatusOK, res.status, res.text)
	m := res.json(t)
	require.Equal(t, float64(gen+1), m["generation"])
	code, err = simc.UseWeCom(ctx, m["access_token"].(string))
	require.NoError(t, err)
	require.Zero(t, code)
}

// The shape of WeCom's gettoken answer: the errcode envelope on success too.
var wecomTokenShape = map[string]string{"errcode": "integer", "errmsg": "string", "access_token": "string", "expires_in": "integer"}

func gettokenQuery(corpID, secret string, extra ...string) string {
	q := url.Values{}
	if corpID != "" {
		q.Set("corpid", corpID)
	}
	if secret != "" {
		q.Set("corpsecret", secret)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		q.Set(extra[i], extra[i+1])
	}
	return "/cgi-bin/gettoken?" + q.Encode()
}

func TestGatewayWeComTokenAnswersAsWeComDoes(t *testing.T) {
	t.Parallel()
	g := setupWeCom(t)
	calls := func() int64 { return g.e.sim.Stats("").Totals.Calls[wechatsim.APIWeComToken] }
	before := calls()
	tests := []struct {
		name      string
		query     string
		appid     string // whose token is answered
		code      int
		sameAtSim bool
	}{
		{name: "corpsecret of the keeper", query: gettokenQuery(wecomCorp, "secret-"+wecomKeeper), appid: wecomKeeper, sameAtSim: true},
		{name: "corpsecret of the other app", query: gettokenQuery(wecomCorp, "secret-"+wecomOther), appid: wecomOther, sameAtSim: true},
		{name: "tenant API key and agentid", query: gettokenQuery(wecomCorp, g.acmeKey, "agentid", "1000002"), appid: wecomOther},
		{name: "API key without agentid", query: gettokenQuery(wecomCorp, g.acmeKey), code: 40097},
		{name: "another tenant's API key", query: gettokenQuery(wecomCorp, g.otherKey, "agentid", "1000002"), code: 40001},
		{name: "wrong corpsecret", query: gettokenQuery(wecomCorp, "wrong"), code: 40001, sameAtSim: true},
		{name: "unknown corp", query: gettokenQuery("ww_nobody", "x"), code: 40013, sameAtSim: true},
		{name: "missing corpid", query: gettokenQuery("", "x"), code: 41002, sameAtSim: true},
		{name: "missing corpsecret", query: gettokenQuery(wecomCorp, ""), code: 41004, sameAtSim: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := wx(t, http.MethodGet, g.n.gw, tt.query, "")
			if tt.code != 0 {
				require.Equal(t, errorShape, shapeOf(got), got)
				require.Equal(t, float64(tt.code), got["errcode"], got)
			} else {
				require.Equal(t, wecomTokenShape, shapeOf(got), got)
				require.Equal(t, float64(0), got["errcode"])
				require.Equal(t, "ok", got["errmsg"])
				restToken, restTTL := restExpiresIn(t, g.n.node, tt.appid)
				require.Equal(t, restToken, got["access_token"], "the token wxhub holds")
				require.LessOrEqual(t, int64(got["expires_in"].(float64)), restTTL, "never longer than wxhub promises")
			}
			if tt.sameAtSim {
				atSim := wx(t, http.MethodGet, g.e.simURL+wechatsim.WeComPrefix, tt.query, "")
				require.Equal(t, shapeOf(atSim), shapeOf(got), "the simulator's answer %v", atSim)
				require.Equal(t, atSim["errcode"], got["errcode"])
			}
		})
	}
	t.Run("POST", func(t *testing.T) {
		got := wx(t, http.MethodPost, g.n.gw, gettokenQuery(wecomCorp, "secret-"+wecomKeeper), "{}")
		require.Equal(t, float64(43001), got["errcode"])
	})
	// The simulator saw the rows it was asked itself (sameAtSim), and nothing from the gateway.
	require.Equal(t, before+6, calls(), "the gateway never calls WeCom for a token")
}

func TestGatewayWeComTicketsAnswerAsWeComDoes(t *testing.T) {
	t.Parallel()
	g := setupWeCom(t)
	keeperTok := wx(t, http.MethodGet, g.n.gw, gettokenQuery(wecomCorp, "secret-"+wecomKeeper), "")["access_token"].(string)
	otherTok := wx(t, http.MethodGet, g.n.gw, gettokenQuery(wecomCorp, "secret-"+wecomOther), "")["access_token"].(string)
	wechatTok := "a-wechat-token-the-gateway-never-handed-out"
	// The simulator's own answers, with a token of an app only it knows.
	require.NoError(t, g.e.sim.AddAccount(wechatsim.Account{AppID: "wecom_simonly", Secret: "secret-simonly",
		Kind: wechatsim.KindWeComApp, CorpID: "ww_simonly", AgentID: 1}))
	simTok := wx(t, http.MethodGet, g.e.simURL+wechatsim.WeComPrefix, gettokenQuery("ww_simonly", "secret-simonly"), "")["access_token"].(string)
	rest := func(appid, typ string) string {
		res := g.n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+appid+"/tickets/"+typ, nil)
		require.Equal(t, http.StatusOK, res.status, res.text)
		return res.json(t)["ticket"].(string)
	}
	tests := []struct {
		name, path, query, simQuery string
		want                        string // the ticket answered; "" for an error
		code                        int
	}{
		{"corp ticket with the keeper's token", "/cgi-bin/get_jsapi_ticket", "access_token=" + keeperTok, "access_token=" + simTok, rest(wecomKeeper, "jsapi"), 0},
		{"corp ticket with another app's token", "/cgi-bin/get_jsapi_ticket", "access_token=" + otherTok, "", rest(wecomKeeper, "jsapi"), 0},
		{"agent ticket of the keeper", "/cgi-bin/ticket/get", "access_token=" + keeperTok + "&type=agent_config", "access_token=" + simTok + "&type=agent_config", rest(wecomKeeper, "agent_config"), 0},
		{"agent ticket of the other app", "/cgi-bin/ticket/get", "access_token=" + otherTok + "&type=agent_config", "", rest(wecomOther, "agent_config"), 0},
		{"agent ticket of another type", "/cgi-bin/ticket/get", "access_token=" + otherTok + "&type=jsapi", "access_token=" + simTok + "&type=jsapi", "", 40097},
		{"unknown token", "/cgi-bin/get_jsapi_ticket", "access_token=" + wechatTok, "access_token=" + wechatTok, "", 40014},
		{"no token", "/cgi-bin/ticket/get", "type=agent_config", "type=agent_config", "", 41001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := wx(t, http.MethodGet, g.n.gw, tt.path+"?"+tt.query, "")
			if tt.code == 0 {
				require.Equal(t, ticketShape, shapeOf(got), got)
				require.Equal(t, float64(0), got["errcode"])
				require.Equal(t, "ok", got["errmsg"])
				require.Equal(t, tt.want, got["ticket"])
				require.Greater(t, got["expires_in"].(float64), float64(0))
			} else {
				require.Equal(t, errorShape, shapeOf(got), got)
				require.Equal(t, float64(tt.code), got["errcode"], got)
			}
			if tt.simQuery != "" {
				atSim := wx(t, http.MethodGet, g.e.simURL+wechatsim.WeComPrefix, tt.path+"?"+tt.simQuery, "")
				require.Equal(t, shapeOf(atSim), shapeOf(got), "the simulator's answer %v", atSim)
				require.Equal(t, atSim["errcode"], got["errcode"])
			}
		})
	}
	// A WeCom token is not WeChat's.
	got := wx(t, http.MethodGet, g.n.gw, "/cgi-bin/ticket/getticket?type=jsapi&access_token="+keeperTok, "")
	require.Equal(t, float64(40001), got["errcode"], got)
}
