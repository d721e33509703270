package wechatsim

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSimAccountsEndpoint(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantKind   string
		wantQuotas map[string]any
	}{
		{name: "create with defaults", body: `{"appid":"wx_new","secret":"s"}`, wantStatus: http.StatusCreated,
			wantKind:   KindOfficialAccount,
			wantQuotas: map[string]any{"token": 2000.0, "stable_token": 500000.0, "getticket": 100000.0}},
		{name: "create a mini program with quotas", body: `{"appid":"wx_new","secret":"s","kind":"mini_program","quotas":{"token":200,"getticket":5}}`,
			wantStatus: http.StatusCreated, wantKind: KindMiniProgram,
			wantQuotas: map[string]any{"token": 200.0, "stable_token": 500000.0, "getticket": 5.0}},
		{name: "update an existing appid", body: `{"appid":"wx_b","secret":"other","quotas":{"stable_token":7}}`, wantStatus: http.StatusOK,
			wantKind:   KindMiniProgram, // kept: not given
			wantQuotas: map[string]any{"token": 2000.0, "stable_token": 7.0, "getticket": 100000.0}},
		{name: "every wxhub kind is accepted", body: `{"appid":"wx_c","secret":"s","kind":"authorizer"}`, wantStatus: http.StatusCreated, wantKind: KindAuthorizer},
		{name: "malformed JSON", body: `{"appid":`, wantStatus: http.StatusBadRequest},
		{name: "empty body", body: ``, wantStatus: http.StatusBadRequest},
		{name: "missing appid", body: `{"secret":"s"}`, wantStatus: http.StatusBadRequest},
		{name: "unknown kind", body: `{"appid":"wx_c","kind":"game"}`, wantStatus: http.StatusBadRequest},
		{name: "unknown quota", body: `{"appid":"wx_c","quotas":{"tokens":1}}`, wantStatus: http.StatusBadRequest},
		{name: "negative quota", body: `{"appid":"wx_c","quotas":{"token":-1}}`, wantStatus: http.StatusBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			status, body := simRequest(t, tb, http.MethodPost, "/sim/accounts", tt.body)
			require.Equal(t, tt.wantStatus, status, "%v", body)
			if status == http.StatusBadRequest {
				require.NotEmpty(t, body["error"])
				return
			}
			require.NotContains(t, body, "secret", "the simulator never returns a secret")
			require.Equal(t, tt.wantKind, body["kind"])
			if tt.wantQuotas != nil {
				require.Equal(t, tt.wantQuotas, body["quotas"])
			}
		})
	}
}

func TestSimAccountsListHasNoSecrets(t *testing.T) {
	tb := setup(t, Config{})
	req, err := http.NewRequest(http.MethodGet, tb.srv.URL+"/sim/accounts", nil)
	require.NoError(t, err)
	resp, err := tb.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	accts := tb.sim.Accounts()
	require.Len(t, accts, 2)
	require.Equal(t, appA, accts[0].AppID)
	require.Empty(t, accts[0].Secret)
}

func TestAccountSecretCanBeMadeWrongAndRightAgain(t *testing.T) {
	tb := setup(t, Config{})
	ctx := context.Background()
	require.NoError(t, tb.client.AddAccount(ctx, Account{AppID: appA, Secret: secretA, Quotas: map[string]int{APIToken: 50}}))
	tok := tb.mustToken(t, appA, secretA)

	require.NoError(t, tb.client.AddAccount(ctx, Account{AppID: appA, Secret: "rotated"}))
	require.Equal(t, CodeInvalidSecret, tb.token(t, appA, secretA).ErrCode)
	require.Equal(t, CodeInvalidCredential, tb.stable(t, appA, secretA, false).ErrCode)
	require.Equal(t, 0, tb.use(t, tok), "changing the secret keeps issued tokens")

	require.NoError(t, tb.client.AddAccount(ctx, Account{AppID: appA, Secret: secretA}))
	tb.mustToken(t, appA, secretA)
	require.Equal(t, 50, tb.sim.Accounts()[0].Quotas[APIToken], "quotas not given are kept")
}

func TestStatsCountCallsTokensAndUses(t *testing.T) {
	tb := setup(t, Config{})
	old := tb.mustToken(t, appA, secretA)
	tb.clock.Add(time.Minute)
	fresh := tb.mustToken(t, appA, secretA)
	tb.clock.Add(time.Minute)
	tb.mustStable(t, appA, secretA, false)
	tb.mustStable(t, appA, secretA, false) // same token: a call, not an issue
	tb.token(t, appA, "wrong")
	tb.ticket(t, fresh, TicketJSAPI)
	tb.quotaGet(t, fresh, pathToken)

	require.Equal(t, 0, tb.use(t, old), "accepted: still in the overlap")
	tb.clock.Add(10 * time.Minute)
	require.Equal(t, CodeInvalidCredential, tb.use(t, old), "superseded")
	tb.clock.Add(3 * time.Hour)
	require.Equal(t, CodeTokenExpired, tb.use(t, fresh), "expired")
	require.Equal(t, CodeInvalidCredential, tb.use(t, "forged"))
	tb.token(t, appB, secretB)
	tb.token(t, "wx_nobody", "x")

	st, err := tb.client.Stats(context.Background(), appA)
	require.NoError(t, err)
	require.Len(t, st.Accounts, 1, "filtered to one appid")
	require.Equal(t, tb.clock.Now(), st.At.UTC())
	as := st.Accounts[appA]
	require.Equal(t, KindOfficialAccount, as.Kind)
	// Every API and token kind is present, the ones not used with zero.
	wantCalls := map[string]int64{APIToken: 3, APIStableToken: 2, APIGetTicket: 1, APIGetAPIDomainIP: 3, APIQuotaGet: 1}
	require.Len(t, as.Calls, len(apiNames))
	for name, n := range as.Calls {
		require.Equal(t, wantCalls[name], n, "calls of %s", name)
	}
	require.Equal(t, int64(3), as.TokensIssued)
	wantKinds := map[string]int64{TokenKindClassic: 2, TokenKindStable: 1}
	require.Len(t, as.TokensIssuedByKind, len(tokenKindNames))
	for kind, n := range as.TokensIssuedByKind {
		require.Equal(t, wantKinds[kind], n, "tokens of kind %s", kind)
	}
	require.Equal(t, []time.Time{t0, t0.Add(time.Minute), t0.Add(2 * time.Minute)}, utc(as.TokenIssueTimes))
	require.Equal(t, map[string]int64{TicketJSAPI: 1}, as.TicketsIssued)
	require.Equal(t, int64(3), as.UsesAccepted, "one get_api_domain_ip, one getticket, one quota/get")
	require.Equal(t, map[int]int64{CodeInvalidCredential: 1, CodeTokenExpired: 1}, as.UsesRejected)
	require.Equal(t, map[string]map[int]int64{
		APIToken:          {CodeInvalidSecret: 1},
		APIGetAPIDomainIP: {CodeInvalidCredential: 1, CodeTokenExpired: 1},
	}, as.Errors)

	tot := st.Totals
	require.Equal(t, 2, tot.Accounts)
	require.Equal(t, int64(5), tot.Calls[APIToken], "totals cover every appid and unknown ones")
	require.Equal(t, int64(4), tot.TokensIssued)
	require.Equal(t, map[int]int64{CodeInvalidCredential: 2, CodeTokenExpired: 1}, tot.UsesRejected)
	require.Equal(t, int64(1), tot.Unattributed.Calls[APIToken])
	require.Equal(t, map[int]int64{CodeInvalidCredential: 1}, tot.Unattributed.UsesRejected)
	require.Equal(t, int64(1), tot.Unattributed.Errors[APIToken][CodeInvalidAppID])

	all := tb.sim.Stats("")
	require.Len(t, all.Accounts, 2)
	require.Equal(t, int64(1), all.Accounts[appB].TokensIssued)
}

func TestStatsJSONShape(t *testing.T) {
	tb := setup(t, Config{})
	tok := tb.mustToken(t, appA, secretA)
	tb.use(t, tok)
	status, body := simRequest(t, tb, http.MethodGet, "/sim/stats?appid="+url.QueryEscape(appA), "")
	require.Equal(t, http.StatusOK, status)
	require.Contains(t, body, "at")
	a := body["accounts"].(map[string]any)[appA].(map[string]any)
	for _, key := range []string{"kind", "calls", "errors", "dropped", "answers_lost", "tokens_issued", "tokens_issued_by_kind",
		"token_issue_times", "tickets_issued", "forced_refreshes", "uses_accepted", "uses_rejected", "jssdk_accepted",
		"jssdk_rejected", "quota_used"} {
		require.Contains(t, a, key)
	}
	calls := a["calls"].(map[string]any)
	for _, name := range []string{"token", "stable_token", "getticket", "get_api_domain_ip", "quota_get", "clear_quota"} {
		require.Contains(t, calls, name)
	}
	times := a["token_issue_times"].([]any)
	require.Len(t, times, 1)
	_, err := time.Parse(time.RFC3339Nano, times[0].(string))
	require.NoError(t, err)
	totals := body["totals"].(map[string]any)
	require.Contains(t, totals, "accounts")
	require.Contains(t, totals, "unattributed")
}

func TestResetForgetsEverything(t *testing.T) {
	tb := setup(t, Config{})
	tok := tb.mustToken(t, appA, secretA)
	require.NoError(t, tb.sim.SetFaults(Faults{BusyRate: 1}))
	status, _ := simRequest(t, tb, http.MethodPost, "/sim/reset", "")
	require.Equal(t, http.StatusNoContent, status)

	require.Equal(t, CodeInvalidAppID, tb.token(t, appA, secretA).ErrCode, "accounts are gone, faults too (else -1)")
	require.Equal(t, CodeInvalidCredential, tb.use(t, tok), "tokens are gone")
	st := tb.sim.Stats("")
	require.Empty(t, st.Accounts)
	require.Zero(t, st.Totals.TokensIssued)
	require.Equal(t, int64(1), st.Totals.Calls[APIToken], "only the call after the reset")
}

func TestSimEndpointErrors(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
	}{
		{name: "unknown path", method: http.MethodGet, path: "/cgi-bin/nothing", wantStatus: http.StatusNotFound},
		{name: "stats by POST", method: http.MethodPost, path: "/sim/stats", wantStatus: http.StatusMethodNotAllowed},
		{name: "reset by GET", method: http.MethodGet, path: "/sim/reset", wantStatus: http.StatusMethodNotAllowed},
		{name: "accounts by DELETE", method: http.MethodDelete, path: "/sim/accounts", wantStatus: http.StatusMethodNotAllowed},
		{name: "faults by PUT", method: http.MethodPut, path: "/sim/faults", wantStatus: http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			status, body := simRequest(t, tb, tt.method, tt.path, "")
			require.Equal(t, tt.wantStatus, status)
			require.NotEmpty(t, body["error"])
		})
	}
}

func TestForgottenTokensAreDroppedFromTheIndex(t *testing.T) {
	tb := setup(t, Config{})
	old := tb.mustToken(t, appA, secretA)
	tb.clock.Add(forgetAfter + 3*time.Hour)
	tb.mustToken(t, appA, secretA)
	require.Nil(t, tb.sim.world.Load().tokens.get(old))
	require.Equal(t, CodeInvalidCredential, tb.use(t, old), "a forgotten token is unknown: 40001")
}

func utc(ts []time.Time) []time.Time {
	out := make([]time.Time, len(ts))
	for i, t := range ts {
		out[i] = t.UTC()
	}
	return out
}
