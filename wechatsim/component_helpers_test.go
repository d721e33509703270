package wechatsim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/wechat/callback"
)

const (
	compApp    = "wx_component"
	compSecret = "component_secret"
	compToken  = "callback_token"
	// compKey is the EncodingAESKey of WeChat's sample code.
	compKey   = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	merchantA = "wx_merchant_a"
	merchantB = "wx_merchant_b"
)

// receiver is a component's callback URL that reads pushes the way wxhub
// must: it checks the query and msg_signature, decrypts with wechat/callback
// and parses the event, and answers with reply (or an HTTP status).
type receiver struct {
	srv    *httptest.Server
	events chan callback.Event

	mu      sync.Mutex
	keys    []callback.Key
	reply   string
	status  int
	defects []string // what was wrong with pushes that arrived
	// hook, when set, sees each event before the push is answered.
	hook func(callback.Event)
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	k, err := callback.ParseKey(compKey)
	require.NoError(t, err)
	rc := &receiver{events: make(chan callback.Event, 100), keys: []callback.Key{k}, reply: "success", status: http.StatusOK}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

// set changes the receiver's answer.
func (rc *receiver) set(status int, reply string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.status, rc.reply = status, reply
}

func (rc *receiver) setKeys(keys ...callback.Key) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.keys = keys
}

func (rc *receiver) defect(format string, args ...any) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.defects = append(rc.defects, fmt.Sprintf(format, args...))
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	keys, status, reply, hook := rc.keys, rc.status, rc.reply, rc.hook
	rc.mu.Unlock()
	q := r.URL.Query()
	body, err := io.ReadAll(r.Body)
	switch {
	case err != nil:
		rc.defect("read body: %v", err)
	case r.Method != http.MethodPost:
		rc.defect("method %s", r.Method)
	case q.Get("encrypt_type") != "aes" || q.Get("timestamp") == "" || q.Get("nonce") == "":
		rc.defect("query %s", r.URL.RawQuery)
	default:
		if ev, ok := rc.read(keys, q, body); ok && hook != nil {
			hook(ev)
		}
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, reply)
}

// read checks and decrypts one push, and queues its event.
func (rc *receiver) read(keys []callback.Key, q url.Values, body []byte) (callback.Event, bool) {
	env, err := callback.ParseEnvelope(body)
	if err != nil {
		rc.defect("envelope: %v", err)
		return callback.Event{}, false
	}
	if !callback.VerifySignature(compToken, q.Get("timestamp"), q.Get("nonce"), env.Encrypt, q.Get("msg_signature")) {
		rc.defect("bad msg_signature")
		return callback.Event{}, false
	}
	plain, err := callback.Decrypt(keys, compApp, env.Encrypt)
	if err != nil {
		rc.defect("decrypt: %v", err)
		return callback.Event{}, false
	}
	ev, err := callback.ParseEvent(plain)
	if err != nil {
		rc.defect("event: %v", err)
		return callback.Event{}, false
	}
	if env.AppID != compApp || ev.AppID != compApp || fmt.Sprint(ev.CreateTime) != q.Get("timestamp") {
		rc.defect("event %+v in envelope of %s at %s", ev, env.AppID, q.Get("timestamp"))
		return callback.Event{}, false
	}
	rc.events <- ev
	return ev, true
}

// next waits for the next pushed event.
func (rc *receiver) next(t *testing.T) callback.Event {
	t.Helper()
	select {
	case ev := <-rc.events:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no push arrived")
		return callback.Event{}
	}
}

// requireClean fails the test if any push was malformed.
func (rc *receiver) requireClean(t *testing.T) {
	t.Helper()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	require.Empty(t, rc.defects)
}

// componentSetup is setup with a component account whose callback URL is a
// receiver. Automatic ticket pushes are off unless cfg sets an interval;
// the simulator is closed before the receiver.
func componentSetup(t *testing.T, cfg Config) (*testBundle, *receiver) {
	t.Helper()
	rc := newReceiver(t)
	if cfg.Component.TicketInterval == 0 {
		cfg.Component.TicketInterval = -1
	}
	tb := setup(t, cfg)
	t.Cleanup(tb.sim.Close)
	require.NoError(t, tb.client.AddAccount(t.Context(), Account{
		AppID: compApp, Secret: compSecret, Kind: KindComponent,
		CallbackToken: compToken, EncodingAESKey: compKey, CallbackURL: rc.srv.URL + "/wechat/component?tenant=demo",
	}))
	return tb, rc
}

// compAnswer is any answer of the component APIs.
type compAnswer struct {
	ErrCode                int               `json:"errcode"`
	ErrMsg                 string            `json:"errmsg"`
	ComponentAccessToken   string            `json:"component_access_token"`
	ExpiresIn              int               `json:"expires_in"`
	PreAuthCode            string            `json:"pre_auth_code"`
	AuthorizationInfo      AuthorizationInfo `json:"authorization_info"`
	AuthorizerInfo         AuthorizerInfo    `json:"authorizer_info"`
	AuthorizerAccessToken  string            `json:"authorizer_access_token"`
	AuthorizerRefreshToken string            `json:"authorizer_refresh_token"`
	Raw                    map[string]json.RawMessage
}

// comp POSTs body to a component API, with component_access_token when
// ctoken is not empty.
func (tb *testBundle) comp(t *testing.T, path, ctoken string, body any) compAnswer {
	t.Helper()
	return tb.compMethod(t, http.MethodPost, path, ctoken, body)
}

func (tb *testBundle) compMethod(t *testing.T, method, path, ctoken string, body any) compAnswer {
	t.Helper()
	var q url.Values
	if ctoken != "" {
		q = url.Values{"component_access_token": {ctoken}}
	}
	var b []byte
	switch v := body.(type) {
	case nil:
	case string:
		b = []byte(v)
	default:
		var err error
		b, err = json.Marshal(v)
		require.NoError(t, err)
	}
	resp, raw, err := tb.send(t, tb.srv.Client(), method, path, q, "application/json", b)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body %s", raw)
	var ans compAnswer
	require.NoError(t, json.Unmarshal(raw, &ans), "body %s", raw)
	require.NoError(t, json.Unmarshal(raw, &ans.Raw))
	if ans.ErrCode != 0 {
		require.True(t, strings.HasPrefix(ans.ErrMsg, errMessages[ans.ErrCode]), "errmsg %q for %d", ans.ErrMsg, ans.ErrCode)
	}
	return ans
}

// pushTicket pushes a verify ticket and returns it.
func (tb *testBundle) pushTicket(t *testing.T) string {
	t.Helper()
	p, err := tb.client.PushVerifyTicket(t.Context(), compApp)
	require.NoError(t, err)
	require.NotEmpty(t, p.ComponentVerifyTicket)
	return p.ComponentVerifyTicket
}

func (tb *testBundle) componentToken(t *testing.T, ticket string) compAnswer {
	t.Helper()
	return tb.comp(t, pathComponentToken, "", map[string]string{
		"component_appid": compApp, "component_appsecret": compSecret, "component_verify_ticket": ticket,
	})
}

// mustComponentToken pushes a ticket and buys a component token with it.
func (tb *testBundle) mustComponentToken(t *testing.T) string {
	t.Helper()
	ans := tb.componentToken(t, tb.pushTicket(t))
	require.Zero(t, ans.ErrCode, ans.ErrMsg)
	require.NotEmpty(t, ans.ComponentAccessToken)
	return ans.ComponentAccessToken
}

func (tb *testBundle) preAuthCode(t *testing.T, ctoken string) compAnswer {
	t.Helper()
	return tb.comp(t, pathCreatePreAuthCode, ctoken, map[string]string{"component_appid": compApp})
}

func (tb *testBundle) authorize(t *testing.T, a Authorization) Push {
	t.Helper()
	if a.ComponentAppID == "" {
		a.ComponentAppID = compApp
	}
	p, err := tb.client.Authorize(t.Context(), a)
	require.NoError(t, err)
	return p
}

func (tb *testBundle) queryAuth(t *testing.T, ctoken, code string) compAnswer {
	t.Helper()
	return tb.comp(t, pathQueryAuth, ctoken, map[string]string{"component_appid": compApp, "authorization_code": code})
}

func (tb *testBundle) authorizerToken(t *testing.T, ctoken, authorizer, refresh string) compAnswer {
	t.Helper()
	return tb.comp(t, pathAuthorizerToken, ctoken, map[string]string{
		"component_appid": compApp, "authorizer_appid": authorizer, "authorizer_refresh_token": refresh,
	})
}

func (tb *testBundle) authorizerInfo(t *testing.T, ctoken, authorizer string) compAnswer {
	t.Helper()
	return tb.comp(t, pathGetAuthorizerInfo, ctoken, map[string]string{"component_appid": compApp, "authorizer_appid": authorizer})
}

// authorized makes merchant authorize the component and exchanges the code:
// it returns the component token and the authorization_info.
func (tb *testBundle) authorized(t *testing.T, merchant string) (string, AuthorizationInfo) {
	t.Helper()
	ctoken := tb.mustComponentToken(t)
	p := tb.authorize(t, Authorization{AuthorizerAppID: merchant, Action: ActionAuthorize})
	ans := tb.queryAuth(t, ctoken, p.AuthorizationCode)
	require.Zero(t, ans.ErrCode, ans.ErrMsg)
	return ctoken, ans.AuthorizationInfo
}
