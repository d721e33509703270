package wechatsim

import (
	"net/http"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var urlSafe = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func TestClassicTokenAnswerHasWeChatShape(t *testing.T) {
	tb := setup(t, Config{})
	seen := map[string]bool{}
	for range 20 {
		ans := tb.token(t, appA, secretA)
		require.NotContains(t, ans.Raw, "errcode", "a successful token answer has no errcode field")
		require.Equal(t, 7200, ans.ExpiresIn)
		require.GreaterOrEqual(t, len(ans.AccessToken), 130)
		require.LessOrEqual(t, len(ans.AccessToken), 160)
		require.Regexp(t, urlSafe, ans.AccessToken)
		require.False(t, seen[ans.AccessToken], "every call issues a new token")
		seen[ans.AccessToken] = true
	}
}

func TestClassicTokenExpiresInFollowsConfiguredTTL(t *testing.T) {
	tb := setup(t, Config{TokenTTL: 60 * time.Second, Overlap: 10 * time.Second})
	ans := tb.token(t, appA, secretA)
	require.Equal(t, 60, ans.ExpiresIn)
	tb.clock.Add(59 * time.Second)
	require.Equal(t, 0, tb.use(t, ans.AccessToken))
	tb.clock.Add(time.Second)
	require.Equal(t, CodeTokenExpired, tb.use(t, ans.AccessToken))
}

func TestOldClassicTokenAcceptedDuringOverlapThenRejected(t *testing.T) {
	tests := []struct {
		name    string
		after   time.Duration // time since the refresh
		wantOld int
	}{
		{name: "right after refresh", after: 0, wantOld: 0},
		{name: "last second of overlap", after: 299 * time.Second, wantOld: 0},
		{name: "overlap ended", after: 300 * time.Second, wantOld: CodeInvalidCredential},
		{name: "past the old token's natural expiry", after: 2 * time.Hour, wantOld: CodeInvalidCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			old := tb.mustToken(t, appA, secretA)
			tb.clock.Add(time.Hour)
			fresh := tb.mustToken(t, appA, secretA)
			tb.clock.Add(tt.after)
			require.Equal(t, tt.wantOld, tb.use(t, old))
			if tt.after < time.Hour {
				require.Equal(t, 0, tb.use(t, fresh))
			}
		})
	}
}

func TestSupersededTokenDiesAtItsOwnExpiryWhenSooner(t *testing.T) {
	// Refreshed 100 s before the old token's natural expiry: the old one dies
	// at min(expiry, now+overlap) = its expiry, and answers 40001 because it
	// was superseded.
	tb := setup(t, Config{})
	old := tb.mustToken(t, appA, secretA)
	tb.clock.Add(7100 * time.Second)
	tb.mustToken(t, appA, secretA)
	tb.clock.Add(99 * time.Second)
	require.Equal(t, 0, tb.use(t, old))
	tb.clock.Add(time.Second)
	require.Equal(t, CodeInvalidCredential, tb.use(t, old))
}

func TestEachSupersededTokenDiesOverlapAfterItsSuccessor(t *testing.T) {
	// Two survivors, so that the survivor rule kills nothing here.
	tb := setup(t, Config{ClassicSurvivors: 2})
	a := tb.mustToken(t, appA, secretA)
	tb.clock.Add(100 * time.Second)
	b := tb.mustToken(t, appA, secretA) // a dies at 400 s
	tb.clock.Add(100 * time.Second)
	c := tb.mustToken(t, appA, secretA) // b dies at 500 s; a keeps 400 s

	steps := []struct {
		at      time.Duration
		a, b, c int
	}{
		{at: 399 * time.Second, a: 0, b: 0, c: 0},
		{at: 400 * time.Second, a: CodeInvalidCredential, b: 0, c: 0},
		{at: 499 * time.Second, a: CodeInvalidCredential, b: 0, c: 0},
		{at: 500 * time.Second, a: CodeInvalidCredential, b: CodeInvalidCredential, c: 0},
	}
	for _, st := range steps {
		tb.clock.Set(t0.Add(st.at))
		require.Equal(t, st.a, tb.use(t, a), "a at %v", st.at)
		require.Equal(t, st.b, tb.use(t, b), "b at %v", st.at)
		require.Equal(t, st.c, tb.use(t, c), "c at %v", st.at)
	}
}

func TestThirdClassicFetchKillsTheFirstAtOnceByDefault(t *testing.T) {
	tb := setup(t, Config{})
	a := tb.mustToken(t, appA, secretA)
	tb.clock.Add(10 * time.Second)
	b := tb.mustToken(t, appA, secretA)
	tb.clock.Add(10 * time.Second)
	require.Equal(t, 0, tb.use(t, a), "one superseded token lives beside the current one")
	c := tb.mustToken(t, appA, secretA) // at 20 s: b superseded, a one too many

	steps := []struct {
		at      time.Duration
		a, b, c int
	}{
		{at: 20 * time.Second, a: CodeInvalidCredential, b: 0, c: 0},
		{at: 319 * time.Second, a: CodeInvalidCredential, b: 0, c: 0},
		{at: 320 * time.Second, a: CodeInvalidCredential, b: CodeInvalidCredential, c: 0},
	}
	for _, st := range steps {
		tb.clock.Set(t0.Add(st.at))
		require.Equal(t, st.a, tb.use(t, a), "a at %v", st.at)
		require.Equal(t, st.b, tb.use(t, b), "b at %v", st.at)
		require.Equal(t, st.c, tb.use(t, c), "c at %v", st.at)
	}
}

func TestClassicSurvivorsBoundsLiveSupersededTokens(t *testing.T) {
	tests := []struct {
		name      string
		survivors int
		fetches   int
		want      []int // each token's answer right after the last fetch, oldest first
	}{
		{name: "default, three fetches", fetches: 3, want: []int{CodeInvalidCredential, 0, 0}},
		{name: "default, four fetches", fetches: 4, want: []int{CodeInvalidCredential, CodeInvalidCredential, 0, 0}},
		{name: "negative means the default", survivors: -1, fetches: 3, want: []int{CodeInvalidCredential, 0, 0}},
		{name: "two survivors", survivors: 2, fetches: 4, want: []int{CodeInvalidCredential, 0, 0, 0}},
		{name: "three survivors keep three alive", survivors: 3, fetches: 4, want: []int{0, 0, 0, 0}},
		{name: "three survivors, five fetches", survivors: 3, fetches: 5, want: []int{CodeInvalidCredential, 0, 0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{ClassicSurvivors: tt.survivors})
			var toks []string
			for range tt.fetches {
				toks = append(toks, tb.mustToken(t, appA, secretA))
				tb.clock.Add(time.Second) // all well inside one overlap
			}
			got := make([]int, len(toks))
			for i, tok := range toks {
				got[i] = tb.use(t, tok)
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestTokenNeverSupersededAnswers42001AfterNaturalExpiry(t *testing.T) {
	tests := []struct {
		name    string
		fetch   func(t *testing.T, tb *testBundle) string
		refresh func(t *testing.T, tb *testBundle) string // a refresh that would supersede a live token
	}{
		{
			name:    "classic",
			fetch:   func(t *testing.T, tb *testBundle) string { return tb.mustToken(t, appA, secretA) },
			refresh: func(t *testing.T, tb *testBundle) string { return tb.mustToken(t, appA, secretA) },
		},
		{
			name:    "stable",
			fetch:   func(t *testing.T, tb *testBundle) string { return tb.mustStable(t, appA, secretA, false).AccessToken },
			refresh: func(t *testing.T, tb *testBundle) string { return tb.mustStable(t, appA, secretA, true).AccessToken },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			tok := tt.fetch(t, tb)
			tb.clock.Add(7199 * time.Second)
			require.Equal(t, 0, tb.use(t, tok))
			tb.clock.Add(time.Second)
			require.Equal(t, CodeTokenExpired, tb.use(t, tok))
			tb.clock.Add(time.Hour)
			tt.refresh(t, tb)
			require.Equal(t, CodeTokenExpired, tb.use(t, tok), "a refresh after expiry does not turn 42001 into 40001")
			tb.clock.Add(10 * time.Hour)
			require.Equal(t, CodeTokenExpired, tb.use(t, tok), "an expired token stays expired")
		})
	}
}

func TestClassicTokenErrors(t *testing.T) {
	good := url.Values{"grant_type": {"client_credential"}, "appid": {appA}, "secret": {secretA}}
	with := func(k, v string) url.Values {
		q := url.Values{}
		for kk, vv := range good {
			q[kk] = vv
		}
		if v == "" {
			q.Del(k)
		} else {
			q.Set(k, v)
		}
		return q
	}
	tests := []struct {
		name       string
		method     string
		query      url.Values
		wantCode   int
		wantMsg    string
		attributed bool // counted under wx_a rather than unattributed
	}{
		{name: "unknown appid", query: with("appid", "wx_nobody"), wantCode: CodeInvalidAppID, wantMsg: "invalid appid rid: "},
		{name: "wrong secret", query: with("secret", "nope"), wantCode: CodeInvalidSecret, wantMsg: "invalid appsecret rid: ", attributed: true},
		{name: "bad grant_type", query: with("grant_type", "password"), wantCode: CodeInvalidGrantType, wantMsg: "invalid grant_type", attributed: true},
		{name: "missing grant_type", query: with("grant_type", ""), wantCode: CodeInvalidGrantType, attributed: true},
		{name: "missing appid", query: with("appid", ""), wantCode: CodeMissingAppID, wantMsg: "appid missing"},
		{name: "missing secret", query: with("secret", ""), wantCode: CodeMissingSecret, wantMsg: "appsecret missing", attributed: true},
		{name: "POST", method: http.MethodPost, query: good, wantCode: CodeRequireGET, attributed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			ans := tb.do(t, method, pathToken, tt.query, "", nil)
			require.Equal(t, tt.wantCode, ans.ErrCode)
			require.Contains(t, ans.ErrMsg, tt.wantMsg)
			require.Regexp(t, `rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$`, ans.ErrMsg)
			require.Empty(t, ans.AccessToken)

			st := tb.sim.Stats("")
			require.Zero(t, st.Totals.TokensIssued)
			require.Equal(t, int64(1), st.Totals.Calls[APIToken])
			require.Equal(t, int64(1), st.Totals.Errors[APIToken][tt.wantCode])
			if tt.attributed {
				require.Equal(t, int64(1), st.Accounts[appA].Calls[APIToken])
			} else {
				require.Equal(t, int64(1), st.Totals.Unattributed.Calls[APIToken])
			}
		})
	}
}

func TestRefusedClassicCallDoesNotSupersede(t *testing.T) {
	tb := setup(t, Config{})
	tok := tb.mustToken(t, appA, secretA)
	require.Equal(t, CodeInvalidSecret, tb.token(t, appA, "wrong").ErrCode)
	tb.clock.Add(time.Hour)
	require.Equal(t, 0, tb.use(t, tok), "a refused call must not kill the live token")
}
