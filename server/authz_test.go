package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/server"
)

// authzCase is one operation of the API and how each kind of caller must be answered.
type authzCase struct {
	method, path string // {appid} is replaced by the target account, {id} by a fresh key id
	body         any
	headers      []string
	admin        int // status for an admin key
	own          int // a tenant key, on its own tenant's account
	other        int // a tenant key, on another tenant's account
	missing      int // a tenant key, on an appid no account has
	// public operations take no key: every caller, with or without one, gets admin's answer.
	public bool
}

// authzCases has a row for every operation in the OpenAPI document; a new operation without a
// row fails TestEveryOperationIsAuthorized.
var authzCases = map[string]authzCase{
	"get-access-token":               {method: "GET", path: "/v1/accounts/{appid}/access-token", admin: 200, own: 200, other: 404, missing: 404},
	"get-ticket":                     {method: "GET", path: "/v1/accounts/{appid}/tickets/jsapi", admin: 200, own: 200, other: 404, missing: 404},
	"invalidate-access-token":        {method: "POST", path: "/v1/accounts/{appid}/access-token/invalidate", body: map[string]any{"access_token": "not-the-current-one"}, admin: 200, own: 200, other: 404, missing: 404},
	"create-jssdk-config":            {method: "POST", path: "/v1/accounts/{appid}/jssdk-config", body: map[string]any{"url": "https://example.com/"}, admin: 200, own: 200, other: 404, missing: 404},
	"create-account":                 {method: "POST", path: "/v1/accounts", body: map[string]any{"appid": "{appid}x", "kind": "mini_program", "secret": "s", "tenant": "own"}, admin: 201, own: 403, other: 403, missing: 403},
	"list-accounts":                  {method: "GET", path: "/v1/accounts", admin: 200, own: 200, other: 200, missing: 200},
	"get-account":                    {method: "GET", path: "/v1/accounts/{appid}", admin: 200, own: 200, other: 404, missing: 404},
	"get-account-context":            {method: "GET", path: "/v1/accounts/{appid}/context", admin: 200, own: 200, other: 404, missing: 404},
	"update-account":                 {method: "PATCH", path: "/v1/accounts/{appid}", body: map[string]any{"daily_limits": map[string]int{"stable_token": 1000}}, admin: 200, own: 403, other: 403, missing: 403},
	"disable-account":                {method: "POST", path: "/v1/accounts/{appid}/disable", admin: 200, own: 403, other: 403, missing: 403},
	"enable-account":                 {method: "POST", path: "/v1/accounts/{appid}/enable", admin: 200, own: 403, other: 403, missing: 403},
	"delete-account":                 {method: "DELETE", path: "/v1/accounts/{appid}", admin: 204, own: 403, other: 403, missing: 403},
	"get-settings":                   {method: "GET", path: "/v1/accounts/{appid}/settings", admin: 200, own: 200, other: 404, missing: 404},
	"put-settings":                   {method: "PUT", path: "/v1/accounts/{appid}/settings", body: map[string]any{"settings": map[string]any{"a": 1}}, headers: []string{"If-Match", `"1"`}, admin: 200, own: 200, other: 404, missing: 404},
	"create-api-key":                 {method: "POST", path: "/v1/api-keys", body: map[string]any{"name": "k", "role": "admin"}, admin: 201, own: 403, other: 403, missing: 403},
	"list-api-keys":                  {method: "GET", path: "/v1/api-keys", admin: 200, own: 403, other: 403, missing: 403},
	"revoke-api-key":                 {method: "DELETE", path: "/v1/api-keys/{id}", admin: 204, own: 403, other: 403, missing: 403},
	"create-tenant":                  {method: "POST", path: "/v1/tenants", body: map[string]any{"name": "{appid}"}, admin: 201, own: 403, other: 403, missing: 403},
	"list-tenants":                   {method: "GET", path: "/v1/tenants", admin: 200, own: 403, other: 403, missing: 403},
	"list-audit-log":                 {method: "GET", path: "/v1/audit-log", admin: 200, own: 403, other: 403, missing: 403},
	"get-component-authorize-url":    {method: "GET", path: "/v1/components/{appid}/authorize-url?redirect_uri=https://example.com/", admin: 404, own: 404, other: 404, missing: 404},
	"create-component-authorization": {method: "POST", path: "/v1/components/{appid}/authorizations", body: map[string]any{"authorization_code": "c"}, admin: 404, own: 404, other: 404, missing: 404},
	// The target is not a component, whoever asks: the push's signature is its credential.
	"receive-component-event": {method: "POST", path: "/v1/components/{appid}/events?timestamp=1&nonce=n&msg_signature=" + strings.Repeat("0", 40), body: []byte("<xml></xml>"), headers: []string{"Content-Type", "text/xml"}, public: true, admin: 404, own: 404, other: 404, missing: 404},
}

func TestEveryOperationIsAuthorized(t *testing.T) {
	t.Parallel()
	doc, err := server.OpenAPI()
	require.NoError(t, err)
	var ops []string
	for _, line := range strings.Split(string(doc), "\n") {
		if id, ok := strings.CutPrefix(strings.TrimSpace(line), "operationId: "); ok {
			ops = append(ops, id)
		}
	}
	require.NotEmpty(t, ops)
	for _, id := range ops {
		require.Contains(t, authzCases, id, "operation %s has no row in authzCases", id)
	}
	require.Len(t, authzCases, len(ops), "authzCases has rows for operations that no longer exist")

	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second)
	e.startWorker(t)
	e.tenant(t, n, "own")
	e.tenant(t, n, "other")
	ownKey := e.tenantKey(t, n, "own")
	revoked := e.tenantKey(t, n, "own")
	res := n.call(t, adminKey, http.MethodPost, "/v1/api-keys",
		map[string]any{"name": "short-lived", "role": "tenant", "tenant": "own", "expires_at": time.Now().Add(time.Second).Format(time.RFC3339Nano)})
	require.Equal(t, http.StatusCreated, res.status, res.text)
	expired := res.json(t)["key"].(string)
	require.Equal(t, http.StatusOK, n.call(t, expired, http.MethodGet, "/v1/accounts", nil).status, "usable before its expiry")
	time.Sleep(1100 * time.Millisecond)
	keys := n.call(t, adminKey, http.MethodGet, "/v1/api-keys", nil)
	var listed []map[string]any
	require.NoError(t, json.Unmarshal([]byte(keys.text), &listed))
	require.Equal(t, http.StatusNoContent, n.call(t, adminKey, http.MethodDelete, "/v1/api-keys/"+jsonID(listed[len(listed)-2]), nil).status)

	i := 0
	for _, id := range ops {
		c := authzCases[id]
		// Each caller works on accounts of its own, so a call that succeeds cannot change
		// what the next caller sees.
		target := func(tenant string) string {
			i++
			a := appid(1000 + i)
			e.account(t, n, tenant, a, "jsapi")
			n.token(t, adminKey, a)
			return a
		}
		request := func(key, account string) int {
			path := strings.ReplaceAll(c.path, "{appid}", account)
			if strings.Contains(path, "{id}") {
				res := n.call(t, adminKey, http.MethodPost, "/v1/api-keys", map[string]any{"name": "victim", "role": "admin"})
				path = strings.ReplaceAll(path, "{id}", jsonID(res.json(t)))
			}
			body := c.body
			if b, err := json.Marshal(body); err == nil && body != nil && !isRaw(body) {
				var m any
				require.NoError(t, json.Unmarshal([]byte(strings.ReplaceAll(string(b), "{appid}", strings.ToLower(account))), &m))
				body = m
			}
			before := fingerprint(t, e)
			status := n.call(t, key, c.method, path, body, c.headers...).status
			if status >= 400 {
				require.Equal(t, before, fingerprint(t, e), "%s answered %d and changed what the API can change", id, status)
			}
			return status
		}
		t.Run(id, func(t *testing.T) {
			refused := http.StatusUnauthorized
			if c.public {
				refused = c.admin
			}
			require.Equal(t, refused, request("", target("own")), "no key")
			require.Equal(t, refused, request(revoked, target("own")), "revoked key")
			require.Equal(t, refused, request(expired, target("own")), "expired key")
			require.Equal(t, refused, request("wxh_"+strings.Repeat("0", 72), target("own")), "key with a bad checksum")
			require.Equal(t, c.admin, request(adminKey, target("own")), "admin key")
			require.Equal(t, c.own, request(ownKey, target("own")), "tenant key, own account")
			require.Equal(t, c.other, request(ownKey, target("other")), "tenant key, other tenant's account")
			require.Equal(t, c.missing, request(ownKey, "wxmissing"+strconv.Itoa(i)), "tenant key, missing appid")
		})
	}
}

// isRaw tells a body sent as it is (bytes) from one to encode as JSON.
func isRaw(body any) bool {
	_, ok := body.([]byte)
	return ok
}

// fingerprint sums up what API calls can write (not what the worker writes, nor the
// last use of a key, which any authenticated call updates): a refused call must leave it as
// it was.
func fingerprint(t *testing.T, e *env) string {
	t.Helper()
	var out string
	err := pool(t, e).QueryRow(context.Background(), `SELECT concat_ws(' ',
		(SELECT count(*) FROM tenants),
		(SELECT count(*) || '/' || count(revoked_at) FROM api_keys),
		(SELECT count(*) || '/' || coalesce(max(updated_at)::text, '') || '/' || coalesce(sum(settings_version), 0) || '/' ||
			string_agg(status, ',' ORDER BY id) FROM accounts),
		(SELECT coalesce(max(last_request_at)::text, '') FROM credentials),
		(SELECT count(*) FROM audit_log))`).Scan(&out)
	require.NoError(t, err)
	return out
}

func jsonID(m map[string]any) string {
	b, _ := json.Marshal(m["id"])
	return string(b)
}

func TestTenantKeySeesOnlyItsOwnAccounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second)
	e.tenant(t, n, "own")
	e.tenant(t, n, "other")
	e.account(t, n, "own", appid(1))
	e.account(t, n, "other", appid(2))
	key := e.tenantKey(t, n, "own")
	res := n.call(t, key, http.MethodGet, "/v1/accounts", nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	require.Contains(t, res.text, appid(1))
	require.NotContains(t, res.text, appid(2))
	res = n.call(t, key, http.MethodGet, "/v1/accounts?tenant=other", nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	require.NotContains(t, res.text, appid(2), "a tenant key's filter cannot widen its scope")
}

func TestRevokedKeyIsRefusedOnEveryNode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	nodes := []*node{e.startNode(t, 30*time.Second), e.startNode(t, 30*time.Second), e.startNode(t, 30*time.Second)}
	e.tenant(t, nodes[0], "own")
	key := e.tenantKey(t, nodes[0], "own")
	for _, n := range nodes {
		require.Equal(t, http.StatusOK, n.call(t, key, http.MethodGet, "/v1/accounts", nil).status)
	}
	res := nodes[0].call(t, adminKey, http.MethodGet, "/v1/api-keys", nil)
	var listed []map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.text), &listed))
	require.Equal(t, http.StatusNoContent, nodes[0].call(t, adminKey, http.MethodDelete, "/v1/api-keys/"+jsonID(listed[len(listed)-1]), nil).status)
	for _, n := range nodes {
		waitUntil(t, 3*time.Second, "revocation on every node", func() bool {
			return n.call(t, key, http.MethodGet, "/v1/accounts", nil).status == http.StatusUnauthorized
		})
	}
}

func TestAMissingAndAForeignAppidCostTheSame(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second)
	e.startWorker(t)
	e.tenant(t, n, "own")
	e.tenant(t, n, "other")
	e.account(t, n, "other", appid(2))
	n.token(t, adminKey, appid(2)) // cached on the node
	key := e.tenantKey(t, n, "own")
	require.Equal(t, http.StatusOK, n.call(t, key, http.MethodGet, "/v1/accounts", nil).status, "the key is cached")

	reads := func(appid string) int64 {
		before := n.srv.Cache().Loads()
		res := n.call(t, key, http.MethodGet, "/v1/accounts/"+appid+"/access-token", nil)
		require.Equal(t, http.StatusNotFound, res.status, res.text)
		require.Equal(t, "no such account or credential", res.json(t)["detail"])
		return n.srv.Cache().Loads() - before
	}
	for range 3 {
		require.Equal(t, int64(1), reads(appid(2)), "another tenant's appid: one database read, though it is cached")
		require.Equal(t, int64(1), reads("wxnosuchaccount"), "a missing appid: one database read")
	}
}
