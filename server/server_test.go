package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/db"
	"wxhub/db/keyring"
	"wxhub/server"
	"wxhub/wechatsim"
)

func TestJSSDKSignatureMatchesWeChatTestVector(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, url string }{
		{"as given", "http://mp.weixin.qq.com?params=value"},
		{"fragment dropped", "http://mp.weixin.qq.com?params=value#section"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := server.JSSDKSignature("sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg",
				"Wm3WZYTPz0wzccnW", 1414587457, tt.url)
			require.Equal(t, "0f9de62fce790f9a083d5c99e95740ceb90c27ed", got)
		})
	}
}

func TestAccountLifecycleThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second)
	e.startWorker(t)
	e.tenant(t, n, "acme")
	e.account(t, n, "acme", appid(1), "jsapi")

	// The first request waits for the worker's first fetch instead of failing.
	tok, gen := n.token(t, adminKey, appid(1))
	require.NotEmpty(t, tok)
	require.Equal(t, int64(1), gen)
	code, err := (&wechatsim.Client{BaseURL: e.simURL}).Use(context.Background(), tok)
	require.NoError(t, err)
	require.Zero(t, code)

	res := n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+appid(1)+"/tickets/jsapi", nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	ticket := res.json(t)["ticket"].(string)
	res = n.call(t, adminKey, http.MethodPost, "/v1/accounts/"+appid(1)+"/jssdk-config", map[string]any{"url": "https://example.com/p?a=1#top"})
	require.Equal(t, http.StatusOK, res.status, res.text)
	cfg := res.json(t)
	require.Equal(t, appid(1), cfg["appId"])
	require.Equal(t, server.JSSDKSignature(ticket, cfg["nonceStr"].(string), int64(cfg["timestamp"].(float64)), "https://example.com/p?a=1"), cfg["signature"])

	res = n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+appid(1), nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	detail := res.json(t)
	require.Equal(t, "active", detail["status"])
	require.Equal(t, float64(1), detail["upstream_calls_today"].(map[string]any)["stable_token"])
	require.NotContains(t, res.text, "secret-"+appid(1))
	require.NotContains(t, res.text, tok)

	// Base info is a document app servers own.
	res = n.call(t, adminKey, http.MethodPatch, "/v1/accounts/"+appid(1), map[string]any{"base_info": map[string]any{"nick_name": "Demo"}})
	require.Equal(t, http.StatusOK, res.status, res.text)
	require.Equal(t, "Demo", res.json(t)["base_info"].(map[string]any)["nick_name"])

	// Settings with optimistic concurrency.
	res = n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+appid(1)+"/settings", nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	etag := res.header.Get("ETag")
	require.Equal(t, `"1"`, etag)
	res = n.call(t, adminKey, http.MethodPut, "/v1/accounts/"+appid(1)+"/settings", map[string]any{"settings": map[string]any{"theme": "dark"}}, "If-Match", etag)
	require.Equal(t, http.StatusOK, res.status, res.text)
	require.Equal(t, `"2"`, res.header.Get("ETag"))
	res = n.call(t, adminKey, http.MethodPut, "/v1/accounts/"+appid(1)+"/settings", map[string]any{"settings": map[string]any{"theme": "light"}}, "If-Match", etag)
	require.Equal(t, http.StatusPreconditionFailed, res.status, res.text)
	require.Equal(t, "urn:wxhub:problem:stale-version", res.json(t)["type"])

	// Disabled accounts keep serving their current token; deleting removes it.
	res = n.call(t, adminKey, http.MethodPost, "/v1/accounts/"+appid(1)+"/disable", nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	require.Equal(t, "disabled", res.json(t)["status"])
	res = n.call(t, adminKey, http.MethodPatch, "/v1/accounts/"+appid(1), map[string]any{"secret": "rotated-secret-value"})
	require.Equal(t, http.StatusOK, res.status, res.text)
	res = n.call(t, adminKey, http.MethodDelete, "/v1/accounts/"+appid(1), nil)
	require.Equal(t, http.StatusNoContent, res.status, res.text)

	// Every change is in the audit log, with the acting key, and no secret.
	res = n.call(t, adminKey, http.MethodGet, "/v1/audit-log?target="+appid(1), nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	var actions []string
	for _, item := range res.json(t)["items"].([]any) {
		e := item.(map[string]any)
		actions = append(actions, e["action"].(string)+":"+e["outcome"].(string))
		require.NotNil(t, e["actor_key_id"])
	}
	require.Equal(t, []string{"account.delete:success", "account.update:success", "account.disable:success",
		"settings.update:failure", "settings.update:success", "account.update:success", "account.create:success"}, actions)
	require.NotContains(t, res.text, "rotated-secret-value")
	require.NotContains(t, res.text, "secret-"+appid(1))
	waitUntil(t, 5*time.Second, "the deletion to reach the cache", func() bool {
		return n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+appid(1)+"/access-token", nil).status == http.StatusNotFound
	})
}

func TestConcurrentMissesReadTheDatabaseOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	first := e.startNode(t, 30*time.Second)
	e.startWorker(t)
	e.tenant(t, first, "acme")
	e.account(t, first, "acme", appid(1))
	first.token(t, adminKey, appid(1)) // fetched and stored

	fresh := e.startNode(t, 30*time.Second)
	fresh.call(t, adminKey, http.MethodGet, "/v1/tenants", nil) // the key is now cached
	before := fresh.srv.Cache().Loads()
	var wg sync.WaitGroup
	var ok atomic.Int64
	start := make(chan struct{})
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if fresh.call(t, adminKey, http.MethodGet, "/v1/accounts/"+appid(1)+"/access-token", nil).status == http.StatusOK {
				ok.Add(1)
			}
		}()
	}
	close(start)
	wg.Wait()
	require.Equal(t, int64(200), ok.Load())
	require.Equal(t, int64(1), fresh.srv.Cache().Loads()-before, "200 concurrent misses, one database read")
}

func TestIfMatchFollowsRFC9110(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second)
	e.tenant(t, n, "acme")
	e.account(t, n, "acme", appid(1))
	version := 1
	// Each row runs on the settings the rows before it left.
	tests := []struct {
		name, ifMatch string
		status        int
	}{
		{"absent", "", http.StatusPreconditionRequired},
		{"current", `"1"`, http.StatusOK},
		{"the old one", `"1"`, http.StatusPreconditionFailed},
		{"weak tags never match", `W/"2"`, http.StatusPreconditionFailed},
		{"a list holding the current one", `"7", "2"`, http.StatusOK},
		{"a list with empty elements", ` , "3",`, http.StatusOK},
		{"a tag this API never writes", `"abc"`, http.StatusPreconditionFailed},
		{"any version", `*`, http.StatusOK},
		{"not an entity tag", `4`, http.StatusBadRequest},
		{"a star in a list", `*, "5"`, http.StatusBadRequest},
		{"an unquoted weak tag", `W/5`, http.StatusBadRequest},
	}
	for _, tt := range tests {
		var headers []string
		if tt.ifMatch != "" {
			headers = []string{"If-Match", tt.ifMatch}
		}
		res := n.call(t, adminKey, http.MethodPut, "/v1/accounts/"+appid(1)+"/settings",
			map[string]any{"settings": map[string]any{"step": tt.name}}, headers...)
		require.Equal(t, tt.status, res.status, "%s: %s", tt.name, res.text)
		if res.status == http.StatusOK {
			version++
			require.Equal(t, fmt.Sprintf(`"%d"`, version), res.header.Get("ETag"), tt.name)
			require.Equal(t, tt.name, res.json(t)["settings"].(map[string]any)["step"])
		} else {
			require.Equal(t, "application/problem+json", res.header.Get("Content-Type"), tt.name)
		}
	}
	res := n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+appid(1)+"/settings", nil)
	require.Equal(t, fmt.Sprintf(`"%d"`, version), res.header.Get("ETag"), "refused changes wrote nothing")
}

func TestUnroutedRequestsAnswerProblemDocuments(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second)
	res := n.call(t, adminKey, http.MethodPut, "/v1/accounts/"+appid(1)+"/access-token", nil)
	require.Equal(t, http.StatusMethodNotAllowed, res.status, res.text)
	require.Equal(t, "GET, HEAD", res.header.Get("Allow"))
	require.Equal(t, "urn:wxhub:problem:method-not-allowed", res.json(t)["type"])
	res = n.call(t, "", http.MethodGet, "/nothing/here", nil)
	require.Equal(t, http.StatusNotFound, res.status, res.text)
	require.Equal(t, "urn:wxhub:problem:not-found", res.json(t)["type"])
}

func TestInvalidateCoalescesIntoOneRefresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second)
	e.startWorker(t)
	e.tenant(t, n, "acme")
	e.account(t, n, "acme", appid(1))
	old, gen := n.token(t, adminKey, appid(1))
	stats := func() wechatsim.AccountStats { return e.sim.Stats(appid(1)).Accounts[appid(1)] }
	before := stats().Calls[wechatsim.APIStableToken]

	// Someone outside wxhub forced a refresh: WeChat now rejects the stored token after the
	// overlap, and every app server reports it at once.
	forceRefreshAtWeChat(t, e, appid(1))
	reportsBefore := n.srv.DeadReports()
	var wg sync.WaitGroup
	results := make([]string, 100)
	start := make(chan struct{})
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			res := n.call(t, adminKey, http.MethodPost, "/v1/accounts/"+appid(1)+"/access-token/invalidate",
				map[string]any{"access_token": old, "errcode": 40001})
			if res.status == http.StatusOK {
				results[i] = res.json(t)["access_token"].(string)
			}
		}()
	}
	close(start)
	wg.Wait()
	require.Equal(t, int64(1), n.srv.DeadReports()-reportsBefore, "100 reports, one UPDATE")
	newTok, newGen := n.token(t, adminKey, appid(1))
	require.Equal(t, gen+1, newGen)
	for i, r := range results {
		require.Equal(t, newTok, r, "report %d", i)
	}
	// One forced call by the test, one refresh by wxhub.
	require.Equal(t, before+2, stats().Calls[wechatsim.APIStableToken], "100 reports, one upstream call")

	// A report of the old token now changes nothing and returns the current one.
	res := n.call(t, adminKey, http.MethodPost, "/v1/accounts/"+appid(1)+"/access-token/invalidate", map[string]any{"access_token": old, "errcode": 40001})
	require.Equal(t, http.StatusOK, res.status, res.text)
	require.Equal(t, newTok, res.json(t)["access_token"])
	require.Equal(t, before+2, stats().Calls[wechatsim.APIStableToken], "an old token's report causes no call")
}

func TestInvalidateRefreshesOnlyForErrcodesThatSayTheTokenIsDead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second)
	e.startWorker(t)
	e.tenant(t, n, "acme")
	e.account(t, n, "acme", appid(1))
	tok, gen := n.token(t, adminKey, appid(1))
	calls := func() int64 { return e.sim.Stats(appid(1)).Accounts[appid(1)].Calls[wechatsim.APIStableToken] }
	before := calls()
	// 45009 (quota), 48001 (no permission for the API), 40164 (IP not whitelisted): a new
	// token would be refused the same way.
	for _, code := range []int{45009, 48001, 40164, -1} {
		res := n.call(t, adminKey, http.MethodPost, "/v1/accounts/"+appid(1)+"/access-token/invalidate",
			map[string]any{"access_token": tok, "errcode": code})
		require.Equal(t, http.StatusUnprocessableEntity, res.status, res.text)
		require.Contains(t, res.json(t)["detail"], fmt.Sprintf("errcode %d", code))
	}
	require.Zero(t, n.srv.DeadReports(), "no report reached the database")
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, before, calls(), "no refresh")
	again, againGen := n.token(t, adminKey, appid(1))
	require.Equal(t, tok, again)
	require.Equal(t, gen, againGen)
}

func TestAnAccountNoRefreshCanHelpAnswersAtOnceWithTheReason(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second) // refresh wait 5 s
	e.tenant(t, n, "acme")
	get := func(appid string) (response, time.Duration) {
		start := time.Now()
		res := n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+appid+"/access-token", nil)
		return res, time.Since(start)
	}

	// Disabled before it ever had a token.
	e.account(t, n, "acme", appid(1))
	require.Equal(t, http.StatusOK, n.call(t, adminKey, http.MethodPost, "/v1/accounts/"+appid(1)+"/disable", nil).status)
	// A wrong secret: WeChat answers 40001 to stable_token.
	require.NoError(t, e.sim.AddAccount(wechatsim.Account{AppID: appid(2), Secret: "the-real-secret"}))
	res := n.call(t, adminKey, http.MethodPost, "/v1/accounts", map[string]any{"appid": appid(2), "kind": "official_account",
		"secret": "a-wrong-secret", "tenant": "acme"})
	require.Equal(t, http.StatusCreated, res.status, res.text)
	// WeChat says the day's quota is spent.
	require.NoError(t, e.sim.AddAccount(wechatsim.Account{AppID: appid(3), Secret: "secret-" + appid(3)}))
	require.NoError(t, e.sim.SetFaults(wechatsim.Faults{AppID: appid(3), QuotaExhausted: true}))
	res = n.call(t, adminKey, http.MethodPost, "/v1/accounts", map[string]any{"appid": appid(3), "kind": "official_account",
		"secret": "secret-" + appid(3), "tenant": "acme", "token_mode": "classic"})
	require.Equal(t, http.StatusCreated, res.status, res.text)

	e.startWorker(t)
	waitUntil(t, 10*time.Second, "the worker's first attempts", func() bool {
		var failing, spent bool
		for _, a := range []struct {
			appid string
			flag  *bool
		}{{appid(2), &failing}, {appid(3), &spent}} {
			r := n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+a.appid, nil)
			*a.flag = strings.Contains(r.text, `"status":"failing"`) || strings.Contains(r.text, "45009")
		}
		return failing && spent
	})

	res, took := get(appid(1))
	require.Equal(t, http.StatusConflict, res.status, res.text)
	require.Equal(t, "urn:wxhub:problem:account-disabled", res.json(t)["type"])
	require.Less(t, took, 2*time.Second, "answered at once, not after the 5 s refresh wait")

	res, took = get(appid(2))
	require.Equal(t, http.StatusConflict, res.status, res.text)
	require.Equal(t, "application/problem+json", res.header.Get("Content-Type"))
	body := res.json(t)
	require.Equal(t, "urn:wxhub:problem:account-failing", body["type"])
	require.Equal(t, float64(40001), body["errcode"], "WeChat's errcode")
	require.NotContains(t, res.text, "a-wrong-secret")
	require.Less(t, took, 2*time.Second)

	res, took = get(appid(3))
	require.Equal(t, http.StatusServiceUnavailable, res.status, res.text)
	body = res.json(t)
	require.Equal(t, "urn:wxhub:problem:quota-exhausted", body["type"])
	require.Equal(t, float64(45009), body["errcode"])
	retry, err := strconv.Atoi(res.header.Get("Retry-After"))
	require.NoError(t, err)
	require.Greater(t, retry, 60, "retry after the quota day turns (China midnight)")
	require.Less(t, took, 2*time.Second)

	// Fixed, the account is served again: a new secret clears the failure at once.
	res = n.call(t, adminKey, http.MethodPatch, "/v1/accounts/"+appid(2), map[string]any{"secret": "the-real-secret"})
	require.Equal(t, http.StatusOK, res.status, res.text)
	tok, _ := n.token(t, adminKey, appid(2))
	require.NotEmpty(t, tok)
}

func TestMinTTLBeyondWhatAStableTokenCanHaveAnswersAsSoonAsTheRefreshKeptIt(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 20*time.Minute, 5*time.Minute)
	n := e.startNode(t, 30*time.Second) // refresh wait 5 s
	e.startWorker(t)
	e.tenant(t, n, "acme")
	e.account(t, n, "acme", appid(1))
	tok, gen := n.token(t, adminKey, appid(1))
	// WeChat's tokens live 20 minutes here; 30 is more than any can have left.
	start := time.Now()
	res := n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+appid(1)+"/access-token?min_ttl=1800", nil)
	took := time.Since(start)
	require.Equal(t, http.StatusOK, res.status, res.text)
	body := res.json(t)
	require.Equal(t, tok, body["access_token"], "stable_token kept the token: it is the best there is")
	require.Equal(t, float64(gen), body["generation"])
	require.Greater(t, body["expires_in"], float64(1000), "its true lifetime")
	require.Less(t, took, 2500*time.Millisecond, "answered when the refresh ended, not after the 5 s wait")
}

func TestATokenReportedRejectedIsNotHandedOutAgainWhenItsRefreshFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second) // refresh wait 5 s
	e.startWorker(t)
	e.tenant(t, n, "acme")
	e.account(t, n, "acme", appid(1))
	tok, gen := n.token(t, adminKey, appid(1))
	// Someone outside wxhub forced a refresh: WeChat rejects the stored token at once. And
	// WeChat then fails every call for the account: the refresh the report asks for fails.
	forceRefreshAtWeChat(t, e, appid(1))
	require.NoError(t, e.sim.SetFaults(wechatsim.Faults{AppID: appid(1), HTTPStatus: http.StatusBadGateway}))
	res := n.call(t, adminKey, http.MethodPost, "/v1/accounts/"+appid(1)+"/access-token/invalidate",
		map[string]any{"access_token": tok, "errcode": 40001})
	require.Equal(t, http.StatusServiceUnavailable, res.status, res.text)
	res = n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+appid(1)+"/access-token", nil)
	require.Equal(t, http.StatusServiceUnavailable, res.status, "the rejected token is not handed out again: %s", res.text)
	require.NotContains(t, res.text, tok)

	// WeChat is back: the worker's retry stores the token WeChat now holds.
	require.NoError(t, e.sim.SetFaults(wechatsim.Faults{AppID: appid(1), Clear: true}))
	waitUntil(t, 20*time.Second, "a new token", func() bool {
		r := n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+appid(1)+"/access-token", nil)
		return r.status == http.StatusOK && r.json(t)["generation"].(float64) > float64(gen)
	})
}

func TestRateLimitPerKeyAnswers429WithRetryAfter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNodeWith(t, server.Config{ListenerURL: e.dsn, RateLimit: 5, Logger: quiet})
	e.tenant(t, n, "acme")
	key := e.tenantKey(t, n, "acme")
	var limited response
	for range 30 {
		if res := n.call(t, key, http.MethodGet, "/v1/accounts", nil); res.status == http.StatusTooManyRequests {
			limited = res
			break
		}
	}
	require.Equal(t, http.StatusTooManyRequests, limited.status, "30 requests at once pass a 5/s limit with bursts of 10")
	require.Equal(t, "1", limited.header.Get("Retry-After"))
	require.Equal(t, "urn:wxhub:problem:rate-limited", limited.json(t)["type"])
	require.Equal(t, http.StatusOK, n.call(t, adminKey, http.MethodGet, "/v1/accounts", nil).status, "other keys are not limited")
}

func TestAnExpiredTokenIsRefreshedAtOnceWhenAnAppServerAsks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second)
	e.startWorker(t)
	e.tenant(t, n, "acme")
	require.NoError(t, e.sim.AddAccount(wechatsim.Account{AppID: appid(1), Secret: "secret-" + appid(1)}))
	res := n.call(t, adminKey, http.MethodPost, "/v1/accounts", map[string]any{"appid": appid(1), "kind": "official_account",
		"secret": "secret-" + appid(1), "tenant": "acme", "token_mode": "classic"})
	require.Equal(t, http.StatusCreated, res.status, res.text)
	_, gen := n.token(t, adminKey, appid(1))

	// The state a WeChat outage leaves: the token expired, and the worker's next retry is
	// far off, spaced out to spare the quota. A node started now reads that state.
	_, err := pool(t, e).Exec(context.Background(), `UPDATE credentials
		SET expires_at = now() - interval '1 second', attempts = 5
		WHERE kind = 'access_token';
		UPDATE credential_schedule SET refresh_at = now() + interval '10 minutes' WHERE kind = 'access_token'`)
	require.NoError(t, err)
	fresh := e.startNode(t, 30*time.Second)

	start := time.Now()
	_, newGen := fresh.token(t, adminKey, appid(1))
	require.Equal(t, gen+1, newGen, "the request asked for the refresh and waited for it")
	require.Less(t, time.Since(start), 5*time.Second, "answered within the refresh wait, not after a 503")
}

func TestAnAccountCanBeReshapedThroughPatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second)
	e.startWorker(t)
	e.tenant(t, n, "acme")
	e.tenant(t, n, "globex")
	e.account(t, n, "acme", appid(1))
	n.token(t, adminKey, appid(1))
	acme, globex := e.tenantKey(t, n, "acme"), e.tenantKey(t, n, "globex")

	// A ticket added to an account that has a token is fetched at once.
	res := n.call(t, adminKey, http.MethodPatch, "/v1/accounts/"+appid(1), map[string]any{"tickets": []string{"jsapi"}})
	require.Equal(t, http.StatusOK, res.status, res.text)
	require.Equal(t, []any{"jsapi"}, res.json(t)["tickets"])
	waitUntil(t, 5*time.Second, "the new ticket", func() bool {
		return n.call(t, acme, http.MethodGet, "/v1/accounts/"+appid(1)+"/tickets/jsapi", nil).status == http.StatusOK
	})
	// Dropped, it is gone.
	res = n.call(t, adminKey, http.MethodPatch, "/v1/accounts/"+appid(1), map[string]any{"tickets": []string{}})
	require.Equal(t, http.StatusOK, res.status, res.text)
	require.Equal(t, http.StatusNotFound, n.call(t, acme, http.MethodGet, "/v1/accounts/"+appid(1)+"/tickets/jsapi", nil).status)

	// Moved to another tenant: the new tenant's key sees it and gets its token, the old one's does not.
	res = n.call(t, adminKey, http.MethodPatch, "/v1/accounts/"+appid(1), map[string]any{"tenant": "globex"})
	require.Equal(t, http.StatusOK, res.status, res.text)
	require.Equal(t, "globex", res.json(t)["tenant"])
	require.Equal(t, http.StatusNotFound, n.call(t, acme, http.MethodGet, "/v1/accounts/"+appid(1)+"/access-token", nil).status)
	require.Equal(t, http.StatusOK, n.call(t, globex, http.MethodGet, "/v1/accounts/"+appid(1)+"/access-token", nil).status)
	res = n.call(t, adminKey, http.MethodPatch, "/v1/accounts/"+appid(1), map[string]any{"tenant": "nobody"})
	require.Equal(t, http.StatusUnprocessableEntity, res.status, res.text)

	// Each change is in the audit log, with what changed.
	res = n.call(t, adminKey, http.MethodGet, "/v1/audit-log?target="+appid(1), nil)
	require.Equal(t, http.StatusOK, res.status, res.text)
	require.Contains(t, res.text, `"tickets"`)
	require.Contains(t, res.text, `"tenant":"globex"`)
}

func TestANodeWithoutTheWritersKeySaysSo(t *testing.T) {
	t.Parallel()
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second)
	e.tenant(t, n, "acme")
	e.account(t, n, "acme", appid(1))
	// A worker whose ring has a newer key first writes the token under it: a rotation begun
	// before this node got the new ring.
	ring, err := keyring.Parse("t2:HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=," + testKeys)
	require.NoError(t, err)
	storeToken(t, db.NewStore(pool(t, e), ring), "stable_token", false, "token-under-t2", time.Hour)

	r := n.call(t, adminKey, http.MethodGet, "/v1/accounts/"+appid(1)+"/access-token", nil)
	require.Equal(t, http.StatusServiceUnavailable, r.status, r.text)
	require.Contains(t, r.json(t)["detail"], "WXHUB_KEYS lacks the key")
	require.NotEmpty(t, r.header.Get("Retry-After"))
}
