package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/db"
)

// TestThreeNodesFollowOneWorker runs three API nodes and one worker against one database:
// after a refresh every node serves the new generation, and a node whose listener is killed
// never serves an old generation longer than the staleness bound.
func TestThreeNodesFollowOneWorker(t *testing.T) {
	t.Parallel()
	const bound = 3 * time.Second
	e := newEnv(t, time.Hour, 5*time.Minute)
	nodes := []*node{e.startNode(t, bound), e.startNode(t, bound), e.startNode(t, bound)}
	e.startWorker(t)
	e.tenant(t, nodes[0], "acme")
	res := nodes[0].call(t, adminKey, http.MethodPost, "/v1/accounts",
		map[string]any{"appid": appid(1), "kind": "official_account", "secret": "secret-" + appid(1), "tenant": "acme", "token_mode": "classic"})
	require.NoError(t, e.sim.AddAccount(simAccount(appid(1))))
	require.Equal(t, http.StatusCreated, res.status, res.text)
	for _, n := range nodes {
		_, gen := n.token(t, adminKey, appid(1))
		require.Equal(t, int64(1), gen)
	}
	acct, err := e.store.GetAccount(context.Background(), appid(1))
	require.NoError(t, err)

	// refresh makes the worker fetch a new token and returns when it is stored.
	refresh := func(gen int64) time.Time {
		_, err := e.store.ReportDead(context.Background(), acct.ID, "access_token", gen, 0)
		require.NoError(t, err)
		var stored time.Time
		waitUntil(t, 5*time.Second, "the refresh", func() bool {
			c, err := e.store.GetCredential(context.Background(), acct.ID, "access_token")
			stored = time.Now()
			return err == nil && c.Generation == gen+1
		})
		return stored
	}
	stored := refresh(1)
	for i, n := range nodes {
		waitUntil(t, 2*time.Second, "generation 2 on every node", func() bool {
			_, gen := n.token(t, adminKey, appid(1))
			return gen == 2
		})
		t.Logf("node %d serves generation 2 %s after it was stored", i, time.Since(stored).Round(time.Millisecond))
	}

	// Kill node 2's listener connection, then refresh while it reconnects.
	victim := nodes[2]
	pid := victim.srv.Listener().BackendPID()
	require.NotZero(t, pid)
	_, err = pool(t, e).Exec(context.Background(), "SELECT pg_terminate_backend($1)", pid)
	require.NoError(t, err)
	killed := time.Now()
	stored = refresh(2)
	for {
		_, gen := victim.token(t, adminKey, appid(1))
		if gen == 3 {
			t.Logf("after its listener was killed, node 2 serves generation 3 %s after it was stored (%s after the kill)",
				time.Since(stored).Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
			break
		}
		require.Less(t, time.Since(stored), bound, "node 2 served generation %d longer than the staleness bound", gen)
		time.Sleep(5 * time.Millisecond)
	}
	require.NotEqual(t, pid, victim.srv.Listener().BackendPID(), "the listener reconnected")
}

func TestValidationErrorsAreProblemsAndWriteNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second)
	e.tenant(t, n, "acme")
	e.account(t, n, "acme", appid(1))
	big := make([]byte, 70<<10)
	for i := range big {
		big[i] = 'a'
	}
	tests := []struct {
		name, method, path string
		body               any
		headers            []string
		status             int
	}{
		{"malformed appid", "GET", "/v1/accounts/wx%20bad!/access-token", nil, nil, 422},
		{"appid too long", "GET", "/v1/accounts/" + string(big[:65]) + "/access-token", nil, nil, 422},
		{"unknown ticket type", "GET", "/v1/accounts/" + appid(1) + "/tickets/lottery", nil, nil, 422},
		{"unknown account kind", "POST", "/v1/accounts", map[string]any{"appid": "wxnew", "kind": "bank", "secret": "s", "tenant": "acme"}, nil, 422},
		{"tickets for a mini program", "POST", "/v1/accounts", map[string]any{"appid": "wxnew", "kind": "mini_program", "secret": "s", "tenant": "acme", "tickets": []string{"jsapi"}}, nil, 422},
		{"unknown field", "POST", "/v1/accounts", map[string]any{"appid": "wxnew", "kind": "mini_program", "secret": "s", "tenant": "acme", "status": "active"}, nil, 422},
		{"oversized body", "POST", "/v1/accounts", append([]byte(`{"appid":"wxnew","secret":"`), append(big, []byte(`"}`)...)...), nil, 413},
		{"wrong content type", "POST", "/v1/accounts", []byte(`appid=wxnew`), []string{"Content-Type", "application/x-www-form-urlencoded"}, 415},
		{"not JSON", "POST", "/v1/accounts", []byte(`{"appid":`), nil, 400},
		{"missing If-Match", "PUT", "/v1/accounts/" + appid(1) + "/settings", map[string]any{"settings": map[string]any{}}, nil, 428},
		{"unknown path", "GET", "/v2/accounts", nil, nil, 404},
		{"wrong method", "DELETE", "/v1/tenants", nil, nil, 405},
		{"bad If-Match", "PUT", "/v1/accounts/" + appid(1) + "/settings", map[string]any{"settings": map[string]any{}}, []string{"If-Match", "W/abc"}, 400},
		{"min_ttl too large", "GET", "/v1/accounts/" + appid(1) + "/access-token?min_ttl=99999", nil, nil, 422},
		{"relative JS-SDK URL", "POST", "/v1/accounts/" + appid(1) + "/jssdk-config", map[string]any{"url": "/page"}, nil, 422},
		{"bad cursor", "GET", "/v1/accounts?cursor=abc", nil, nil, 422},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := n.call(t, adminKey, tt.method, tt.path, tt.body, tt.headers...)
			require.Equal(t, tt.status, res.status, res.text)
			require.Contains(t, res.header.Get("Content-Type"), "application/problem+json", res.text)
			require.Contains(t, res.json(t)["type"], "urn:wxhub:problem:")
		})
	}
	accounts, err := e.store.ListAccounts(context.Background(), db.AccountFilter{Limit: 10})
	require.NoError(t, err)
	require.Len(t, accounts, 1, "nothing was written")
	a, err := e.store.GetAccount(context.Background(), appid(1))
	require.NoError(t, err)
	require.Equal(t, int64(1), a.Settings.Version)
}

func TestTheFastReadAnswersAsTheOperationDoes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second)
	e.startWorker(t)
	e.tenant(t, n, "acme")
	e.account(t, n, "acme", appid(1))
	e.account(t, n, "acme", appid(2))
	res := n.call(t, adminKey, http.MethodPatch, "/v1/accounts/"+appid(2), map[string]any{"token_mode": "classic"})
	require.Equal(t, http.StatusOK, res.status, res.text)
	tenantKey := e.tenantKey(t, n, "acme")
	for _, a := range []string{appid(1), appid(2)} {
		for _, key := range []string{adminKey, tenantKey} {
			waitUntil(t, 10*time.Second, "a token", func() bool {
				return n.call(t, key, http.MethodGet, "/v1/accounts/"+a+"/access-token", nil).status == http.StatusOK
			})
			// A query, even an empty min_ttl, sends the request to the huma operation.
			before := n.srv.FastReads()
			fast := n.call(t, key, http.MethodGet, "/v1/accounts/"+a+"/access-token", nil)
			full := n.call(t, key, http.MethodGet, "/v1/accounts/"+a+"/access-token?min_ttl=0", nil)
			require.Equal(t, before+1, n.srv.FastReads(), "the first answered by the fast path, the second not")
			require.Equal(t, full.status, fast.status)
			for _, h := range []http.Header{fast.header, full.header} {
				h.Del("Date")
				h.Del("Content-Length")
			}
			require.Equal(t, full.header, fast.header)
			f, g := fast.json(t), full.json(t)
			require.Len(t, f, len(g), "the same fields: %s and %s", fast.text, full.text)
			require.True(t, strings.HasSuffix(fast.text, "}\n"), "a newline after the document, as huma writes it")
			require.Equal(t, g["access_token"], f["access_token"])
			require.Equal(t, g["generation"], f["generation"])
			require.InDelta(t, g["expires_in"], f["expires_in"], 1)
			fe, err := time.Parse(time.RFC3339Nano, f["expires_at"].(string))
			require.NoError(t, err)
			ge, err := time.Parse(time.RFC3339Nano, g["expires_at"].(string))
			require.NoError(t, err)
			require.WithinDuration(t, ge, fe, time.Second)
		}
	}
	// What the fast path declines, the operation answers: another tenant's key, a bad key.
	e.tenant(t, n, "other")
	other := e.tenantKey(t, n, "other")
	before := n.srv.FastReads()
	require.Equal(t, http.StatusNotFound, n.call(t, other, http.MethodGet, "/v1/accounts/"+appid(1)+"/access-token", nil).status)
	require.Equal(t, http.StatusUnauthorized, n.call(t, "wxh_"+strings.Repeat("0", 72), http.MethodGet, "/v1/accounts/"+appid(1)+"/access-token", nil).status)
	require.Equal(t, http.StatusUnprocessableEntity, n.call(t, adminKey, http.MethodGet, "/v1/accounts/wx%20bad/access-token", nil).status)
	require.Equal(t, before, n.srv.FastReads())
}

func TestEveryOperationDocumentsRetryAfterOn429And503(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second)
	res := n.call(t, "", http.MethodGet, "/openapi.json", nil)
	require.Equal(t, http.StatusOK, res.status)
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
			Responses   map[string]struct {
				Headers map[string]any `json:"headers"`
				Content map[string]any `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.text), &doc))
	ops := 0
	for path, methods := range doc.Paths {
		for method, op := range methods {
			ops++
			for _, status := range []string{"429", "503"} {
				r, ok := op.Responses[status]
				require.True(t, ok, "%s %s (%s) does not document %s", method, path, op.OperationID, status)
				require.Contains(t, r.Headers, "Retry-After", "%s %s answers %s", method, path, status)
				require.Contains(t, r.Content, "application/problem+json")
			}
		}
	}
	require.Equal(t, len(authzCases), ops, "every operation was checked")
}
