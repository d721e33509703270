package wechatsim

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestClassicQuota2001stCallRefusedAndResetsAtChinaMidnight(t *testing.T) {
	tb := setup(t, Config{})
	tb.clock.Set(time.Date(2026, 3, 10, 15, 0, 0, 0, time.UTC)) // 23:00 in China
	var last string
	for i := range DefaultTokenQuota {
		ans := tb.token(t, appA, secretA)
		require.Zero(t, ans.ErrCode, "call %d: %s", i+1, ans.ErrMsg)
		last = ans.AccessToken
	}
	over := tb.token(t, appA, secretA)
	require.Equal(t, CodeQuotaExceeded, over.ErrCode)
	require.Empty(t, over.AccessToken)

	tb.clock.Set(time.Date(2026, 3, 10, 15, 59, 59, 0, time.UTC))
	require.Equal(t, CodeQuotaExceeded, tb.token(t, appA, secretA).ErrCode, "23:59:59 in China is still the same quota day")
	require.Equal(t, 0, tb.use(t, last), "refused calls issued nothing, so the last token was not superseded")
	require.Equal(t, CodeQuotaExceeded, tb.quotaGetCode(t, last), "quota/get does not hide the refusal")

	as := tb.stats(t, appA)
	require.Equal(t, int64(DefaultTokenQuota), as.TokensIssued)
	require.Equal(t, int64(DefaultTokenQuota+2), as.Calls[APIToken], "refused calls are still counted as calls")
	require.Equal(t, int64(2), as.Errors[APIToken][CodeQuotaExceeded])
	require.Equal(t, DefaultTokenQuota, as.QuotaUsed[APIToken], "refused calls do not count against the quota")

	tb.clock.Set(time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)) // midnight in China
	require.NotEmpty(t, tb.mustToken(t, appA, secretA), "a new China day resets the counter")
	require.Equal(t, 1, tb.stats(t, appA).QuotaUsed[APIToken])
	require.NotEmpty(t, tb.mustToken(t, appB, secretB), "other appids have their own counters")
}

// quotaGetCode returns 45009 when the token quota is used up, for readability
// in the test above.
func (tb *testBundle) quotaGetCode(t *testing.T, token string) int {
	t.Helper()
	ans := tb.quotaGet(t, token, pathToken)
	require.Zero(t, ans.ErrCode)
	if ans.Quota.Remain == 0 {
		return CodeQuotaExceeded
	}
	return 0
}

func TestQuotaCountsOnlySuccessfulCalls(t *testing.T) {
	const limit = 3
	tests := []struct {
		api     string
		cgiPath string
		good    func(t *testing.T, tb *testBundle, tok string) int
		bad     func(t *testing.T, tb *testBundle, tok string) int
	}{
		{
			api: APIToken, cgiPath: pathToken,
			good: func(t *testing.T, tb *testBundle, _ string) int { return tb.token(t, appB, secretB).ErrCode },
			bad:  func(t *testing.T, tb *testBundle, _ string) int { return tb.token(t, appB, "wrong").ErrCode },
		},
		{
			api: APIStableToken, cgiPath: pathStableToken,
			good: func(t *testing.T, tb *testBundle, _ string) int { return tb.stable(t, appB, secretB, false).ErrCode },
			bad:  func(t *testing.T, tb *testBundle, _ string) int { return tb.stable(t, appB, "wrong", false).ErrCode },
		},
		{
			api: APIGetTicket, cgiPath: pathGetTicket,
			good: func(t *testing.T, tb *testBundle, tok string) int { return tb.ticket(t, tok, TicketJSAPI).ErrCode },
			bad:  func(t *testing.T, tb *testBundle, tok string) int { return tb.ticket(t, tok, "nope").ErrCode },
		},
	}
	for _, tt := range tests {
		t.Run(tt.api, func(t *testing.T) {
			tb := setup(t, Config{})
			require.NoError(t, tb.sim.AddAccount(Account{AppID: appB, Secret: secretB, Quotas: map[string]int{tt.api: limit}}))
			// A stable token to query quota/get and getticket with; it does not
			// touch the classic counter.
			tok := tb.mustStable(t, appB, secretB, false).AccessToken
			usedBefore := tb.quotaGet(t, tok, tt.cgiPath).Quota.Used

			for range 2 {
				require.NotZero(t, tt.bad(t, tb, tok))
			}
			q := tb.quotaGet(t, tok, tt.cgiPath)
			require.Zero(t, q.ErrCode)
			require.Equal(t, QuotaState{DailyLimit: limit, Used: usedBefore, Remain: limit - usedBefore}, *q.Quota, "failed calls are free")

			for i := usedBefore; i < limit; i++ {
				require.Zero(t, tt.good(t, tb, tok))
			}
			require.Equal(t, CodeQuotaExceeded, tt.good(t, tb, tok))
			q = tb.quotaGet(t, tok, tt.cgiPath)
			require.Equal(t, QuotaState{DailyLimit: limit, Used: limit, Remain: 0}, *q.Quota)
		})
	}
}

func TestQuotaGet(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantCode  int
		wantLimit int
	}{
		{name: "token", body: `{"cgi_path":"/cgi-bin/token"}`, wantLimit: DefaultTokenQuota},
		{name: "stable_token", body: `{"cgi_path":"/cgi-bin/stable_token"}`, wantLimit: DefaultStableTokenQuota},
		{name: "getticket", body: `{"cgi_path":"/cgi-bin/ticket/getticket"}`, wantLimit: DefaultGetTicketQuota},
		{name: "unknown cgi_path", body: `{"cgi_path":"/cgi-bin/nothing"}`, wantCode: CodeCGIPathNotFound},
		{name: "missing cgi_path", body: `{}`, wantCode: CodeCGIPathNotFound},
		{name: "malformed body", body: `{"cgi_path":`, wantCode: CodeDataFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			tok := tb.mustToken(t, appA, secretA)
			ans := tb.do(t, http.MethodPost, pathQuotaGet, url.Values{"access_token": {tok}}, "application/json", []byte(tt.body))
			require.Equal(t, tt.wantCode, ans.ErrCode, ans.ErrMsg)
			if tt.wantCode != 0 {
				return
			}
			require.Equal(t, "ok", ans.ErrMsg)
			used := 0
			if tt.name == "token" {
				used = 1
			}
			require.Equal(t, QuotaState{DailyLimit: tt.wantLimit, Used: used, Remain: tt.wantLimit - used}, *ans.Quota)
			require.Equal(t, int64(1), tb.stats(t, appA).Calls[APIQuotaGet])
		})
	}
}

func TestQuotaGetNeedsALiveToken(t *testing.T) {
	tb := setup(t, Config{})
	tok := tb.mustToken(t, appA, secretA)
	tb.clock.Add(3 * time.Hour)
	require.Equal(t, CodeTokenExpired, tb.quotaGet(t, tok, pathToken).ErrCode)
	require.Equal(t, CodeMissingAccessToken, tb.quotaGet(t, "", pathToken).ErrCode)
}

// exhaustTokenQuota gives appA a classic quota of 1 and uses it up.
func exhaustTokenQuota(t *testing.T, tb *testBundle) {
	t.Helper()
	require.NoError(t, tb.sim.AddAccount(Account{AppID: appA, Secret: secretA, Quotas: map[string]int{APIToken: 1}}))
	tb.token(t, appA, secretA)
	require.Equal(t, CodeQuotaExceeded, tb.token(t, appA, secretA).ErrCode)
}

func TestClearQuotaResetsCounters(t *testing.T) {
	tests := []struct {
		name  string
		clear func(t *testing.T, tb *testBundle) wxAnswer
	}{
		{name: "clear_quota with a token", clear: func(t *testing.T, tb *testBundle) wxAnswer {
			tok := tb.mustStable(t, appA, secretA, false).AccessToken
			return tb.postJSON(t, pathClearQuota, url.Values{"access_token": {tok}}, map[string]string{"appid": appA})
		}},
		{name: "v2 form body", clear: func(t *testing.T, tb *testBundle) wxAnswer {
			body := url.Values{"appid": {appA}, "appsecret": {secretA}}.Encode()
			return tb.do(t, http.MethodPost, pathClearQuotaV2, nil, "application/x-www-form-urlencoded", []byte(body))
		}},
		{name: "v2 JSON body", clear: func(t *testing.T, tb *testBundle) wxAnswer {
			return tb.postJSON(t, pathClearQuotaV2, nil, map[string]string{"appid": appA, "appsecret": secretA})
		}},
		{name: "v2 query", clear: func(t *testing.T, tb *testBundle) wxAnswer {
			return tb.do(t, http.MethodPost, pathClearQuotaV2, url.Values{"appid": {appA}, "appsecret": {secretA}}, "", nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			exhaustTokenQuota(t, tb)
			ans := tt.clear(t, tb)
			require.Zero(t, ans.ErrCode, ans.ErrMsg)
			require.Equal(t, "ok", ans.ErrMsg)
			require.Equal(t, 0, tb.stats(t, appA).QuotaUsed[APIToken])
			tb.mustToken(t, appA, secretA)
			require.Equal(t, int64(1), tb.stats(t, appA).Calls[APIClearQuota])
		})
	}
}

func TestClearQuotaAtMostTenPerChinaMonth(t *testing.T) {
	tb := setup(t, Config{})
	tok := tb.mustStable(t, appA, secretA, false).AccessToken
	clearV1 := func() int {
		return tb.postJSON(t, pathClearQuota, url.Values{"access_token": {tok}}, map[string]string{"appid": appA}).ErrCode
	}
	clearV2 := func() int {
		return tb.postJSON(t, pathClearQuotaV2, nil, map[string]string{"appid": appA, "appsecret": secretA}).ErrCode
	}
	tb.clock.Set(time.Date(2026, 3, 31, 15, 0, 0, 0, time.UTC)) // 23:00, 31 March in China
	tok = tb.mustStable(t, appA, secretA, false).AccessToken
	for i := range ClearQuotaMonthlyLimit {
		clear := clearV1
		if i%2 == 1 {
			clear = clearV2 // both endpoints share one allowance
		}
		require.Zero(t, clear(), "reset %d", i+1)
	}
	require.Equal(t, CodeClearQuotaLimit, clearV1())
	require.Equal(t, CodeClearQuotaLimit, clearV2())

	tb.clock.Set(time.Date(2026, 3, 31, 15, 59, 59, 0, time.UTC))
	require.Equal(t, CodeClearQuotaLimit, clearV2(), "still March in China")
	tb.clock.Set(time.Date(2026, 3, 31, 16, 0, 0, 0, time.UTC))
	require.Zero(t, clearV2(), "1 April in China: a new allowance")

	require.Zero(t, tb.postJSON(t, pathClearQuotaV2, nil, map[string]string{"appid": appB, "appsecret": secretB}).ErrCode,
		"the allowance is per account")
}

func TestClearQuotaErrors(t *testing.T) {
	tests := []struct {
		name     string
		call     func(t *testing.T, tb *testBundle) wxAnswer
		wantCode int
	}{
		{name: "token of another appid", wantCode: CodeInvalidAppID, call: func(t *testing.T, tb *testBundle) wxAnswer {
			tok := tb.mustToken(t, appB, secretB)
			return tb.postJSON(t, pathClearQuota, url.Values{"access_token": {tok}}, map[string]string{"appid": appA})
		}},
		{name: "missing appid", wantCode: CodeMissingAppID, call: func(t *testing.T, tb *testBundle) wxAnswer {
			tok := tb.mustStable(t, appA, secretA, false).AccessToken
			return tb.postJSON(t, pathClearQuota, url.Values{"access_token": {tok}}, map[string]string{})
		}},
		{name: "dead token", wantCode: CodeInvalidCredential, call: func(t *testing.T, tb *testBundle) wxAnswer {
			tok := tb.mustStable(t, appA, secretA, false).AccessToken
			tb.mustStable(t, appA, secretA, true)
			tb.clock.Add(time.Hour)
			return tb.postJSON(t, pathClearQuota, url.Values{"access_token": {tok}}, map[string]string{"appid": appA})
		}},
		{name: "v2 wrong secret", wantCode: CodeInvalidSecret, call: func(t *testing.T, tb *testBundle) wxAnswer {
			return tb.postJSON(t, pathClearQuotaV2, nil, map[string]string{"appid": appA, "appsecret": "wrong"})
		}},
		{name: "v2 unknown appid", wantCode: CodeInvalidAppID, call: func(t *testing.T, tb *testBundle) wxAnswer {
			return tb.postJSON(t, pathClearQuotaV2, nil, map[string]string{"appid": "wx_nobody", "appsecret": "x"})
		}},
		{name: "v2 missing secret", wantCode: CodeMissingSecret, call: func(t *testing.T, tb *testBundle) wxAnswer {
			return tb.postJSON(t, pathClearQuotaV2, nil, map[string]string{"appid": appA})
		}},
		{name: "v2 GET", wantCode: CodeRequirePOST, call: func(t *testing.T, tb *testBundle) wxAnswer {
			return tb.do(t, http.MethodGet, pathClearQuotaV2, url.Values{"appid": {appA}, "appsecret": {secretA}}, "", nil)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			exhaustTokenQuota(t, tb)
			require.Equal(t, tt.wantCode, tt.call(t, tb).ErrCode)
			require.Equal(t, CodeQuotaExceeded, tb.token(t, appA, secretA).ErrCode, "nothing was reset")
		})
	}
}

func TestQuotaDayFollowsQuotaZone(t *testing.T) {
	tests := []struct {
		name        string
		zone        *time.Location
		lastOfDay   time.Time
		firstOfNext time.Time
	}{
		{name: "default: midnight in China", lastOfDay: time.Date(2026, 3, 10, 15, 59, 59, 0, time.UTC),
			firstOfNext: time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC)},
		{name: "UTC", zone: time.UTC, lastOfDay: time.Date(2026, 3, 10, 23, 59, 59, 0, time.UTC),
			firstOfNext: time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{QuotaZone: tt.zone})
			require.NoError(t, tb.sim.AddAccount(Account{AppID: appA, Secret: secretA, Quotas: map[string]int{APIToken: 1}}))
			tb.mustToken(t, appA, secretA) // at t0, 02:00 UTC
			tb.clock.Set(tt.lastOfDay)
			require.Equal(t, CodeQuotaExceeded, tb.token(t, appA, secretA).ErrCode, "still the same quota day")
			require.Equal(t, 1, tb.stats(t, appA).QuotaUsed[APIToken])
			tb.clock.Set(tt.firstOfNext)
			require.Equal(t, 0, tb.stats(t, appA).QuotaUsed[APIToken], "stats see the new day before any call")
			tb.mustToken(t, appA, secretA)
		})
	}
}

func TestCountRefusedCalls(t *testing.T) {
	tests := []struct {
		name     string
		count    bool
		wantUsed int // after one served call and two refused ones
		wantNext int // the errcode of the next good call, with a quota of 3
	}{
		{name: "default: refusals are free", wantUsed: 1, wantNext: 0},
		{name: "refusals counted", count: true, wantUsed: 3, wantNext: CodeQuotaExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{CountRefusedCalls: tt.count})
			require.NoError(t, tb.sim.AddAccount(Account{AppID: appA, Secret: secretA, Quotas: map[string]int{APIToken: 3}}))
			tb.mustToken(t, appA, secretA)
			require.Equal(t, CodeInvalidSecret, tb.token(t, appA, "wrong").ErrCode)
			require.NoError(t, tb.sim.SetFaults(Faults{AppID: appA, BusyRate: 1}))
			require.Equal(t, CodeBusy, tb.token(t, appA, secretA).ErrCode)
			// An answer that is not WeChat's (no errcode) never counts.
			require.NoError(t, tb.sim.SetFaults(Faults{AppID: appA, HTTPStatus: http.StatusBadGateway}))
			resp, _, err := credentialCalls[0].raw(t, tb, "")
			require.NoError(t, err)
			require.Equal(t, http.StatusBadGateway, resp.StatusCode)
			require.NoError(t, tb.sim.SetFaults(Faults{AppID: appA, Clear: true}))

			require.Equal(t, tt.wantUsed, tb.stats(t, appA).QuotaUsed[APIToken])
			require.Equal(t, tt.wantNext, tb.token(t, appA, secretA).ErrCode)
			require.Zero(t, tb.stats(t, appB).QuotaUsed[APIToken], "other appids are untouched")
		})
	}
}
