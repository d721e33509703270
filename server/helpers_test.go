package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"wxhub/db"
	"wxhub/db/dbtest"
	"wxhub/db/keyring"
	"wxhub/server"
	"wxhub/wechat"
	"wxhub/wechatsim"
	"wxhub/worker"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

const (
	testKeys = "t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	adminKey = "test-bootstrap-admin-key-0123456789"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is one test's deployment: a database, the simulator, and the nodes and workers the
// test starts against them.
type env struct {
	dsn     string
	ring    *keyring.Ring
	store   *db.Store
	sim     *wechatsim.Simulator
	simURL  string
	overlap time.Duration
}

func newEnv(t testing.TB, ttl, overlap time.Duration, simOptions ...func(*wechatsim.Config)) *env {
	t.Helper()
	ring, err := keyring.Parse(testKeys)
	require.NoError(t, err)
	dsn := dbtest.URL(t)
	pool, err := db.Open(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	store := db.NewStore(pool, ring)
	require.NoError(t, server.EnsureBootstrapKey(context.Background(), store, adminKey))
	simCfg := wechatsim.Config{TokenTTL: ttl, Overlap: overlap}
	for _, o := range simOptions {
		o(&simCfg)
	}
	sim := wechatsim.New(simCfg)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return &env{dsn: dsn, ring: ring, store: store, sim: sim, simURL: srv.URL, overlap: overlap}
}

// node is an API node with its own pool and listener, served over real HTTP.
type node struct {
	srv *server.Server
	url string
}

func (e *env) startNode(t testing.TB, bound time.Duration) *node {
	t.Helper()
	return e.startNodeWith(t, server.Config{ListenerURL: e.dsn, StalenessBound: bound, RefreshWait: 5 * time.Second,
		WeChat: wechat.New(e.simURL, nil), Logger: quiet})
}

func (e *env) startNodeWith(t testing.TB, cfg server.Config) *node {
	t.Helper()
	pool, err := db.Open(context.Background(), e.dsn)
	require.NoError(t, err)
	srv := server.New(db.NewStore(pool, e.ring), cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		srv.Run(ctx)
		close(done)
	}()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		cancel()
		<-done
		pool.Close()
	})
	deadline := time.Now().Add(10 * time.Second)
	for !srv.Listener().Connected() {
		require.True(t, time.Now().Before(deadline), "listener did not connect")
		time.Sleep(10 * time.Millisecond)
	}
	return &node{srv: srv, url: hs.URL}
}

func (e *env) startWorker(t testing.TB) {
	t.Helper()
	pool, err := db.Open(context.Background(), e.dsn)
	require.NoError(t, err)
	stop := e.startWorkerOn(t, "w", e.simURL, pool)
	t.Cleanup(func() {
		stop()
		pool.Close()
	})
}

// startWorkerOn starts a worker that calls WeChat at baseURL through pool, which the caller
// owns (and may close under it, as a crash would), with the test's settings changed by
// options; stop cancels it and waits for it to end, and runs at cleanup too.
func (e *env) startWorkerOn(t testing.TB, id, baseURL string, pool *pgxpool.Pool, options ...func(*worker.Config)) (stop func()) {
	t.Helper()
	cfg := worker.Config{
		ID: id, PollInterval: 50 * time.Millisecond, Lease: 5 * time.Second, CallTimeout: 3 * time.Second,
		Overlap: e.overlap, RetryBase: 100 * time.Millisecond, RetryMax: time.Second,
		WeCom:  wechat.New(baseURL+wechatsim.WeComPrefix, nil),
		Logger: quiet, Registerer: prometheus.NewRegistry(),
	}
	for _, o := range options {
		o(&cfg)
	}
	w, err := worker.New(db.NewStore(pool, e.ring), wechat.New(baseURL, nil), cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = w.Run(ctx)
		close(done)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(stop)
	return stop
}

// account creates an account in the simulator and, through the API, in wxhub.
func (e *env) account(t testing.TB, n *node, tenant, appid string, tickets ...string) {
	t.Helper()
	require.NoError(t, e.sim.AddAccount(wechatsim.Account{AppID: appid, Secret: "secret-" + appid}))
	body := map[string]any{"appid": appid, "kind": "official_account", "secret": "secret-" + appid, "tenant": tenant}
	if len(tickets) > 0 {
		body["tickets"] = tickets
	}
	res := n.call(t, adminKey, http.MethodPost, "/v1/accounts", body)
	require.Equal(t, http.StatusCreated, res.status, res.text)
}

func (e *env) tenant(t testing.TB, n *node, name string) {
	t.Helper()
	res := n.call(t, adminKey, http.MethodPost, "/v1/tenants", map[string]any{"name": name})
	require.Equal(t, http.StatusCreated, res.status, res.text)
}

// tenantKey creates a key of role tenant and returns it.
func (e *env) tenantKey(t testing.TB, n *node, tenant string) string {
	t.Helper()
	res := n.call(t, adminKey, http.MethodPost, "/v1/api-keys", map[string]any{"name": tenant + "-app", "role": "tenant", "tenant": tenant})
	require.Equal(t, http.StatusCreated, res.status, res.text)
	return res.json(t)["key"].(string)
}

type response struct {
	status int
	header http.Header
	text   string
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(r.text), &m), r.text)
	return m
}

// call makes one API request; body is JSON-encoded unless it is already []byte.
func (n *node) call(t testing.TB, key, method, path string, body any, headers ...string) response {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		require.NoError(t, err)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, n.url+path, rd)
	require.NoError(t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	text, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return response{status: res.StatusCode, header: res.Header, text: string(text)}
}

// token reads an account's access token through the node.
func (n *node) token(t testing.TB, key, appid string) (string, int64) {
	t.Helper()
	res := n.call(t, key, http.MethodGet, "/v1/accounts/"+appid+"/access-token", nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	m := res.json(t)
	return m["access_token"].(string), int64(m["generation"].(float64))
}

func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func appid(i int) string { return fmt.Sprintf("wx%016d", i) }

func stringsReader(s string) io.Reader { return bytes.NewReader([]byte(s)) }

func simAccount(appid string) wechatsim.Account {
	return wechatsim.Account{AppID: appid, Secret: "secret-" + appid}
}

// pool opens a pool on the test database for statements the test makes itself.
func pool(t testing.TB, e *env) *pgxpool.Pool {
	t.Helper()
	p, err := db.Open(context.Background(), e.dsn)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// claimDue claims the one due credential through store, as a worker of api would.
func claimDue(t testing.TB, store *db.Store, api string, rotates bool) db.Claim {
	t.Helper()
	res, err := store.ClaimDue(context.Background(), db.ClaimRequest{Worker: "t", Max: 1, Lease: time.Minute,
		Plan: func(db.Due) (db.Plan, error) { return db.Plan{API: api, DailyLimit: 100, Rotates: rotates}, nil }})
	require.NoError(t, err)
	require.Len(t, res.Claims, 1)
	return res.Claims[0]
}

// storeToken claims the one due access token and writes value for it, as a worker would:
// valid for an hour and due again in an hour, the value it replaces kept for previousValidFor.
func storeToken(t testing.TB, store *db.Store, api string, rotates bool, value string, previousValidFor time.Duration) {
	t.Helper()
	_, _, err := store.WriteCredential(context.Background(), claimDue(t, store, api, rotates), db.Write{Value: value,
		ExpiresAt: time.Now().Add(time.Hour), RefreshIn: time.Hour, PreviousValidFor: previousValidFor})
	require.NoError(t, err)
}

// forceRefreshAtWeChat forces a new stable token of appid at the simulator, as someone
// outside wxhub would: the stored token dies at once.
func forceRefreshAtWeChat(t testing.TB, e *env, appid string) {
	t.Helper()
	res, err := http.Post(e.simURL+"/cgi-bin/stable_token", "application/json",
		stringsReader(fmt.Sprintf(`{"grant_type":"client_credential","appid":%q,"secret":%q,"force_refresh":true}`, appid, "secret-"+appid)))
	require.NoError(t, err)
	res.Body.Close()
}
