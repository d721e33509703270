package examples_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/silenceper/wechat/v2"
	"github.com/silenceper/wechat/v2/cache"
	offConfig "github.com/silenceper/wechat/v2/officialaccount/config"
	openConfig "github.com/silenceper/wechat/v2/openplatform/config"
	"github.com/stretchr/testify/require"

	"wxhub/db"
	"wxhub/db/dbtest"
	"wxhub/db/keyring"
	"wxhub/server"
	wxclient "wxhub/wechat"
	"wxhub/wechatsim"
	"wxhub/worker"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

const (
	appID     = "wxsdk00000000001"
	appSecret = "sdk-secret-0001"
	testKeys  = "t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// toGateway is the only change an app makes: the SDK's HTTP client sends what it addresses
// to api.weixin.qq.com to the gateway instead. It records the hosts the SDK asked for.
type toGateway struct {
	gateway *url.URL
	mu      sync.Mutex
	hosts   map[string]int
}

func (g *toGateway) RoundTrip(r *http.Request) (*http.Response, error) {
	g.mu.Lock()
	g.hosts[r.URL.Host]++
	g.mu.Unlock()
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host, out.Host = g.gateway.Scheme, g.gateway.Host, ""
	return http.DefaultTransport.RoundTrip(out)
}

// wxhub is what a deployment runs, in process: PostgreSQL (the test harness's), the
// simulator in WeChat's place, a worker, and an API node with its gateway.
type wxhub struct {
	store  *db.Store
	sim    *wechatsim.Simulator
	simURL string
	apiURL string // the API node, where WeChat pushes a component's events
	gwURL  string
}

func startWxhub(t *testing.T, simConfig wechatsim.Config) wxhub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ring, err := keyring.Parse(testKeys)
	require.NoError(t, err)
	dsn := dbtest.URL(t)
	pool, err := db.Open(ctx, dsn)
	require.NoError(t, err)
	store := db.NewStore(pool, ring)

	sim := wechatsim.New(simConfig)
	simSrv := httptest.NewServer(sim)
	w, err := worker.New(store, wxclient.New(simSrv.URL, nil), worker.Config{ID: "w", PollInterval: 50 * time.Millisecond, Logger: quiet})
	require.NoError(t, err)
	node := server.New(store, server.Config{ListenerURL: dsn, WeChat: wxclient.New(simSrv.URL, nil), Logger: quiet})
	gw, err := node.Gateway(server.GatewayConfig{Upstream: simSrv.URL})
	require.NoError(t, err)
	gwSrv := httptest.NewServer(gw.Handler())
	apiSrv := httptest.NewServer(node.Handler())

	var wg sync.WaitGroup
	wg.Go(func() { _ = w.Run(ctx) })
	wg.Go(func() { node.Run(ctx) })
	t.Cleanup(func() {
		gwSrv.Close()
		apiSrv.Close()
		cancel()
		wg.Wait()
		sim.Close()
		simSrv.Close()
		pool.Close()
	})
	return wxhub{store: store, sim: sim, simURL: simSrv.URL, apiURL: apiSrv.URL, gwURL: gwSrv.URL}
}

// sdkClient is the SDK's HTTP client with the one change an app makes.
func sdkClient(t *testing.T, gwURL string) (*http.Client, *toGateway) {
	t.Helper()
	gateway, err := url.Parse(gwURL)
	require.NoError(t, err)
	rewrite := &toGateway{gateway: gateway, hosts: map[string]int{}}
	return &http.Client{Transport: rewrite, Timeout: 30 * time.Second}, rewrite
}

// TestUnmodifiedSDKTakesItsTokenFromTheGateway: silenceper/wechat, with only its HTTP client
// pointed at the gateway, fetches an official account's token, calls a WeChat API and signs a
// JS-SDK page; the simulator (WeChat) never sees a token call from the app: every token and
// ticket call it saw is one wxhub's worker counted in its quota ledger.
func TestUnmodifiedSDKTakesItsTokenFromTheGateway(t *testing.T) {
	h := startWxhub(t, wechatsim.Config{})
	store, sim := h.store, h.sim
	simClient := &wechatsim.Client{BaseURL: h.simURL}
	ctx := context.Background()
	require.NoError(t, sim.AddAccount(wechatsim.Account{AppID: appID, Secret: appSecret}))
	_, err := store.CreateTenant(ctx, "shop")
	require.NoError(t, err)
	account, err := store.CreateAccount(ctx, db.NewAccount{Tenant: "shop", AppID: appID, Kind: "official_account",
		Secret: appSecret, Tickets: []string{"jsapi"}})
	require.NoError(t, err)

	client, rewrite := sdkClient(t, h.gwURL)
	wc := wechat.NewWechat()
	wc.SetHTTPClient(client)

	for _, stable := range []bool{false, true} {
		oa := wc.GetOfficialAccount(&offConfig.Config{AppID: appID, AppSecret: appSecret, Cache: cache.NewMemory(), UseStableAK: stable})
		token, err := oa.GetAccessToken()
		require.NoError(t, err, "stable_token: %v", stable)
		require.NotEmpty(t, token)
		code, err := simClient.Use(ctx, token)
		require.NoError(t, err)
		require.Zero(t, code, "the token the SDK got works at WeChat")

		ips, err := oa.GetBasic().GetAPIDomainIP()
		require.NoError(t, err, "a WeChat API through the gateway")
		require.NotEmpty(t, ips)

		page := "https://example.com/page?x=1"
		cfg, err := oa.GetJs().GetConfig(page)
		require.NoError(t, err)
		valid, reason, err := simClient.VerifyJSSDK(ctx, wechatsim.JSSDKCheck{AppID: appID, URL: page,
			NonceStr: cfg.NonceStr, Timestamp: cfg.Timestamp, Signature: cfg.Signature})
		require.NoError(t, err)
		require.True(t, valid, "the SDK signed with a live ticket: %s", reason)
	}
	require.Equal(t, []string{"api.weixin.qq.com"}, hostsOf(rewrite), "the SDK addressed WeChat only, and reached the gateway")

	st := sim.Stats(appID).Accounts[appID]
	detail, err := store.GetAccountDetail(ctx, account)
	require.NoError(t, err)
	ledger := detail.UpstreamCalls
	t.Logf("WeChat saw token %d, stable_token %d, getticket %d calls; wxhub's ledger: %v",
		st.Calls[wechatsim.APIToken], st.Calls[wechatsim.APIStableToken], st.Calls[wechatsim.APIGetTicket], ledger)
	require.Zero(t, st.Calls[wechatsim.APIToken], "no classic token call: the SDK's went to the gateway")
	require.Equal(t, int64(ledger["stable_token"]), st.Calls[wechatsim.APIStableToken], "every stable_token call is the worker's")
	require.Equal(t, int64(ledger["getticket"]), st.Calls[wechatsim.APIGetTicket], "every getticket call is the worker's")
	require.Equal(t, int64(1), st.TokensIssued)
}

func hostsOf(g *toGateway) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for h := range g.hosts {
		out = append(out, h)
	}
	return out
}

const (
	componentAppID  = "wxsdkcomponent001"
	componentSecret = "sdk-component-secret"
	merchantAppID   = "wxsdkmerchant0001"
	pushToken       = "sdkpushtoken"
	pushAESKey      = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
)

// TestUnmodifiedSDKRunsAThirdPartyPlatformThroughTheGateway: silenceper/wechat's open
// platform, its HTTP client pointed at the gateway, takes its component token, exchanges the
// code of a merchant's authorization (after wxhub took the authorized event), takes the
// authorizer's token with the refresh token the exchange gave it, calls a WeChat API as the
// merchant and asks for a pre-authorization code. WeChat saw no token call from the app:
// every component and authorizer token call it saw is one wxhub counted in its ledger, and
// the code was exchanged once, by wxhub.
func TestUnmodifiedSDKRunsAThirdPartyPlatformThroughTheGateway(t *testing.T) {
	h := startWxhub(t, wechatsim.Config{Component: wechatsim.ComponentConfig{TicketInterval: time.Second}})
	ctx := context.Background()
	_, err := h.store.CreateTenant(ctx, "platform")
	require.NoError(t, err)
	platform, err := h.store.CreateAccount(ctx, db.NewAccount{Tenant: "platform", AppID: componentAppID, Kind: "component",
		Secret: componentSecret, Callback: &db.CallbackConfig{Token: pushToken, AESKey: pushAESKey}})
	require.NoError(t, err)
	require.NoError(t, h.sim.AddAccount(wechatsim.Account{AppID: componentAppID, Secret: componentSecret, Kind: wechatsim.KindComponent,
		CallbackToken: pushToken, EncodingAESKey: pushAESKey, CallbackURL: h.apiURL + "/v1/components/" + componentAppID + "/events"}))
	require.Eventually(t, func() bool {
		c, err := h.store.GetCredential(ctx, platform.ID, "access_token")
		return err == nil && c.Generation > 0
	}, 15*time.Second, 50*time.Millisecond, "the component's token, once WeChat pushed a verify ticket")

	client, rewrite := sdkClient(t, h.gwURL)
	wc := wechat.NewWechat()
	wc.SetHTTPClient(client)
	sdkCache := cache.NewMemory()
	op := wc.GetOpenPlatform(&openConfig.Config{AppID: componentAppID, AppSecret: componentSecret, Token: pushToken,
		EncodingAESKey: pushAESKey, Cache: sdkCache})
	// Behind wxhub the app receives no verify tickets (WeChat pushes them to wxhub): any text
	// will do. The SDK keeps the token for expires_in minus 1500 s, longer than wxhub promises
	// a value WeChat replaces on every fetch (the overlap minus the staleness bound), so it
	// would keep nothing; the app keeps it for the expires_in answered (README, "Moving an app
	// to wxhub").
	component, err := op.SetComponentAccessToken(ctx, "none: wxhub holds the tickets")
	require.NoError(t, err)
	require.Positive(t, component.ExpiresIn)
	require.Less(t, component.ExpiresIn, int64(1500), "the promise of a rotating token")
	require.NoError(t, sdkCache.Set("component_access_token_"+componentAppID, component.AccessToken,
		time.Duration(component.ExpiresIn)*time.Second))

	push, err := h.sim.Authorize(ctx, wechatsim.Authorization{ComponentAppID: componentAppID, AuthorizerAppID: merchantAppID,
		Action: wechatsim.ActionAuthorize})
	require.NoError(t, err)
	require.True(t, push.Delivered, "wxhub took the authorized event: %s", push.Reply)
	// The merchant's browser brings the same code to the platform's redirect page.
	auth, err := op.QueryAuthCode(push.AuthorizationCode)
	require.NoError(t, err)
	require.Equal(t, merchantAppID, auth.Appid)
	require.NotEmpty(t, auth.RefreshToken)
	require.NotEmpty(t, auth.FuncInfo)
	simClient := &wechatsim.Client{BaseURL: h.simURL}
	code, err := simClient.Use(ctx, auth.AccessToken)
	require.NoError(t, err)
	require.Zero(t, code, "the authorizer's token the SDK got works at WeChat")

	// The app keeps the refresh token where the SDK looks for it; the SDK then asks for the
	// authorizer's token with it (api_authorizer_token) when it needs one.
	require.NoError(t, sdkCache.Set("authorizer_refresh_token_"+merchantAppID, auth.RefreshToken, time.Hour))
	merchant := op.GetOfficialAccount(merchantAppID)
	token, err := merchant.GetAccessToken()
	require.NoError(t, err)
	require.Equal(t, auth.AccessToken, token, "the token wxhub keeps")
	ips, err := merchant.GetBasic().GetAPIDomainIP()
	require.NoError(t, err, "a WeChat API as the merchant, through the gateway")
	require.NotEmpty(t, ips)
	preAuthCode, err := op.GetPreCode()
	require.NoError(t, err, "a forwarded component call")
	require.NotEmpty(t, preAuthCode)
	require.Equal(t, []string{"api.weixin.qq.com"}, hostsOf(rewrite))

	st := h.sim.Stats(componentAppID).Accounts[componentAppID]
	detail, err := h.store.GetAccountDetail(ctx, platform)
	require.NoError(t, err)
	merchantAccount, err := h.store.GetAccount(ctx, merchantAppID)
	require.NoError(t, err)
	merchantDetail, err := h.store.GetAccountDetail(ctx, merchantAccount)
	require.NoError(t, err)
	t.Logf("WeChat saw api_component_token %d, api_query_auth %d, api_authorizer_token %d calls; wxhub's ledgers: %v, %v",
		st.Calls[wechatsim.APIComponentToken], st.Calls[wechatsim.APIQueryAuth], st.Calls[wechatsim.APIAuthorizerToken],
		detail.UpstreamCalls, merchantDetail.UpstreamCalls)
	require.Equal(t, int64(detail.UpstreamCalls["api_component_token"]), st.Calls[wechatsim.APIComponentToken], "every component token call is the worker's")
	require.Equal(t, int64(1), st.Calls[wechatsim.APIQueryAuth], "the code was exchanged once, by wxhub on the event")
	require.Equal(t, int64(merchantDetail.UpstreamCalls["api_authorizer_token"]), st.Calls[wechatsim.APIAuthorizerToken], "every authorizer token call is wxhub's")
}
