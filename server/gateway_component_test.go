package server_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

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
