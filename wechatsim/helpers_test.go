package wechatsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fakeClock is the injected clock: tests move it instead of sleeping.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// t0 is 10:00 in China, far from a day boundary.
var t0 = time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)

const (
	appA    = "wx_a"
	secretA = "secret_a"
	appB    = "wx_b"
	secretB = "secret_b"
)

// testBundle is a simulator on a real HTTP listener with a fake clock and the
// accounts wx_a and wx_b.
type testBundle struct {
	sim    *Simulator
	clock  *fakeClock
	srv    *httptest.Server
	client *Client
}

func setup(t *testing.T, cfg Config) *testBundle {
	t.Helper()
	clock := &fakeClock{t: t0}
	if cfg.Now == nil {
		cfg.Now = clock.Now
	}
	sim := New(cfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	tb := &testBundle{sim: sim, clock: clock, srv: srv, client: &Client{BaseURL: srv.URL, HTTP: srv.Client()}}
	require.NoError(t, sim.AddAccount(Account{AppID: appA, Secret: secretA}))
	require.NoError(t, sim.AddAccount(Account{AppID: appB, Secret: secretB, Kind: KindMiniProgram}))
	return tb
}

// wxAnswer is any WeChat answer; Raw keeps the fields actually present.
type wxAnswer struct {
	ErrCode     int         `json:"errcode"`
	ErrMsg      string      `json:"errmsg"`
	AccessToken string      `json:"access_token"`
	ExpiresIn   int         `json:"expires_in"`
	Ticket      string      `json:"ticket"`
	IPList      []string    `json:"ip_list"`
	Quota       *QuotaState `json:"quota"`
	Raw         map[string]json.RawMessage
}

// send sends a request to the simulator with hc and returns the raw answer,
// or the transport error of a connection closed without one.
func (tb *testBundle) send(t *testing.T, hc *http.Client, method, path string, query url.Values, contentType string, body []byte) (*http.Response, []byte, error) {
	t.Helper()
	u := tb.srv.URL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(context.Background(), method, u, bytes.NewReader(body))
	require.NoError(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, b, nil
}

// noReuseClient never reuses a connection. Tests of faults that close
// connections need it: the transport silently retries an idempotent request
// that failed on a reused connection, which would make one call two.
func noReuseClient(t *testing.T) *http.Client {
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// do sends a request to a WeChat endpoint and decodes the answer, which must
// be HTTP 200 JSON.
func (tb *testBundle) do(t *testing.T, method, path string, query url.Values, contentType string, body []byte) wxAnswer {
	t.Helper()
	resp, b, err := tb.send(t, tb.srv.Client(), method, path, query, contentType, body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body %s", b)
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json"))
	var ans wxAnswer
	require.NoError(t, json.Unmarshal(b, &ans), "body %s", b)
	require.NoError(t, json.Unmarshal(b, &ans.Raw))
	return ans
}

func (tb *testBundle) postJSON(t *testing.T, path string, query url.Values, body any) wxAnswer {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	return tb.do(t, http.MethodPost, path, query, "application/json", b)
}

func (tb *testBundle) token(t *testing.T, appid, secret string) wxAnswer {
	t.Helper()
	return tb.do(t, http.MethodGet, pathToken, url.Values{
		"grant_type": {"client_credential"}, "appid": {appid}, "secret": {secret},
	}, "", nil)
}

func (tb *testBundle) stable(t *testing.T, appid, secret string, force bool) wxAnswer {
	t.Helper()
	return tb.postJSON(t, pathStableToken, nil, map[string]any{
		"grant_type": "client_credential", "appid": appid, "secret": secret, "force_refresh": force,
	})
}

func (tb *testBundle) ticket(t *testing.T, token, typ string) wxAnswer {
	t.Helper()
	return tb.do(t, http.MethodGet, pathGetTicket, url.Values{"access_token": {token}, "type": {typ}}, "", nil)
}

// use answers what WeChat says about token right now.
func (tb *testBundle) use(t *testing.T, token string) int {
	t.Helper()
	code, err := tb.client.Use(context.Background(), token)
	require.NoError(t, err)
	return code
}

func (tb *testBundle) quotaGet(t *testing.T, token, cgiPath string) wxAnswer {
	t.Helper()
	return tb.postJSON(t, pathQuotaGet, url.Values{"access_token": {token}}, map[string]string{"cgi_path": cgiPath})
}

// mustToken fetches a classic token and fails the test unless it was issued.
func (tb *testBundle) mustToken(t *testing.T, appid, secret string) string {
	t.Helper()
	ans := tb.token(t, appid, secret)
	require.Zero(t, ans.ErrCode, ans.ErrMsg)
	require.NotEmpty(t, ans.AccessToken)
	return ans.AccessToken
}

// mustStable fetches a stable token and fails the test unless it succeeded.
func (tb *testBundle) mustStable(t *testing.T, appid, secret string, force bool) wxAnswer {
	t.Helper()
	ans := tb.stable(t, appid, secret, force)
	require.Zero(t, ans.ErrCode, ans.ErrMsg)
	require.NotEmpty(t, ans.AccessToken)
	return ans
}

// mustTicket fetches a ticket and fails the test unless it was issued.
func (tb *testBundle) mustTicket(t *testing.T, token, typ string) string {
	t.Helper()
	ans := tb.ticket(t, token, typ)
	require.Zero(t, ans.ErrCode, ans.ErrMsg)
	require.NotEmpty(t, ans.Ticket)
	return ans.Ticket
}

// pageURL is the page the JS-SDK tests sign for.
const pageURL = "https://example.com/shop?item=42"

// signed is a JS-SDK check of pageURL for appid, signed with ticket.
func signed(appid, ticket string) JSSDKCheck {
	const nonce, ts = "Wm3WZYTPz0wzccnW", 1773108000
	return JSSDKCheck{AppID: appid, URL: pageURL, NonceStr: nonce, Timestamp: ts, Signature: jssdkSignature(ticket, nonce, ts, pageURL)}
}

// verify asks the simulator over HTTP about a JS-SDK signature.
func (tb *testBundle) verify(t *testing.T, r JSSDKCheck) (bool, string) {
	t.Helper()
	valid, reason, err := tb.client.VerifyJSSDK(context.Background(), r)
	require.NoError(t, err)
	return valid, reason
}

// peek reads appid's internal state under its lock, for tests that must see
// what a client could not, such as a token whose answer was lost.
func (tb *testBundle) peek(t *testing.T, appid string, read func(a *account) string) string {
	t.Helper()
	a := tb.sim.world.Load().account(appid)
	require.NotNil(t, a)
	a.mu.Lock()
	defer a.mu.Unlock()
	return read(a)
}

func (tb *testBundle) stats(t *testing.T, appid string) AccountStats {
	t.Helper()
	st, err := tb.client.Stats(context.Background(), appid)
	require.NoError(t, err)
	as, ok := st.Accounts[appid]
	require.True(t, ok, "no stats for %s", appid)
	return as
}
