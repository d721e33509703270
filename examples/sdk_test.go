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

// startWxhub runs what a deployment runs, in process: PostgreSQL (the test harness's), the
// simulator in WeChat's place, a worker, and an API node with its gateway. It returns the
// store, the simulator, its URL and the gateway's URL.
func startWxhub(t *testing.T) (*db.Store, *wechatsim.Simulator, string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ring, err := keyring.Parse(testKeys)
	require.NoError(t, err)
	dsn := dbtest.URL(t)
	pool, err := db.Open(ctx, dsn)
	require.NoError(t, err)
	store := db.NewStore(pool, ring)

	sim := wechatsim.New(wechatsim.Config{})
	simSrv := httptest.NewServer(sim)
	w, err := worker.New(store, wxclient.New(simSrv.URL, nil), worker.Config{ID: "w", PollInterval: 50 * time.Millisecond, Logger: quiet})
	require.NoError(t, err)
	node := server.New(store, server.Config{ListenerURL: dsn, Logger: quiet})
	gw, err := node.Gateway(server.GatewayConfig{Upstream: simSrv.URL})
	require.NoError(t, err)
	gwSrv := httptest.NewServer(gw.Handler())

	var wg sync.WaitGroup
	wg.Go(func() { _ = w.Run(ctx) })
	wg.Go(func() { node.Run(ctx) })
	t.Cleanup(func() {
		gwSrv.Close()
		cancel()
		wg.Wait()
		simSrv.Close()
		pool.Close()
	})
	return store, sim, simSrv.URL, gwSrv.URL
}

// TestUnmodifiedSDKTakesItsTokenFromTheGateway: silenceper/wechat, with only its HTTP client
// pointed at the gateway, fetches an official account's token, calls a WeChat API and signs a
// JS-SDK page; the simulator (WeChat) never sees a token call from the app: every token and
// ticket call it saw is one wxhub's worker counted in its quota ledger.
func TestUnmodifiedSDKTakesItsTokenFromTheGateway(t *testing.T) {
	store, sim, simURL, gwURL := startWxhub(t)
	simClient := &wechatsim.Client{BaseURL: simURL}
	ctx := context.Background()
	require.NoError(t, sim.AddAccount(wechatsim.Account{AppID: appID, Secret: appSecret}))
	_, err := store.CreateTenant(ctx, "shop")
	require.NoError(t, err)
	account, err := store.CreateAccount(ctx, db.NewAccount{Tenant: "shop", AppID: appID, Kind: "official_account",
		Secret: appSecret, Tickets: []string{"jsapi"}})
	require.NoError(t, err)

	gateway, err := url.Parse(gwURL)
	require.NoError(t, err)
	rewrite := &toGateway{gateway: gateway, hosts: map[string]int{}}
	wc := wechat.NewWechat()
	wc.SetHTTPClient(&http.Client{Transport: rewrite, Timeout: 30 * time.Second})

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
