package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/db"
	"wxhub/wechat/callback"
	"wxhub/wechatsim"
)

const (
	componentAppID  = "wxcomponent000001"
	callbackToken   = "pushtoken123"
	currentAESKey   = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	previousAESKey  = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
	unrelatedAESKey = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFG"
)

// push is one message as WeChat would send it to a component's event URL.
type push struct {
	appid     string // the appid sealed into the ciphertext
	key       string // the EncodingAESKey it is encrypted with
	token     string // the callback token it is signed with
	timestamp time.Time
	nonce     string
	event     callback.Event
	body      []byte // sent instead of the envelope when set
}

func (p push) send(t *testing.T, n *node, component string) response {
	t.Helper()
	key, err := callback.ParseKey(p.key)
	require.NoError(t, err)
	encrypted, err := callback.Encrypt(key, p.appid, p.event.Marshal(), rand.Reader)
	require.NoError(t, err)
	body := p.body
	if body == nil {
		body = callback.Envelope{AppID: p.appid, Encrypt: encrypted}.Marshal()
	}
	ts := strconv.FormatInt(p.timestamp.Unix(), 10)
	q := url.Values{"timestamp": {ts}, "nonce": {p.nonce}, "encrypt_type": {"aes"},
		"msg_signature": {callback.Signature(p.token, ts, p.nonce, encrypted)}}
	return n.call(t, "", http.MethodPost, "/v1/components/"+component+"/events?"+q.Encode(), body, "Content-Type", "text/xml")
}

func ticketPush(nonce, ticket string, created time.Time) push {
	return push{appid: componentAppID, key: currentAESKey, token: callbackToken, timestamp: time.Now(), nonce: nonce,
		event: callback.Event{AppID: componentAppID, CreateTime: created.Unix(), InfoType: callback.InfoTypeVerifyTicket, ComponentVerifyTicket: ticket}}
}

func createComponent(t *testing.T, e *env, n *node) {
	t.Helper()
	e.tenant(t, n, "acme")
	res := n.call(t, adminKey, http.MethodPost, "/v1/accounts", map[string]any{
		"appid": componentAppID, "kind": "component", "secret": "component-secret", "tenant": "acme",
		"callback": map[string]any{"token": callbackToken, "encoding_aes_key": currentAESKey, "previous_encoding_aes_key": previousAESKey},
	})
	require.Equal(t, http.StatusCreated, res.status, res.text)
}

// TestCallbackAcceptsOnlyWeChatsFreshSignedPushes sends pushes that a forger, a replayer or a
// misconfigured platform would, each after the one before: only the genuine ones are
// answered success, and nothing else changes the stored ticket or the nonces recorded.
func TestCallbackAcceptsOnlyWeChatsFreshSignedPushes(t *testing.T) {
	e := newEnv(t, time.Hour, time.Minute)
	n := e.startNode(t, time.Second)
	createComponent(t, e, n)
	comp, err := e.store.GetAccount(context.Background(), componentAppID)
	require.NoError(t, err)
	p := pool(t, e)
	nonces := func() (count int) {
		require.NoError(t, p.QueryRow(context.Background(), "SELECT count(*) FROM callback_nonces").Scan(&count))
		return count
	}
	now := time.Now()

	genuine := ticketPush("1001", "ticket-1", now)
	withBadSignature := ticketPush("1002", "ticket-forged", now)
	withBadSignature.token = "not-the-token"
	stale := ticketPush("1003", "ticket-stale", now)
	stale.timestamp = now.Add(-6 * time.Minute)
	fromTheFuture := ticketPush("1004", "ticket-future", now)
	fromTheFuture.timestamp = now.Add(6 * time.Minute)
	forAnotherPlatform := ticketPush("1005", "ticket-other", now)
	forAnotherPlatform.appid = "wxcomponent000002"
	forAnotherPlatform.event.AppID = "wxcomponent000002"
	withUnknownKey := ticketPush("1006", "ticket-unknown-key", now)
	withUnknownKey.key = unrelatedAESKey
	garbage := ticketPush("1007", "ticket-garbage", now)
	garbage.body = []byte("<xml><Encrypt>this is not base64!</Encrypt></xml>")
	notXML := ticketPush("1008", "ticket-not-xml", now)
	notXML.body = []byte("\x00\x01 definitely not xml")
	withPreviousKey := ticketPush("1009", "ticket-2", now.Add(time.Second))
	withPreviousKey.key = previousAESKey
	older := ticketPush("1010", "ticket-older", now.Add(-time.Minute))

	for _, tc := range []struct {
		name       string
		push       push
		component  string
		status     int
		problem    string
		wantTicket string // the ticket stored afterwards ("" none yet)
		wantNonces int
	}{
		{"bad signature", withBadSignature, componentAppID, http.StatusForbidden, "urn:wxhub:problem:push-rejected", "", 0},
		{"genuine", genuine, componentAppID, http.StatusOK, "", "ticket-1", 1},
		{"replayed", genuine, componentAppID, http.StatusForbidden, "urn:wxhub:problem:push-rejected", "ticket-1", 1},
		{"stale timestamp", stale, componentAppID, http.StatusForbidden, "urn:wxhub:problem:push-rejected", "ticket-1", 1},
		{"timestamp from the future", fromTheFuture, componentAppID, http.StatusForbidden, "urn:wxhub:problem:push-rejected", "ticket-1", 1},
		{"wrong appid", forAnotherPlatform, componentAppID, http.StatusForbidden, "urn:wxhub:problem:push-rejected", "ticket-1", 1},
		{"unknown key", withUnknownKey, componentAppID, http.StatusBadRequest, "urn:wxhub:problem:bad-request", "ticket-1", 1},
		{"garbage ciphertext", garbage, componentAppID, http.StatusBadRequest, "urn:wxhub:problem:bad-request", "ticket-1", 1},
		{"not XML", notXML, componentAppID, http.StatusBadRequest, "urn:wxhub:problem:bad-request", "ticket-1", 1},
		{"unknown component", genuine, "wxcomponent000009", http.StatusNotFound, "urn:wxhub:problem:not-found", "ticket-1", 1},
		{"previous key", withPreviousKey, componentAppID, http.StatusOK, "", "ticket-2", 2},
		{"older ticket", older, componentAppID, http.StatusOK, "", "ticket-2", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := tc.push.send(t, n, tc.component)
			require.Equal(t, tc.status, res.status, res.text)
			if tc.status == http.StatusOK {
				require.Equal(t, "success", res.text)
			} else {
				require.Equal(t, tc.problem, res.json(t)["type"], res.text)
			}
			require.Equal(t, tc.wantNonces, nonces())
			ticket, err := e.store.GetCredential(context.Background(), comp.ID, "verify_ticket")
			if tc.wantTicket == "" {
				require.ErrorIs(t, err, db.ErrNotFound)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantTicket, ticket.Value)
		})
	}
}

// TestAComponentNeedsCallbackSettingsAndNoOtherKindTakesThem checks the account API's side
// of a component: the callback settings are required, validated and never shown.
func TestAComponentNeedsCallbackSettingsAndNoOtherKindTakesThem(t *testing.T) {
	e := newEnv(t, time.Hour, time.Minute)
	n := e.startNode(t, time.Second)
	e.tenant(t, n, "acme")
	good := map[string]any{"token": callbackToken, "encoding_aes_key": currentAESKey}
	for i, tc := range []struct {
		kind     string
		callback map[string]any
		tickets  []string
		status   int
	}{
		{"component", nil, nil, http.StatusUnprocessableEntity},
		{"component", map[string]any{"token": callbackToken, "encoding_aes_key": "too-short"}, nil, http.StatusUnprocessableEntity},
		{"component", map[string]any{"token": "a b", "encoding_aes_key": currentAESKey}, nil, http.StatusUnprocessableEntity},
		{"component", good, []string{"jsapi"}, http.StatusUnprocessableEntity},
		{"official_account", good, nil, http.StatusUnprocessableEntity},
		{"component", good, nil, http.StatusCreated},
	} {
		body := map[string]any{"appid": fmt.Sprintf("wxcomponent%06d", i), "kind": tc.kind, "secret": "component-secret", "tenant": "acme"}
		if tc.callback != nil {
			body["callback"] = tc.callback
		}
		if tc.tickets != nil {
			body["tickets"] = tc.tickets
		}
		res := n.call(t, adminKey, http.MethodPost, "/v1/accounts", body)
		require.Equal(t, tc.status, res.status, "case %d: %s", i, res.text)
		require.NotContains(t, res.text, currentAESKey)
		require.NotContains(t, res.text, callbackToken)
	}
	res := n.call(t, adminKey, http.MethodGet, "/v1/accounts/wxcomponent000005", nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	require.Equal(t, "component", res.json(t)["kind"])
	require.NotContains(t, res.text, currentAESKey)
	require.NotContains(t, res.text, callbackToken)
}

// TestAComponentGetsItsTokenFromTheTicketsWeChatPushes runs the platform's bootstrap end to
// end: the simulator pushes encrypted verify tickets to the node's event URL, the first one
// wakes the component's token, and the token the API serves is one WeChat accepts.
func TestAComponentGetsItsTokenFromTheTicketsWeChatPushes(t *testing.T) {
	e := newEnv(t, time.Hour, time.Minute, func(c *wechatsim.Config) { c.Component.TicketInterval = 500 * time.Millisecond })
	t.Cleanup(e.sim.Close)
	n := e.startNode(t, time.Second)
	createComponent(t, e, n)
	e.startWorker(t)

	// Without a ticket there is nothing to fetch the token with: the worker leaves the
	// token unscheduled rather than trying and failing.
	time.Sleep(300 * time.Millisecond)
	comp, err := e.store.GetAccount(context.Background(), componentAppID)
	require.NoError(t, err)
	require.Equal(t, "active", comp.Status)
	waiting, err := e.store.GetCredential(context.Background(), comp.ID, "access_token")
	require.ErrorIs(t, err, db.ErrNotFound, "no token yet")
	require.Nil(t, waiting.RefreshAt, "not scheduled before a ticket")
	require.Zero(t, waiting.Attempts, "no attempt before a ticket")

	require.NoError(t, e.sim.AddAccount(wechatsim.Account{AppID: componentAppID, Secret: "component-secret", Kind: wechatsim.KindComponent,
		CallbackToken: callbackToken, EncodingAESKey: currentAESKey, CallbackURL: n.url + "/v1/components/" + componentAppID + "/events"}))
	var token string
	waitUntil(t, 10*time.Second, "the component's token", func() bool {
		res := n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+componentAppID+"/access-token", nil)
		if res.status != http.StatusOK {
			return false
		}
		token = res.json(t)["access_token"].(string)
		return true
	})
	waitUntil(t, 5*time.Second, "a few more pushes", func() bool {
		return e.sim.Stats(componentAppID).Accounts[componentAppID].Pushes[callback.InfoTypeVerifyTicket] >= 3
	})

	st := e.sim.Stats(componentAppID).Accounts[componentAppID]
	require.Zero(t, st.PushFailures, "every push answered success")
	require.Equal(t, int64(1), st.Calls[wechatsim.APIComponentToken], "one token for the first ticket; later tickets leave a live token alone")

	body, err := json.Marshal(map[string]string{"component_appid": componentAppID})
	require.NoError(t, err)
	res, err := http.Post(e.simURL+"/cgi-bin/component/api_create_preauthcode?component_access_token="+url.QueryEscape(token), "application/json", bytes.NewReader(body))
	require.NoError(t, err)
	defer res.Body.Close()
	var answer struct {
		ErrCode     int    `json:"errcode"`
		PreAuthCode string `json:"pre_auth_code"`
	}
	require.NoError(t, json.NewDecoder(res.Body).Decode(&answer))
	require.Zero(t, answer.ErrCode)
	require.NotEmpty(t, answer.PreAuthCode, "WeChat accepts the served component token")
}

// TestTheAuthorizeURLCarriesAPreAuthCodeWeChatAccepts: the link's code is one WeChat issued
// to the component and still takes, and a tenant key of another tenant gets nothing.
func TestTheAuthorizeURLCarriesAPreAuthCodeWeChatAccepts(t *testing.T) {
	e := newEnv(t, time.Hour, time.Minute, func(c *wechatsim.Config) { c.Component.TicketInterval = time.Hour })
	t.Cleanup(e.sim.Close)
	n := e.startNode(t, time.Second)
	createComponent(t, e, n)
	e.tenant(t, n, "other")
	e.startWorker(t)
	require.NoError(t, e.sim.AddAccount(wechatsim.Account{AppID: componentAppID, Secret: "component-secret", Kind: wechatsim.KindComponent,
		CallbackToken: callbackToken, EncodingAESKey: currentAESKey, CallbackURL: n.url + "/v1/components/" + componentAppID + "/events"}))

	path := "/v1/components/" + componentAppID + "/authorize-url?" + url.Values{"redirect_uri": {"https://platform.example/authorized?x=1"}}.Encode()
	res := n.call(t, adminKey, http.MethodGet, path, nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	link, err := url.Parse(res.json(t)["url"].(string))
	require.NoError(t, err)
	require.Equal(t, "https://mp.weixin.qq.com/cgi-bin/componentloginpage", link.Scheme+"://"+link.Host+link.Path)
	q := link.Query()
	require.Equal(t, componentAppID, q.Get("component_appid"))
	require.Equal(t, "https://platform.example/authorized?x=1", q.Get("redirect_uri"))
	require.Equal(t, "3", q.Get("auth_type"))
	expires, err := time.Parse(time.RFC3339, res.json(t)["expires_at"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now().Add(600*time.Second), expires, 5*time.Second)

	// WeChat takes the code for an authorization, once.
	_, err = e.sim.Authorize(context.Background(), wechatsim.Authorization{ComponentAppID: componentAppID,
		AuthorizerAppID: "wxmerchant0000001", Action: wechatsim.ActionAuthorize, PreAuthCode: q.Get("pre_auth_code")})
	require.NoError(t, err)
	_, err = e.sim.Authorize(context.Background(), wechatsim.Authorization{ComponentAppID: componentAppID,
		AuthorizerAppID: "wxmerchant0000002", Action: wechatsim.ActionAuthorize, PreAuthCode: q.Get("pre_auth_code")})
	require.Error(t, err, "a used code")

	for _, tc := range []struct {
		name, key, path string
		status          int
	}{
		{"another tenant's key", e.tenantKey(t, n, "other"), path, http.StatusNotFound},
		{"not a component", adminKey, "/v1/components/" + appid(7) + "/authorize-url?redirect_uri=x", http.StatusNotFound},
		{"no redirect_uri", adminKey, "/v1/components/" + componentAppID + "/authorize-url", http.StatusUnprocessableEntity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "not a component" {
				e.account(t, n, "acme", appid(7))
			}
			res := n.call(t, tc.key, http.MethodGet, tc.path, nil)
			require.Equal(t, tc.status, res.status, res.text)
		})
	}
}
