package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	"wxhub/db"
	"wxhub/server"
	"wxhub/wechat"
	"wxhub/wechatsim"
	"wxhub/worker"
)

// syncBuffer is a log sink shared by goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestNoSecretLeaks runs a full flow (create an account, refresh, read tokens and tickets,
// use keys, fail with a wrong secret) while capturing every log line, both metrics pages,
// every API response that is not a credential endpoint's answer, and a pg_dump of the
// database, and checks that no AppSecret, token, ticket or API key appears in any of them.
func TestNoSecretLeaks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20*time.Second, 5*time.Second)
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	nodeRegistry := prometheus.NewRegistry()
	n := e.startNodeWith(t, server.Config{ListenerURL: e.dsn, StalenessBound: 30 * time.Second, RefreshWait: 5 * time.Second,
		Logger: logger, Registry: nodeRegistry})
	workerRegistry := prometheus.NewRegistry()
	pool, err := db.Open(context.Background(), e.dsn)
	require.NoError(t, err)
	w, err := worker.New(db.NewStore(pool, e.ring), wechat.New(e.simURL, nil), worker.Config{ID: "w", PollInterval: 50 * time.Millisecond, CallTimeout: 2 * time.Second,
		Overlap: e.overlap, RetryBase: 100 * time.Millisecond, RetryMax: time.Second, ConfigRetry: time.Second,
		Logger: logger, Registerer: workerRegistry})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		_ = w.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		pool.Close()
	})

	var responses strings.Builder
	record := func(res response) response {
		responses.WriteString(res.text)
		return res
	}
	secrets := []string{adminKey}
	e.tenant(t, n, "acme")
	const good, bad = "wx0000000000000001", "wx0000000000000002"
	for _, a := range []string{good, bad} {
		secret := "app-secret-of-" + a
		secrets = append(secrets, secret)
		require.NoError(t, e.sim.AddAccount(wechatsim.Account{AppID: a, Secret: secret}))
		record(n.call(t, adminKey, http.MethodPost, "/v1/accounts",
			map[string]any{"appid": a, "kind": "official_account", "secret": secret, "tenant": "acme", "token_mode": "classic", "tickets": []string{"jsapi"}}))
	}
	// The bad account's secret is changed at WeChat: every refresh fails with 40125.
	require.NoError(t, e.sim.AddAccount(wechatsim.Account{AppID: bad, Secret: "changed-at-wechat-secret"}))
	secrets = append(secrets, "changed-at-wechat-secret")
	res := n.call(t, adminKey, http.MethodPost, "/v1/api-keys", map[string]any{"name": "app", "role": "tenant", "tenant": "acme"})
	key := res.json(t)["key"].(string)
	secrets = append(secrets, key)
	record(n.call(t, adminKey, http.MethodGet, "/v1/api-keys", nil))

	tok, _ := n.token(t, key, good)
	secrets = append(secrets, tok)
	res = n.call(t, key, http.MethodGet, "/v1/accounts/"+good+"/tickets/jsapi", nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	secrets = append(secrets, res.json(t)["ticket"].(string))
	// A refresh reported by an app server, then the new token.
	res = n.call(t, key, http.MethodPost, "/v1/accounts/"+good+"/access-token/invalidate", map[string]any{"access_token": tok, "errcode": 40001})
	require.Equal(t, http.StatusOK, res.status, res.text)
	secrets = append(secrets, res.json(t)["access_token"].(string))

	waitUntil(t, 10*time.Second, "the bad account to fail", func() bool {
		return strings.Contains(record(n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+bad, nil)).text, "40125")
	})
	for _, c := range []struct{ key, method, path string }{
		{"", "GET", "/v1/accounts/" + good + "/access-token"},
		{key + "x", "GET", "/v1/accounts/" + good + "/access-token"},
		{key, "GET", "/v1/accounts/" + bad + "/access-token"},
		{key, "DELETE", "/v1/accounts/" + good},
		{key, "GET", "/v1/accounts/" + good},
		{adminKey, "GET", "/v1/accounts"},
		{adminKey, "GET", "/v1/audit-log"},
	} {
		record(n.call(t, c.key, c.method, c.path, nil))
	}
	// The gateway: tokens by AppSecret and by key, a wrong secret, a forwarded call, and one
	// forwarded to a WeChat that cannot be reached (its error names the URL, with the token).
	gw, err := n.srv.Gateway(server.GatewayConfig{Upstream: e.simURL})
	require.NoError(t, err)
	gwSrv := httptest.NewServer(gw.Handler())
	t.Cleanup(gwSrv.Close)
	n2 := e.startNodeWith(t, server.Config{ListenerURL: e.dsn, StalenessBound: 30 * time.Second, RefreshWait: 5 * time.Second, Logger: logger})
	down, err := n2.srv.Gateway(server.GatewayConfig{Upstream: "http://127.0.0.1:1"})
	require.NoError(t, err)
	downSrv := httptest.NewServer(down.Handler())
	t.Cleanup(downSrv.Close)
	for _, base := range []string{gwSrv.URL, downSrv.URL} {
		gwTok := wx(t, http.MethodGet, base, tokenQuery(good, "app-secret-of-"+good), "")["access_token"].(string)
		secrets = append(secrets, gwTok)
		require.Equal(t, gwTok, wx(t, http.MethodGet, base, tokenQuery(good, key), "")["access_token"])
		for _, path := range []string{tokenQuery(good, "app-secret-of-"+bad), tokenQuery(bad, key+"x"), "/cgi-bin/get_api_domain_ip?access_token=" + gwTok} {
			b, err := json.Marshal(wx(t, http.MethodGet, base, path, ""))
			require.NoError(t, err)
			responses.Write(b)
		}
	}
	require.Contains(t, responses.String(), `"errcode":-1`, "the unreachable WeChat was answered")
	metricsPage := n.call(t, "", http.MethodGet, "/metrics", nil).text + n2.call(t, "", http.MethodGet, "/metrics", nil).text
	var workerMetrics bytes.Buffer
	families, err := workerRegistry.Gather()
	require.NoError(t, err)
	for _, f := range families {
		_, err := expfmt.MetricFamilyToText(&workerMetrics, f)
		require.NoError(t, err)
	}
	dump := pgDump(t, e.dsn)

	sinks := map[string]string{"logs": logs.String(), "node metrics": metricsPage, "worker metrics": workerMetrics.String(),
		"API responses": responses.String(), "pg_dump": dump}
	for name, text := range sinks {
		require.NotEmpty(t, text, name)
		for _, s := range secrets {
			require.NotContains(t, text, s, "%s contains a secret", name)
		}
	}
	require.Contains(t, logs.String(), "40125", "the wrong secret's failure was logged")
	require.Contains(t, logs.String(), "WeChat unreachable", "the gateway's failed call was logged")
	require.Contains(t, dump, "COPY public.credentials", "the dump has the credentials table")
}

// pgDump dumps the database with the server's pg_dump.
func pgDump(t *testing.T, dsn string) string {
	t.Helper()
	bin, err := exec.LookPath("pg_dump")
	if err != nil {
		out, err := exec.Command("pg_config", "--bindir").Output()
		require.NoError(t, err, "pg_dump not found")
		bin = filepath.Join(strings.TrimSpace(string(out)), "pg_dump")
	}
	out, err := exec.Command(bin, "--no-owner", dsn).Output()
	require.NoError(t, err)
	return string(out)
}
