package wechatsim

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	corpX      = "ww_corp_x"
	appX1      = "wecom_x1"
	secretX1   = "corpsecret_x1"
	appX2      = "wecom_x2"
	secretX2   = "corpsecret_x2"
	appOtherCo = "wecom_y1"
	secretY1   = "corpsecret_y1"
)

// setupWeCom is setup with two apps (agents 1000001 and 1000002) of corpX
// and one app of another corp.
func setupWeCom(t *testing.T, cfg Config) *testBundle {
	t.Helper()
	tb := setup(t, cfg)
	for _, a := range []Account{
		{AppID: appX1, Secret: secretX1, Kind: KindWeComApp, CorpID: corpX, AgentID: 1000001},
		{AppID: appX2, Secret: secretX2, Kind: KindWeComApp, CorpID: corpX, AgentID: 1000002},
		{AppID: appOtherCo, Secret: secretY1, Kind: KindWeComApp, CorpID: "ww_corp_y", AgentID: 1000001},
	} {
		require.NoError(t, tb.client.AddAccount(context.Background(), a))
	}
	return tb
}

func (tb *testBundle) gettoken(t *testing.T, corpID, secret string) wxAnswer {
	t.Helper()
	q := url.Values{}
	if corpID != "" {
		q.Set("corpid", corpID)
	}
	if secret != "" {
		q.Set("corpsecret", secret)
	}
	return tb.do(t, http.MethodGet, WeComPrefix+pathWeComToken, q, "", nil)
}

func (tb *testBundle) mustWeComToken(t *testing.T, corpID, secret string) wxAnswer {
	t.Helper()
	ans := tb.gettoken(t, corpID, secret)
	require.Zero(t, ans.ErrCode, ans.ErrMsg)
	require.Equal(t, "ok", ans.ErrMsg)
	require.NotEmpty(t, ans.AccessToken)
	return ans
}

func (tb *testBundle) corpTicket(t *testing.T, token string) wxAnswer {
	t.Helper()
	return tb.do(t, http.MethodGet, WeComPrefix+pathWeComJSAPITicket, url.Values{"access_token": {token}}, "", nil)
}

func (tb *testBundle) agentTicket(t *testing.T, token string) wxAnswer {
	t.Helper()
	return tb.do(t, http.MethodGet, WeComPrefix+pathWeComAgentTicket,
		url.Values{"access_token": {token}, "type": {TicketAgentConfig}}, "", nil)
}

func (tb *testBundle) useWeCom(t *testing.T, token string) int {
	t.Helper()
	code, err := tb.client.UseWeCom(context.Background(), token)
	require.NoError(t, err)
	return code
}

func TestWeComGetTokenAnswers(t *testing.T) {
	tests := []struct {
		name, corpID, secret string
		wantCode             int
		wantApp              string // the app the call is counted for; "" for unattributed
	}{
		{name: "first agent", corpID: corpX, secret: secretX1, wantApp: appX1},
		{name: "second agent", corpID: corpX, secret: secretX2, wantApp: appX2},
		{name: "secret of another corp's app", corpID: corpX, secret: secretY1, wantCode: CodeInvalidCredential},
		{name: "wrong secret", corpID: corpX, secret: "nope", wantCode: CodeInvalidCredential},
		{name: "unknown corp", corpID: "ww_nobody", secret: secretX1, wantCode: CodeInvalidAppID},
		{name: "missing corpid", secret: secretX1, wantCode: CodeMissingAppID},
		{name: "missing corpsecret", corpID: corpX, wantCode: CodeMissingCorpSecret},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setupWeCom(t, Config{})
			ans := tb.gettoken(t, tt.corpID, tt.secret)
			require.Equal(t, tt.wantCode, ans.ErrCode, ans.ErrMsg)
			require.Contains(t, ans.Raw, "errcode", "WeCom answers carry errcode, success included")
			st := tb.sim.Stats("")
			if tt.wantCode != 0 {
				require.Empty(t, ans.AccessToken)
				require.Zero(t, st.Totals.TokensIssued)
				require.EqualValues(t, 1, st.Totals.Unattributed.Calls[APIWeComToken])
				return
			}
			require.Equal(t, 7200, ans.ExpiresIn)
			require.EqualValues(t, 1, st.Accounts[tt.wantApp].TokensIssuedByKind[TokenKindWeCom])
			require.EqualValues(t, 1, st.Accounts[tt.wantApp].Calls[APIWeComToken])
			require.Equal(t, 0, tb.useWeCom(t, ans.AccessToken))
		})
	}
}

func TestWeComAgentsOfOneCorpHaveTheirOwnTokens(t *testing.T) {
	tb := setupWeCom(t, Config{})
	t1 := tb.mustWeComToken(t, corpX, secretX1).AccessToken
	t2 := tb.mustWeComToken(t, corpX, secretX2).AccessToken
	require.NotEqual(t, t1, t2)
	// Three more tokens of the second agent leave the first agent's alone.
	for range 3 {
		tb.mustWeComToken(t, corpX, secretX2)
	}
	tb.clock.Add(DefaultOverlap)
	require.Equal(t, 0, tb.useWeCom(t, t1))
	require.Equal(t, CodeInvalidAccessToken, tb.useWeCom(t, t2))
}

func TestWeComTokenRotatesLikeAClassicTokenByDefault(t *testing.T) {
	tb := setupWeCom(t, Config{})
	first := tb.mustWeComToken(t, corpX, secretX1).AccessToken
	second := tb.mustWeComToken(t, corpX, secretX1).AccessToken
	require.NotEqual(t, first, second)
	tb.clock.Add(DefaultOverlap - time.Second)
	require.Equal(t, 0, tb.useWeCom(t, first), "the superseded token overlaps")
	third := tb.mustWeComToken(t, corpX, secretX1).AccessToken
	require.Equal(t, CodeInvalidAccessToken, tb.useWeCom(t, first), "one superseded token survives, not two")
	require.Equal(t, 0, tb.useWeCom(t, second))
	tb.clock.Add(DefaultOverlap)
	require.Equal(t, CodeInvalidAccessToken, tb.useWeCom(t, second))
	require.Equal(t, 0, tb.useWeCom(t, third))
}

func TestWeComSameTokenWhileValid(t *testing.T) {
	tb := setupWeCom(t, Config{WeCom: WeComConfig{SameToken: true}})
	first := tb.mustWeComToken(t, corpX, secretX1)
	tb.clock.Add(time.Hour)
	again := tb.mustWeComToken(t, corpX, secretX1)
	require.Equal(t, first.AccessToken, again.AccessToken)
	require.Equal(t, 3600, again.ExpiresIn)
	tb.clock.Add(time.Hour)
	next := tb.mustWeComToken(t, corpX, secretX1)
	require.NotEqual(t, first.AccessToken, next.AccessToken, "an expired token is replaced")
	require.Equal(t, 7200, next.ExpiresIn)
	require.EqualValues(t, 2, tb.stats(t, appX1).TokensIssued)
}

func TestWeComExpiredTokenCode(t *testing.T) {
	tests := []struct {
		name        string
		expiredCode int
		want        int
	}{
		{name: "default", want: CodeInvalidAccessToken},
		{name: "42001 setting", expiredCode: CodeTokenExpired, want: CodeTokenExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setupWeCom(t, Config{WeCom: WeComConfig{ExpiredCode: tt.expiredCode}})
			tok := tb.mustWeComToken(t, corpX, secretX1).AccessToken
			tb.clock.Add(DefaultTokenTTL - time.Second)
			require.Equal(t, 0, tb.useWeCom(t, tok))
			tb.clock.Add(time.Second)
			require.Equal(t, tt.want, tb.useWeCom(t, tok))
			require.Equal(t, tt.want, tb.agentTicket(t, tok).ErrCode)
			require.EqualValues(t, 2, tb.stats(t, appX1).UsesRejected[tt.want])
		})
	}
}

func TestWeComAndWeChatTokensAreApart(t *testing.T) {
	tb := setupWeCom(t, Config{})
	wecomTok := tb.mustWeComToken(t, corpX, secretX1).AccessToken
	wechatTok := tb.mustToken(t, appA, secretA)
	require.Equal(t, CodeInvalidCredential, tb.use(t, wecomTok), "WeChat does not know WeCom tokens")
	require.Equal(t, CodeInvalidAccessToken, tb.useWeCom(t, wechatTok), "WeCom does not know WeChat tokens")
	require.Equal(t, CodeInvalidCredential, tb.ticket(t, wecomTok, TicketJSAPI).ErrCode)
	require.Equal(t, CodeInvalidAccessToken, tb.corpTicket(t, wechatTok).ErrCode)
}

func TestWeComTicketLimitsPerWindow(t *testing.T) {
	tests := []struct {
		name  string
		fetch func(tb *testBundle, t *testing.T, token string) wxAnswer
		// apps fetch in turn; the limit is per corp for the corp ticket, per
		// app for the agent ticket.
		limitPerCorp bool
	}{
		{name: "corp jsapi ticket", fetch: (*testBundle).corpTicket, limitPerCorp: true},
		{name: "agent_config ticket", fetch: (*testBundle).agentTicket},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const limit = 4
			tb := setupWeCom(t, Config{WeCom: WeComConfig{CorpTicketLimit: limit, AgentTicketLimit: limit, Window: 10 * time.Minute}})
			// 10:00 in China sits on a window boundary.
			tok1 := tb.mustWeComToken(t, corpX, secretX1).AccessToken
			tok2 := tb.mustWeComToken(t, corpX, secretX2).AccessToken
			other := tb.mustWeComToken(t, "ww_corp_y", secretY1).AccessToken
			for i := range limit {
				ans := tt.fetch(tb, t, tok1)
				require.Zero(t, ans.ErrCode, "call %d: %s", i+1, ans.ErrMsg)
				require.NotEmpty(t, ans.Ticket)
				require.Equal(t, 7200, ans.ExpiresIn)
			}
			require.Equal(t, CodeWeComTicketLimit, tt.fetch(tb, t, tok1).ErrCode)
			second := tt.fetch(tb, t, tok2)
			if tt.limitPerCorp {
				require.Equal(t, CodeWeComTicketLimit, second.ErrCode, "the corp's limit covers all its apps")
			} else {
				require.Zero(t, second.ErrCode, "another app of the corp has its own limit")
			}
			require.Zero(t, tt.fetch(tb, t, other).ErrCode, "another corp has its own limit")

			st := tb.stats(t, appX1)
			require.NotNil(t, st.WeCom)
			require.Equal(t, corpX, st.WeCom.CorpID)
			require.EqualValues(t, 1000001, st.WeCom.AgentID)
			if tt.limitPerCorp {
				require.Equal(t, limit, st.WeCom.CorpTicketCalls)
			} else {
				require.Equal(t, limit, st.WeCom.AgentTicketCalls)
			}
			require.EqualValues(t, 1, st.Errors[map[bool]string{true: APIWeComJSAPITicket, false: APIWeComAgentTicket}[tt.limitPerCorp]][CodeWeComTicketLimit])

			tb.clock.Add(10*time.Minute - time.Second)
			require.Equal(t, CodeWeComTicketLimit, tt.fetch(tb, t, tok1).ErrCode, "still the same window")
			tb.clock.Add(time.Second)
			require.Zero(t, tt.fetch(tb, t, tok1).ErrCode, "a new window has a new allowance")
			st = tb.stats(t, appX1)
			require.Equal(t, tb.clock.Now(), st.WeCom.WindowStart)
		})
	}
}

func TestWeComJSSDKSignatures(t *testing.T) {
	tb := setupWeCom(t, Config{})
	tok1 := tb.mustWeComToken(t, corpX, secretX1).AccessToken
	tok2 := tb.mustWeComToken(t, corpX, secretX2).AccessToken
	corpTicket := tb.corpTicket(t, tok1).Ticket
	agentTicket := tb.agentTicket(t, tok1).Ticket
	require.NotEmpty(t, corpTicket)
	require.NotEmpty(t, agentTicket)

	withTicket := func(appid, ticket, which string) JSSDKCheck {
		c := signed(appid, ticket)
		c.Ticket = which
		return c
	}
	ok, reason := tb.verify(t, withTicket(appX1, corpTicket, ""))
	require.True(t, ok, reason)
	ok, reason = tb.verify(t, withTicket(appX2, corpTicket, TicketJSAPI))
	require.True(t, ok, "the corp ticket is the corp's, whichever app fetched it: %s", reason)
	ok, reason = tb.verify(t, withTicket(appX1, agentTicket, TicketAgentConfig))
	require.True(t, ok, reason)
	ok, reason = tb.verify(t, withTicket(appX2, agentTicket, TicketAgentConfig))
	require.False(t, ok, "an agent ticket is its app's only")
	require.Equal(t, JSSDKReasonNoTicket, reason)
	ok, _ = tb.verify(t, withTicket(appX1, agentTicket, ""))
	require.False(t, ok, "wx.config needs the corp ticket")

	// Two apps that each fetch "their" corp ticket kill each other's.
	tb.corpTicket(t, tok2)
	tb.corpTicket(t, tok2)
	ok, reason = tb.verify(t, withTicket(appX1, corpTicket, ""))
	require.False(t, ok)
	require.Equal(t, JSSDKReasonTicketSuperseded, reason)
}

func TestWeComAccountValidation(t *testing.T) {
	tests := []struct {
		name string
		in   Account
	}{
		{name: "no corpid", in: Account{AppID: "w1", Secret: "s", Kind: KindWeComApp, AgentID: 1}},
		{name: "no agentid", in: Account{AppID: "w1", Secret: "s", Kind: KindWeComApp, CorpID: corpX}},
		{name: "agent taken", in: Account{AppID: "w1", Secret: "s", Kind: KindWeComApp, CorpID: corpX, AgentID: 1000001}},
		{name: "corp on another kind", in: Account{AppID: "w1", Secret: "s", Kind: KindOfficialAccount, CorpID: corpX}},
		{name: "moving an app to another corp", in: Account{AppID: appX1, Secret: "s", CorpID: "ww_other"}},
		{name: "a WeChat account turned WeCom later", in: Account{AppID: appA, Secret: "s", CorpID: corpX}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setupWeCom(t, Config{})
			require.ErrorIs(t, tb.sim.AddAccount(tt.in), ErrInvalidAccount)
			if tt.in.AppID == "w1" {
				for _, a := range tb.sim.Accounts() {
					require.NotEqual(t, "w1", a.AppID, "a refused account is not kept")
				}
			}
		})
	}
	tb := setupWeCom(t, Config{})
	require.NoError(t, tb.sim.AddAccount(Account{AppID: appX1, Secret: "rotated"}), "a secret can change")
	require.Equal(t, CodeInvalidCredential, tb.gettoken(t, corpX, secretX1).ErrCode)
	tb.mustWeComToken(t, corpX, "rotated")
	var got Account
	for _, a := range tb.sim.Accounts() {
		if a.AppID == appX1 {
			got = a
		}
	}
	require.Equal(t, Account{AppID: appX1, Kind: KindWeComApp, CorpID: corpX, AgentID: 1000001, Quotas: got.Quotas}, got)
}
