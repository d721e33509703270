package wechatsim

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestGetTicket(t *testing.T) {
	tests := []struct {
		name     string
		token    func(t *testing.T, tb *testBundle) string
		typ      string
		wantCode int
	}{
		{name: "jsapi with a live classic token", typ: TicketJSAPI, token: liveClassic},
		{name: "wx_card with a live stable token", typ: TicketWxCard, token: func(t *testing.T, tb *testBundle) string {
			return tb.mustStable(t, appA, secretA, false).AccessToken
		}},
		{name: "superseded token within overlap", typ: TicketJSAPI, token: func(t *testing.T, tb *testBundle) string {
			old := tb.mustToken(t, appA, secretA)
			tb.mustToken(t, appA, secretA)
			tb.clock.Add(299 * time.Second)
			return old
		}},
		{name: "superseded token past overlap", typ: TicketJSAPI, wantCode: CodeInvalidCredential, token: func(t *testing.T, tb *testBundle) string {
			old := tb.mustToken(t, appA, secretA)
			tb.mustToken(t, appA, secretA)
			tb.clock.Add(300 * time.Second)
			return old
		}},
		{name: "naturally expired token", typ: TicketJSAPI, wantCode: CodeTokenExpired, token: func(t *testing.T, tb *testBundle) string {
			tok := tb.mustToken(t, appA, secretA)
			tb.clock.Add(2 * time.Hour)
			return tok
		}},
		{name: "unknown token", typ: TicketJSAPI, wantCode: CodeInvalidCredential, token: func(*testing.T, *testBundle) string {
			return "not-a-token"
		}},
		{name: "missing token", typ: TicketJSAPI, wantCode: CodeMissingAccessToken, token: func(*testing.T, *testBundle) string {
			return ""
		}},
		{name: "bad type", typ: "agent_config", wantCode: CodeInvalidArgs, token: liveClassic},
		{name: "missing type", typ: "", wantCode: CodeInvalidArgs, token: liveClassic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			ans := tb.ticket(t, tt.token(t, tb), tt.typ)
			require.Equal(t, tt.wantCode, ans.ErrCode, ans.ErrMsg)
			st := tb.sim.Stats("")
			if tt.wantCode != 0 {
				require.Empty(t, ans.Ticket)
				require.Zero(t, st.Totals.TicketsIssued[TicketJSAPI]+st.Totals.TicketsIssued[TicketWxCard])
				return
			}
			require.Equal(t, "ok", ans.ErrMsg)
			require.Contains(t, ans.Raw, "errcode", "ticket answers carry errcode 0")
			require.Equal(t, 7200, ans.ExpiresIn)
			require.Regexp(t, urlSafe, ans.Ticket)
			require.Equal(t, int64(1), st.Accounts[appA].TicketsIssued[tt.typ])
		})
	}
}

func liveClassic(t *testing.T, tb *testBundle) string { return tb.mustToken(t, appA, secretA) }

func TestEachGetTicketCallIssuesANewTicket(t *testing.T) {
	tb := setup(t, Config{TokenTTL: 90 * time.Second})
	tok := tb.mustToken(t, appA, secretA)
	seen := map[string]bool{}
	for range 5 {
		ans := tb.ticket(t, tok, TicketJSAPI)
		require.Zero(t, ans.ErrCode)
		require.Equal(t, 90, ans.ExpiresIn, "ticket lifetime follows the token TTL setting")
		require.False(t, seen[ans.Ticket])
		seen[ans.Ticket] = true
	}
	require.Equal(t, int64(5), tb.stats(t, appA).TicketsIssued[TicketJSAPI])
	require.Equal(t, 5, tb.stats(t, appA).QuotaUsed[APIGetTicket])
}

func TestUseEndpointAnswersLikeWeChatAtThatInstant(t *testing.T) {
	tests := []struct {
		name     string
		method   string
		token    func(t *testing.T, tb *testBundle) string
		wantCode int
	}{
		{name: "live token", token: liveClassic},
		{name: "missing token", wantCode: CodeMissingAccessToken, token: func(*testing.T, *testBundle) string { return "" }},
		{name: "unknown token", wantCode: CodeInvalidCredential, token: func(*testing.T, *testBundle) string { return "abc" }},
		{name: "superseded past overlap", wantCode: CodeInvalidCredential, token: func(t *testing.T, tb *testBundle) string {
			old := tb.mustToken(t, appA, secretA)
			tb.mustToken(t, appA, secretA)
			tb.clock.Add(5 * time.Minute)
			return old
		}},
		{name: "naturally expired", wantCode: CodeTokenExpired, token: func(t *testing.T, tb *testBundle) string {
			tok := tb.mustToken(t, appA, secretA)
			tb.clock.Add(7200 * time.Second)
			return tok
		}},
		{name: "POST", method: http.MethodPost, wantCode: CodeRequireGET, token: liveClassic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			q := url.Values{}
			if tok := tt.token(t, tb); tok != "" {
				q.Set("access_token", tok)
			}
			ans := tb.do(t, method, pathDomainIP, q, "", nil)
			require.Equal(t, tt.wantCode, ans.ErrCode, ans.ErrMsg)
			if tt.wantCode == 0 {
				require.NotEmpty(t, ans.IPList)
				require.NotContains(t, ans.Raw, "errcode")
			}
		})
	}
}
