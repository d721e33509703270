package wechatsim

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStableTokenErrors(t *testing.T) {
	body := func(grant, appid, secret string) map[string]any {
		return map[string]any{"grant_type": grant, "appid": appid, "secret": secret, "force_refresh": false}
	}
	tests := []struct {
		name        string
		method      string
		contentType string
		raw         string // raw body, used when set
		body        map[string]any
		wantCode    int
	}{
		{name: "wrong secret answers 40001, not 40125", body: body("client_credential", appA, "nope"), wantCode: CodeInvalidCredential},
		{name: "unknown appid", body: body("client_credential", "wx_nobody", secretA), wantCode: CodeInvalidAppID},
		{name: "missing appid", body: body("client_credential", "", secretA), wantCode: CodeMissingAppID},
		{name: "missing secret", body: body("client_credential", appA, ""), wantCode: CodeMissingSecret},
		{name: "bad grant_type", body: body("authorization_code", appA, secretA), wantCode: CodeInvalidGrantType},
		{name: "malformed JSON", raw: `{"appid":`, wantCode: CodeDataFormat},
		{name: "force_refresh not a bool", raw: `{"grant_type":"client_credential","appid":"wx_a","secret":"secret_a","force_refresh":"yes"}`, wantCode: CodeDataFormat},
		{name: "empty body", raw: " ", wantCode: CodeDataFormat},
		{name: "GET", method: http.MethodGet, wantCode: CodeRequirePOST},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			var ans wxAnswer
			switch {
			case tt.method != "":
				ans = tb.do(t, tt.method, pathStableToken, nil, "", nil)
			case tt.raw != "":
				ans = tb.do(t, http.MethodPost, pathStableToken, nil, "application/json", []byte(tt.raw))
			default:
				ans = tb.postJSON(t, pathStableToken, nil, tt.body)
			}
			require.Equal(t, tt.wantCode, ans.ErrCode, ans.ErrMsg)
			require.Contains(t, ans.ErrMsg, " rid: ")
			require.Empty(t, ans.AccessToken)
			require.Zero(t, tb.sim.Stats("").Totals.TokensIssued)
		})
	}
}

func TestStableNormalModeReturnsSameTokenWithDecreasingExpiresIn(t *testing.T) {
	tb := setup(t, Config{})
	first := tb.mustStable(t, appA, secretA, false)
	require.NotContains(t, first.Raw, "errcode")
	require.Equal(t, 7200, first.ExpiresIn)

	tests := []struct {
		at            time.Duration
		wantExpiresIn int
	}{
		{at: 0, wantExpiresIn: 7200},
		{at: 1 * time.Second, wantExpiresIn: 7199},
		{at: 60 * time.Second, wantExpiresIn: 7140},
		{at: time.Hour, wantExpiresIn: 3600},
		{at: 6899 * time.Second, wantExpiresIn: 301},
	}
	for _, tt := range tests {
		tb.clock.Set(t0.Add(tt.at))
		ans := tb.mustStable(t, appA, secretA, false)
		require.Equal(t, first.AccessToken, ans.AccessToken, "at %v", tt.at)
		require.Equal(t, tt.wantExpiresIn, ans.ExpiresIn, "at %v", tt.at)
	}
	as := tb.stats(t, appA)
	require.Equal(t, int64(1), as.TokensIssued, "repeated normal calls issue nothing")
	require.Equal(t, int64(len(tests)+1), as.Calls[APIStableToken])
	require.Equal(t, len(tests)+1, as.QuotaUsed[APIStableToken], "a call that returns the current token still counts against the quota")
}

func TestStableNormalModeRotatesInLastOverlapWindow(t *testing.T) {
	tb := setup(t, Config{})
	old := tb.mustStable(t, appA, secretA, false).AccessToken

	// 300 s left: inside the last window, a fresh token with a full lifetime.
	tb.clock.Set(t0.Add(6900 * time.Second))
	fresh := tb.mustStable(t, appA, secretA, false)
	require.NotEqual(t, old, fresh.AccessToken)
	require.Equal(t, 7200, fresh.ExpiresIn)

	// Later calls in the window return the fresh one: one new token per cycle.
	tb.clock.Set(t0.Add(7000 * time.Second))
	again := tb.mustStable(t, appA, secretA, false)
	require.Equal(t, fresh.AccessToken, again.AccessToken)
	require.Equal(t, 7100, again.ExpiresIn)

	// The old token was not cut: it works until its own expiry and then
	// expires (42001), it was never superseded (40001).
	tb.clock.Set(t0.Add(7199 * time.Second))
	require.Equal(t, 0, tb.use(t, old))
	require.Equal(t, 0, tb.use(t, fresh.AccessToken))
	tb.clock.Set(t0.Add(7200 * time.Second))
	require.Equal(t, CodeTokenExpired, tb.use(t, old))
	require.Equal(t, 0, tb.use(t, fresh.AccessToken))
}

func TestStableExpiresInNeverBelowOverlapAndOneTokenPerCycle(t *testing.T) {
	cfgs := []struct {
		name string
		cfg  Config
	}{
		{name: "WeChat defaults", cfg: Config{}},
		{name: "short lifetime", cfg: Config{TokenTTL: 60 * time.Second, Overlap: 10 * time.Second}},
	}
	for _, c := range cfgs {
		t.Run(c.name, func(t *testing.T) {
			tb := setup(t, c.cfg)
			cfg := tb.sim.cfg
			step := cfg.TokenTTL / 97 // not a divisor, so calls land everywhere in the cycle
			cycles := 5
			var prev string
			for at := time.Duration(0); at < time.Duration(cycles)*cfg.TokenTTL; at += step {
				tb.clock.Set(t0.Add(at))
				ans := tb.mustStable(t, appA, secretA, false)
				require.GreaterOrEqual(t, ans.ExpiresIn, seconds(cfg.Overlap), "at %v", at)
				require.LessOrEqual(t, ans.ExpiresIn, seconds(cfg.TokenTTL), "at %v", at)
				if prev != "" && ans.AccessToken != prev {
					require.Equal(t, 0, tb.use(t, prev), "the previous token still works at the rotation (%v)", at)
				}
				prev = ans.AccessToken
			}
			as := tb.stats(t, appA)
			times := as.TokenIssueTimes
			require.Len(t, times, int(as.TokensIssued))
			for i := 1; i < len(times); i++ {
				require.GreaterOrEqual(t, times[i].Sub(times[i-1]), cfg.TokenTTL-cfg.Overlap,
					"tokens %d and %d were issued in the same refresh cycle", i-1, i)
			}
			require.InDelta(t, float64(cycles)*float64(cfg.TokenTTL)/float64(cfg.TokenTTL-cfg.Overlap), float64(len(times)), 1)
		})
	}
}

func TestStableForceKillsPreviousAtOnceUnlessForceGrace(t *testing.T) {
	tests := []struct {
		name    string
		grace   bool
		after   time.Duration // since the force
		wantOld int
	}{
		{name: "default: dead right at the force", after: 0, wantOld: CodeInvalidCredential},
		{name: "grace: during overlap", grace: true, after: 299 * time.Second, wantOld: 0},
		{name: "grace: after overlap", grace: true, after: 300 * time.Second, wantOld: CodeInvalidCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{ForceGrace: tt.grace})
			old := tb.mustStable(t, appA, secretA, false).AccessToken
			tb.clock.Add(time.Minute)
			forced := tb.mustStable(t, appA, secretA, true)
			require.NotEqual(t, old, forced.AccessToken)
			require.Equal(t, 7200, forced.ExpiresIn)
			tb.clock.Add(tt.after)
			require.Equal(t, tt.wantOld, tb.use(t, old))
			require.Equal(t, 0, tb.use(t, forced.AccessToken))
			// Normal mode now returns the forced token.
			require.Equal(t, forced.AccessToken, tb.mustStable(t, appA, secretA, false).AccessToken)
		})
	}
}

func TestStableForceAlsoKillsTokenFromLastWindow(t *testing.T) {
	// In the last window both the old and the new stable token live; a force
	// supersedes both: at once by default, and under ForceGrace each dies at
	// min(own expiry, force+overlap).
	type step struct {
		at      time.Duration
		a, b, c int
	}
	tests := []struct {
		name  string
		grace bool
		steps []step
	}{
		{name: "default", steps: []step{
			{at: 7000 * time.Second, a: CodeInvalidCredential, b: CodeInvalidCredential, c: 0},
		}},
		{name: "grace", grace: true, steps: []step{
			{at: 7199 * time.Second, a: 0, b: 0, c: 0},
			{at: 7200 * time.Second, a: CodeInvalidCredential, b: 0, c: 0},
			{at: 7299 * time.Second, a: CodeInvalidCredential, b: 0, c: 0},
			{at: 7300 * time.Second, a: CodeInvalidCredential, b: CodeInvalidCredential, c: 0},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{ForceGrace: tt.grace})
			a := tb.mustStable(t, appA, secretA, false).AccessToken // expires at 7200 s
			tb.clock.Set(t0.Add(6950 * time.Second))
			b := tb.mustStable(t, appA, secretA, false).AccessToken
			require.NotEqual(t, a, b)
			tb.clock.Set(t0.Add(7000 * time.Second))
			c := tb.mustStable(t, appA, secretA, true).AccessToken
			for _, st := range tt.steps {
				tb.clock.Set(t0.Add(st.at))
				require.Equal(t, st.a, tb.use(t, a), "a at %v", st.at)
				require.Equal(t, st.b, tb.use(t, b), "b at %v", st.at)
				require.Equal(t, st.c, tb.use(t, c), "c at %v", st.at)
			}
		})
	}
}

func TestStableForceSpacingCountsEveryForceCall(t *testing.T) {
	// Forces at these offsets, with the default 30 s spacing and a daily
	// limit of 2 refreshing forces. A force inside the spacing does not
	// refresh and does not use up the limit, but it restarts the spacing.
	tests := []struct {
		at          time.Duration
		wantRefresh bool
		wantCode    int
	}{
		{at: 0, wantRefresh: true},
		{at: 20 * time.Second},                               // 20 s after a refresh
		{at: 40 * time.Second},                               // 40 s after the refresh, but 20 s after the last force call
		{at: 69 * time.Second},                               // 29 s after the last call
		{at: 99 * time.Second, wantRefresh: true},            // 30 s after the last call: the limit's second force
		{at: 200 * time.Second, wantCode: CodeQuotaExceeded}, // the non-refreshing ones did not use the limit up
	}
	tb := setup(t, Config{ForceDailyLimit: 2})
	cur := ""
	for _, tt := range tests {
		tb.clock.Set(t0.Add(tt.at))
		ans := tb.stable(t, appA, secretA, true)
		require.Equal(t, tt.wantCode, ans.ErrCode, "force at %v: %s", tt.at, ans.ErrMsg)
		if tt.wantCode != 0 {
			continue
		}
		require.Equal(t, tt.wantRefresh, ans.AccessToken != cur, "force at %v", tt.at)
		cur = ans.AccessToken
	}
	as := tb.stats(t, appA)
	require.Equal(t, int64(2), as.ForcedRefreshes)
	require.Equal(t, int64(2), as.TokensIssued)
}

func TestStableForceWithinMinIntervalDoesNotRefresh(t *testing.T) {
	tests := []struct {
		name        string
		gap         time.Duration
		wantRefresh bool
	}{
		{name: "10 s later", gap: 10 * time.Second, wantRefresh: false},
		{name: "29 s later", gap: 29 * time.Second, wantRefresh: false},
		{name: "30 s later", gap: 30 * time.Second, wantRefresh: true},
		{name: "an hour later", gap: time.Hour, wantRefresh: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			first := tb.mustStable(t, appA, secretA, true).AccessToken
			tb.clock.Add(tt.gap)
			second := tb.mustStable(t, appA, secretA, true)
			as := tb.stats(t, appA)
			if tt.wantRefresh {
				require.NotEqual(t, first, second.AccessToken)
				require.Equal(t, int64(2), as.ForcedRefreshes)
				return
			}
			require.Equal(t, first, second.AccessToken)
			require.Equal(t, 7200-seconds(tt.gap), second.ExpiresIn, "answers like normal mode")
			require.Equal(t, int64(1), as.ForcedRefreshes)
			require.Equal(t, int64(1), as.TokensIssued)
			tb.clock.Add(time.Hour)
			require.Equal(t, 0, tb.use(t, first), "a force that did not refresh kills nothing")
		})
	}
}

func TestStableForceMinIntervalIsConfigurable(t *testing.T) {
	tb := setup(t, Config{ForceMinInterval: -1})
	first := tb.mustStable(t, appA, secretA, true).AccessToken
	second := tb.mustStable(t, appA, secretA, true).AccessToken
	require.NotEqual(t, first, second, "with the spacing rule disabled every force refreshes")
}

func TestStableForceDailyLimitResetsOnNewChinaDay(t *testing.T) {
	tests := []struct {
		name  string
		limit int
		want  int
	}{
		{name: "default 20", limit: 0, want: DefaultForceDailyLimit},
		{name: "configured 3", limit: 3, want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{ForceDailyLimit: tt.limit})
			// 10:00 in China; the next China day starts at 16:00 UTC.
			start := time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)
			tb.clock.Set(start)
			var last string
			for i := range tt.want {
				ans := tb.mustStable(t, appA, secretA, true)
				require.NotEqual(t, last, ans.AccessToken, "force %d refreshes", i+1)
				last = ans.AccessToken
				tb.clock.Add(31 * time.Second)
			}
			over := tb.stable(t, appA, secretA, true)
			require.Equal(t, CodeQuotaExceeded, over.ErrCode)
			require.Contains(t, over.ErrMsg, "reach max api daily quota limit")

			as := tb.stats(t, appA)
			require.Equal(t, int64(tt.want), as.ForcedRefreshes)
			require.Equal(t, int64(tt.want), as.TokensIssued, "the refused force issued nothing")
			require.Equal(t, tt.want, as.QuotaUsed[APIStableToken], "the refused force does not count against the quota")
			require.Equal(t, last, tb.mustStable(t, appA, secretA, false).AccessToken, "normal mode still works")

			tb.clock.Set(time.Date(2026, 3, 10, 15, 59, 59, 0, time.UTC))
			require.Equal(t, CodeQuotaExceeded, tb.stable(t, appA, secretA, true).ErrCode, "still the same China day")
			tb.clock.Set(time.Date(2026, 3, 10, 16, 0, 0, 0, time.UTC))
			require.NotEqual(t, last, tb.mustStable(t, appA, secretA, true).AccessToken, "a new China day resets the force limit")
		})
	}
}

func TestClassicAndStableTokensAreIsolated(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, tb *testBundle)
	}{
		{name: "classic refreshes do not kill a stable token", run: func(t *testing.T, tb *testBundle) {
			s := tb.mustStable(t, appA, secretA, false).AccessToken
			tb.mustToken(t, appA, secretA)
			tb.mustToken(t, appA, secretA)
			tb.clock.Add(time.Hour)
			require.Equal(t, 0, tb.use(t, s))
			require.Equal(t, s, tb.mustStable(t, appA, secretA, false).AccessToken, "normal mode still returns the same stable token")
		}},
		{name: "a stable force does not kill a classic token", run: func(t *testing.T, tb *testBundle) {
			c := tb.mustToken(t, appA, secretA)
			tb.mustStable(t, appA, secretA, false)
			tb.mustStable(t, appA, secretA, true)
			tb.clock.Add(time.Hour)
			require.Equal(t, 0, tb.use(t, c))
		}},
		{name: "a stable rotation does not kill a classic token", run: func(t *testing.T, tb *testBundle) {
			tb.mustStable(t, appA, secretA, false)
			c := tb.mustToken(t, appA, secretA)
			tb.clock.Set(t0.Add(6950 * time.Second))
			tb.mustStable(t, appA, secretA, false)
			tb.clock.Set(t0.Add(7199 * time.Second))
			require.Equal(t, 0, tb.use(t, c))
		}},
		{name: "classic tokens are not returned by stable_token", run: func(t *testing.T, tb *testBundle) {
			c := tb.mustToken(t, appA, secretA)
			require.NotEqual(t, c, tb.mustStable(t, appA, secretA, false).AccessToken)
		}},
		{name: "quotas are counted separately", run: func(t *testing.T, tb *testBundle) {
			tb.mustToken(t, appA, secretA)
			tb.mustStable(t, appA, secretA, false)
			tb.mustStable(t, appA, secretA, false)
			as := tb.stats(t, appA)
			require.Equal(t, 1, as.QuotaUsed[APIToken])
			require.Equal(t, 2, as.QuotaUsed[APIStableToken])
			require.Equal(t, int64(1), as.TokensIssuedByKind[TokenKindClassic])
			require.Equal(t, int64(1), as.TokensIssuedByKind[TokenKindStable])
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.run(t, setup(t, Config{}))
		})
	}
}
