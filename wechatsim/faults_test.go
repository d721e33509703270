package wechatsim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// credentialCall is one call of an endpoint that faults apply to, for appA.
type credentialCall struct {
	name    string
	api     string // the API name it is counted under
	method  string
	path    string
	request func(tok string) (url.Values, []byte) // query and JSON body
}

// call sends the call and decodes WeChat's answer.
func (c credentialCall) call(t *testing.T, tb *testBundle, tok string) wxAnswer {
	t.Helper()
	q, body := c.request(tok)
	return tb.do(t, c.method, c.path, q, "application/json", body)
}

// raw sends the call on a fresh connection and returns whatever came back.
func (c credentialCall) raw(t *testing.T, tb *testBundle, tok string) (*http.Response, []byte, error) {
	t.Helper()
	q, body := c.request(tok)
	return tb.send(t, noReuseClient(t), c.method, c.path, q, "application/json", body)
}

func stableBody(force bool) []byte {
	return []byte(`{"grant_type":"client_credential","appid":"wx_a","secret":"secret_a","force_refresh":` + strconv.FormatBool(force) + `}`)
}

var credentialCalls = []credentialCall{
	{name: "token", api: APIToken, method: http.MethodGet, path: pathToken, request: func(string) (url.Values, []byte) {
		return url.Values{"grant_type": {"client_credential"}, "appid": {appA}, "secret": {secretA}}, nil
	}},
	{name: "stable_token", api: APIStableToken, method: http.MethodPost, path: pathStableToken, request: func(string) (url.Values, []byte) {
		return nil, stableBody(false)
	}},
	{name: "stable_token force", api: APIStableToken, method: http.MethodPost, path: pathStableToken, request: func(string) (url.Values, []byte) {
		return nil, stableBody(true)
	}},
	{name: "getticket", api: APIGetTicket, method: http.MethodGet, path: pathGetTicket, request: func(tok string) (url.Values, []byte) {
		return url.Values{"access_token": {tok}, "type": {TicketJSAPI}}, nil
	}},
}

func TestFaultsRefuseCredentialCallsWithoutIssuing(t *testing.T) {
	faults := []struct {
		name     string
		faults   Faults
		wantCode int
		wantMsg  string
	}{
		{name: "busy rate 1", faults: Faults{AppID: appA, BusyRate: 1}, wantCode: CodeBusy, wantMsg: "system error"},
		{name: "global busy rate 1", faults: Faults{BusyRate: 1}, wantCode: CodeBusy},
		{name: "quota exhausted", faults: Faults{AppID: appA, QuotaExhausted: true}, wantCode: CodeQuotaExceeded},
		{name: "ip not whitelisted", faults: Faults{AppID: appA, IPNotWhitelisted: true}, wantCode: CodeIPNotWhitelisted, wantMsg: "invalid ip 127.0.0.1 ipv6 ::ffff:127.0.0.1, not in whitelist rid: "},
		{name: "errcode 40001", faults: Faults{AppID: appA, ErrCode: CodeInvalidCredential}, wantCode: CodeInvalidCredential, wantMsg: "invalid credential, access_token is invalid or not latest rid: "},
		{name: "errcode 40014", faults: Faults{AppID: appA, ErrCode: CodeInvalidAccessToken}, wantCode: CodeInvalidAccessToken, wantMsg: "invalid access_token rid: "},
		{name: "errcode 41001", faults: Faults{AppID: appA, ErrCode: CodeMissingAccessToken}, wantCode: CodeMissingAccessToken, wantMsg: "access_token missing rid: "},
		{name: "errcode 45011", faults: Faults{AppID: appA, ErrCode: CodeMinuteQuota}, wantCode: CodeMinuteQuota, wantMsg: "api minute-quota reach limit"},
		{name: "errcode 48001", faults: Faults{AppID: appA, ErrCode: CodeAPIUnauthorized}, wantCode: CodeAPIUnauthorized, wantMsg: "api unauthorized rid: "},
		{name: "errcode 61004", faults: Faults{AppID: appA, ErrCode: CodeIPNotRegistered}, wantCode: CodeIPNotRegistered, wantMsg: "access clientip is not registered rid: "},
		{name: "errcode 40243", faults: Faults{AppID: appA, ErrCode: CodeSecretFrozen}, wantCode: CodeSecretFrozen, wantMsg: "appsecret is frozen"},
		{name: "errcode 89503", faults: Faults{AppID: appA, ErrCode: CodeNeedsAdminApproval}, wantCode: CodeNeedsAdminApproval, wantMsg: "administrator's approval"},
		{name: "global errcode", faults: Faults{ErrCode: CodeAPIUnauthorized}, wantCode: CodeAPIUnauthorized},
	}
	for _, f := range faults {
		for _, c := range credentialCalls {
			t.Run(f.name+"/"+c.name, func(t *testing.T) {
				tb := setup(t, Config{})
				tok := tb.mustToken(t, appA, secretA) // for getticket, before the fault
				quotaBefore := tb.stats(t, appA).QuotaUsed
				require.NoError(t, tb.sim.SetFaults(f.faults))

				for range 3 {
					ans := c.call(t, tb, tok)
					require.Equal(t, f.wantCode, ans.ErrCode, ans.ErrMsg)
					require.Contains(t, ans.ErrMsg, f.wantMsg)
					require.Empty(t, ans.AccessToken)
					require.Empty(t, ans.Ticket)
				}
				as := tb.stats(t, appA)
				require.Equal(t, int64(1), as.TokensIssued, "faulted calls issue nothing")
				require.Empty(t, as.TicketsIssued)
				require.Zero(t, as.ForcedRefreshes)
				require.Equal(t, int64(3), as.Errors[c.api][f.wantCode])
				require.Equal(t, quotaBefore, as.QuotaUsed, "refused calls are free")
				require.Equal(t, 0, tb.use(t, tok), "faulted calls kill nothing, and uses are not faulted")
			})
		}
	}
}

func TestPerAppFaultsDoNotAffectOtherAppids(t *testing.T) {
	tb := setup(t, Config{})
	require.NoError(t, tb.sim.SetFaults(Faults{AppID: appB, BusyRate: 1, QuotaExhausted: true, IPNotWhitelisted: true}))
	tb.mustToken(t, appA, secretA)
	tb.mustStable(t, appA, secretA, false)
	require.Equal(t, CodeBusy, tb.token(t, appB, secretB).ErrCode)
}

func TestAppFaultsReplaceGlobalFaults(t *testing.T) {
	tb := setup(t, Config{})
	require.NoError(t, tb.sim.SetFaults(Faults{BusyRate: 1}))
	require.NoError(t, tb.sim.SetFaults(Faults{AppID: appA, IPNotWhitelisted: true}))
	require.NoError(t, tb.sim.SetFaults(Faults{AppID: "wx_exempt"}))
	require.NoError(t, tb.sim.AddAccount(Account{AppID: "wx_exempt", Secret: "s"}))

	require.Equal(t, CodeIPNotWhitelisted, tb.token(t, appA, secretA).ErrCode, "appA's own faults, not the global ones")
	require.Equal(t, CodeBusy, tb.token(t, appB, secretB).ErrCode, "appB has none of its own: global faults")
	require.Zero(t, tb.token(t, "wx_exempt", "s").ErrCode, "an empty entry exempts an appid from global faults")

	// Posting again for an appid replaces its faults.
	require.NoError(t, tb.sim.SetFaults(Faults{AppID: appA, QuotaExhausted: true}))
	require.Equal(t, CodeQuotaExceeded, tb.token(t, appA, secretA).ErrCode)
}

func TestFaultsCanBeCleared(t *testing.T) {
	tests := []struct {
		name   string
		method string
		path   string
		body   string
	}{
		{name: "clear one appid", method: http.MethodPost, path: "/sim/faults", body: `{"appid":"wx_a","clear":true}`},
		{name: "delete one appid", method: http.MethodDelete, path: "/sim/faults?appid=wx_a"},
		{name: "delete all", method: http.MethodDelete, path: "/sim/faults"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			require.NoError(t, tb.client.SetFaults(context.Background(), Faults{AppID: appA, BusyRate: 1}))
			require.Equal(t, CodeBusy, tb.token(t, appA, secretA).ErrCode)
			require.Len(t, tb.sim.Faults().Accounts, 1)

			status, _ := simRequest(t, tb, tt.method, tt.path, tt.body)
			require.Equal(t, http.StatusOK, status)
			require.Empty(t, tb.sim.Faults().Accounts)
			tb.mustToken(t, appA, secretA)
		})
	}
}

func TestFaultDropClosesConnection(t *testing.T) {
	tb := setup(t, Config{})
	require.NoError(t, tb.client.SetFaults(context.Background(), Faults{AppID: appA, DropRate: 1}))
	// No keep-alive: the transport retries a request that failed on a reused
	// connection, which would count two drops.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	t.Cleanup(hc.CloseIdleConnections)

	q := url.Values{"grant_type": {"client_credential"}, "appid": {appA}, "secret": {secretA}}
	resp, err := hc.Get(tb.srv.URL + pathToken + "?" + q.Encode())
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err, "the client sees the connection closed without an answer")

	body := strings.NewReader(`{"grant_type":"client_credential","appid":"wx_a","secret":"secret_a"}`)
	resp, err = hc.Post(tb.srv.URL+pathStableToken, "application/json", body)
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err)

	as := tb.stats(t, appA)
	require.Equal(t, int64(2), as.Dropped)
	require.Zero(t, as.TokensIssued)
	require.Equal(t, int64(1), as.Calls[APIToken])
	tb.mustToken(t, appB, secretB)
}

func TestFaultLatencyDelaysEveryEndpoint(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{name: "duration string", body: `{"appid":"wx_a","latency":"60ms"}`},
		{name: "milliseconds", body: `{"appid":"wx_a","latency_ms":60}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			tok := tb.mustToken(t, appA, secretA)
			status, _ := simRequest(t, tb, http.MethodPost, "/sim/faults", tt.body)
			require.Equal(t, http.StatusOK, status)
			require.Equal(t, 60*time.Millisecond, tb.sim.Faults().Accounts[appA].Latency)

			start := time.Now()
			tb.mustToken(t, appA, secretA)
			require.GreaterOrEqual(t, time.Since(start), 60*time.Millisecond)
			start = time.Now()
			require.Equal(t, 0, tb.use(t, tok), "latency only delays; the use endpoint still answers")
			require.GreaterOrEqual(t, time.Since(start), 60*time.Millisecond)
		})
	}
}

func TestFaultsValidation(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string // part of the error, when given
	}{
		{name: "busy rate above 1", body: `{"busy_rate":1.5}`},
		{name: "negative drop rate", body: `{"drop_rate":-0.1}`},
		{name: "unparsable latency", body: `{"latency":"soon"}`},
		{name: "negative latency", body: `{"latency":"-5ms"}`},
		{name: "not JSON", body: `busy`},
		{name: "empty", body: ``},
		{name: "http_status below 500", body: `{"http_status":404}`, want: "http_status 404 is not in [500, 599]"},
		{name: "http_status above 599", body: `{"http_status":600}`, want: "http_status 600"},
		{name: "http_status as a string", body: `{"http_status":"502"}`, want: "http_status"},
		{name: "explicit errcode 0", body: `{"errcode":0}`, want: "wechatsim: invalid faults: errcode 0 is a success, not a fault"},
		{name: "reset_after_issue_rate above 1", body: `{"reset_after_issue_rate":1.01}`, want: "reset_after_issue_rate 1.01"},
		{name: "negative reset_after_issue_rate", body: `{"reset_after_issue_rate":-0.5}`, want: "reset_after_issue_rate -0.5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			status, body := simRequest(t, tb, http.MethodPost, "/sim/faults", tt.body)
			require.Equal(t, http.StatusBadRequest, status)
			require.NotEmpty(t, body["error"])
			require.Contains(t, body["error"], tt.want)
			require.Nil(t, tb.sim.Faults().Global)
		})
	}
}

func TestBusyRateIsAFraction(t *testing.T) {
	tb := setup(t, Config{})
	require.NoError(t, tb.sim.SetFaults(Faults{BusyRate: 0.5}))
	const n = 400
	busy := 0
	for range n {
		if tb.token(t, appA, secretA).ErrCode == CodeBusy {
			busy++
		}
	}
	// Binomial(400, 0.5) has a standard deviation of 10: this never flakes.
	require.InDelta(t, n/2, busy, 80)
	require.Equal(t, int64(n-busy), tb.stats(t, appA).TokensIssued, "busy answers issue nothing")
}

func TestFaultsJSONRoundTrip(t *testing.T) {
	in := Faults{AppID: appA, BusyRate: 0.3, Latency: 200 * time.Millisecond, DropRate: 0.1, QuotaExhausted: true, IPNotWhitelisted: true,
		ErrCode: CodeNeedsAdminApproval, HTTPStatus: 502, HTMLError: true, ResetAfterIssueRate: 0.25}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	require.JSONEq(t, `{"appid":"wx_a","busy_rate":0.3,"latency":"200ms","drop_rate":0.1,"quota_exhausted":true,"ip_not_whitelisted":true,
		"errcode":89503,"http_status":502,"html_error":true,"reset_after_issue_rate":0.25}`, string(b))
	var out Faults
	require.NoError(t, json.Unmarshal(b, &out))
	require.Equal(t, in, out)
}

// simRequest sends a request to a simulator-only endpoint and decodes its JSON
// object answer, if any.
func simRequest(t *testing.T, tb *testBundle, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, tb.srv.URL+path, bytes.NewReader([]byte(body)))
	require.NoError(t, err)
	resp, err := tb.srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestFaultsAnswerLikeAGatewayWithoutIssuing(t *testing.T) {
	faults := []struct {
		name            string
		faults          Faults
		wantStatus      int
		wantContentType string
		wantBody        string
	}{
		{name: "http 502", faults: Faults{AppID: appA, HTTPStatus: http.StatusBadGateway},
			wantStatus: http.StatusBadGateway, wantContentType: "text/plain", wantBody: "502 Bad Gateway\n"},
		{name: "global http 503", faults: Faults{HTTPStatus: http.StatusServiceUnavailable},
			wantStatus: http.StatusServiceUnavailable, wantContentType: "text/plain", wantBody: "503 Service Unavailable\n"},
		{name: "html error page", faults: Faults{AppID: appA, HTMLError: true},
			wantStatus: http.StatusOK, wantContentType: "text/html", wantBody: gatewayErrorPage},
	}
	for _, f := range faults {
		for _, c := range credentialCalls {
			t.Run(f.name+"/"+c.name, func(t *testing.T) {
				tb := setup(t, Config{})
				tok := tb.mustToken(t, appA, secretA) // for getticket, before the fault
				require.NoError(t, tb.sim.SetFaults(f.faults))

				resp, body, err := c.raw(t, tb, tok)
				require.NoError(t, err)
				require.Equal(t, f.wantStatus, resp.StatusCode)
				require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), f.wantContentType), resp.Header.Get("Content-Type"))
				require.Equal(t, f.wantBody, string(body))
				require.False(t, json.Valid(body), "not a WeChat answer")

				as := tb.stats(t, appA)
				require.Equal(t, int64(1), as.TokensIssued, "nothing issued")
				require.Empty(t, as.TicketsIssued)
				require.Empty(t, as.Errors, "no errcode was answered")
				require.Equal(t, map[string]int{APIToken: 1, APIStableToken: 0, APIGetTicket: 0}, as.QuotaUsed)
				require.Equal(t, 0, tb.use(t, tok))
			})
		}
	}
}

func TestFaultsApplyInTheDocumentedOrder(t *testing.T) {
	// Each case sets every fault from one point of the order on; the first
	// must answer.
	all := Faults{AppID: appA, DropRate: 1, BusyRate: 1, HTTPStatus: http.StatusGatewayTimeout, HTMLError: true,
		ErrCode: CodeAPIUnauthorized, IPNotWhitelisted: true, QuotaExhausted: true}
	without := func(strip func(f *Faults)) Faults {
		f := all
		strip(&f)
		return f
	}
	noDrop := func(f *Faults) { f.DropRate = 0 }
	noBusy := func(f *Faults) { noDrop(f); f.BusyRate = 0 }
	noStatus := func(f *Faults) { noBusy(f); f.HTTPStatus = 0 }
	noHTML := func(f *Faults) { noStatus(f); f.HTMLError = false }
	noCode := func(f *Faults) { noHTML(f); f.ErrCode = 0 }
	noIP := func(f *Faults) { noCode(f); f.IPNotWhitelisted = false }
	tests := []struct {
		name       string
		faults     Faults
		wantDrop   bool
		wantStatus int
		wantHTML   bool
		wantCode   int
	}{
		{name: "drop first", faults: all, wantDrop: true},
		{name: "then busy", faults: without(noDrop), wantStatus: http.StatusOK, wantCode: CodeBusy},
		{name: "then http status", faults: without(noBusy), wantStatus: http.StatusGatewayTimeout},
		{name: "then html error", faults: without(noStatus), wantStatus: http.StatusOK, wantHTML: true},
		{name: "then errcode", faults: without(noHTML), wantStatus: http.StatusOK, wantCode: CodeAPIUnauthorized},
		{name: "then ip whitelist", faults: without(noCode), wantStatus: http.StatusOK, wantCode: CodeIPNotWhitelisted},
		{name: "then quota", faults: without(noIP), wantStatus: http.StatusOK, wantCode: CodeQuotaExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			require.NoError(t, tb.sim.SetFaults(tt.faults))
			resp, body, err := credentialCalls[0].raw(t, tb, "")
			if tt.wantDrop {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantStatus, resp.StatusCode)
			require.Equal(t, tt.wantHTML, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html"))
			if tt.wantCode != 0 {
				var ans ErrorBody
				require.NoError(t, json.Unmarshal(body, &ans), "%s", body)
				require.Equal(t, tt.wantCode, ans.ErrCode)
			}
			require.Zero(t, tb.stats(t, appA).TokensIssued)
		})
	}
}

func TestFaultResetAfterIssueLosesTheAnswerButIssues(t *testing.T) {
	// Each case makes a credential before the fault, then a call whose answer
	// is lost, and checks that the lost credential is live and had every
	// effect of a success.
	tests := []struct {
		call   credentialCall
		before func(t *testing.T, tb *testBundle, tok string) string
		after  func(t *testing.T, tb *testBundle, before string)
	}{
		{call: credentialCalls[0], // token
			before: func(t *testing.T, tb *testBundle, tok string) string { return tok },
			after: func(t *testing.T, tb *testBundle, before string) {
				lost := tb.peek(t, appA, func(a *account) string { return a.classic[len(a.classic)-1].value })
				require.NotEqual(t, before, lost)
				require.Equal(t, 0, tb.use(t, lost), "the token whose answer was lost is live")
				tb.clock.Add(299 * time.Second)
				require.Equal(t, 0, tb.use(t, before), "the previous token is in its overlap")
				tb.clock.Add(time.Second)
				require.Equal(t, CodeInvalidCredential, tb.use(t, before), "the previous token was superseded")
				require.Equal(t, 0, tb.use(t, lost))
				require.Equal(t, 2, tb.stats(t, appA).QuotaUsed[APIToken])
			}},
		{call: credentialCalls[1], // stable_token
			before: func(*testing.T, *testBundle, string) string { return "" },
			after: func(t *testing.T, tb *testBundle, _ string) {
				lost := tb.peek(t, appA, func(a *account) string { return a.stable[len(a.stable)-1].value })
				require.NoError(t, tb.sim.SetFaults(Faults{AppID: appA, Clear: true}))
				tb.clock.Add(time.Minute)
				tok := tb.mustStable(t, appA, secretA, false)
				require.Equal(t, lost, tok.AccessToken, "normal mode returns the token whose answer was lost")
				require.Equal(t, 7140, tok.ExpiresIn)
				as := tb.stats(t, appA)
				require.Equal(t, int64(1), as.TokensIssuedByKind[TokenKindStable])
				require.Equal(t, 2, as.QuotaUsed[APIStableToken])
			}},
		{call: credentialCalls[2], // stable_token force
			before: func(t *testing.T, tb *testBundle, _ string) string {
				return tb.mustStable(t, appA, secretA, false).AccessToken
			},
			after: func(t *testing.T, tb *testBundle, before string) {
				require.Equal(t, CodeInvalidCredential, tb.use(t, before), "the force happened: the previous stable token is dead")
				require.NoError(t, tb.sim.SetFaults(Faults{AppID: appA, Clear: true}))
				cur := tb.mustStable(t, appA, secretA, false).AccessToken
				require.NotEqual(t, before, cur)
				require.Equal(t, 0, tb.use(t, cur))
				require.Equal(t, int64(1), tb.stats(t, appA).ForcedRefreshes)
			}},
		{call: credentialCalls[3], // getticket
			before: func(t *testing.T, tb *testBundle, tok string) string { return tb.mustTicket(t, tok, TicketJSAPI) },
			after: func(t *testing.T, tb *testBundle, before string) {
				lost := tb.peek(t, appA, func(a *account) string {
					return a.tickets[ticketJSAPI][len(a.tickets[ticketJSAPI])-1].value
				})
				require.NotEqual(t, before, lost)
				valid, reason := tb.verify(t, signed(appA, lost))
				require.True(t, valid, reason)
				tb.clock.Add(300 * time.Second)
				_, reason = tb.verify(t, signed(appA, before))
				require.Equal(t, JSSDKReasonTicketSuperseded, reason)
				as := tb.stats(t, appA)
				require.Equal(t, int64(2), as.TicketsIssued[TicketJSAPI])
				require.Equal(t, 2, as.QuotaUsed[APIGetTicket])
			}},
	}
	for _, tt := range tests {
		t.Run(tt.call.name, func(t *testing.T) {
			tb := setup(t, Config{})
			tok := tb.mustToken(t, appA, secretA)
			before := tt.before(t, tb, tok)
			require.NoError(t, tb.client.SetFaults(context.Background(), Faults{AppID: appA, ResetAfterIssueRate: 1}))

			resp, body, err := tt.call.raw(t, tb, tok)
			require.Error(t, err, "the client sees the connection closed without an answer (got %v %s)", resp, body)
			as := tb.stats(t, appA)
			require.Equal(t, int64(1), as.AnswersLost)
			require.Zero(t, as.Dropped, "not the drop fault")
			require.Empty(t, as.Errors)
			tt.after(t, tb, before)
		})
	}
}

func TestFaultResetAfterIssueSparesRefusals(t *testing.T) {
	tb := setup(t, Config{})
	require.NoError(t, tb.sim.SetFaults(Faults{AppID: appA, ResetAfterIssueRate: 1}))
	require.Equal(t, CodeInvalidSecret, tb.token(t, appA, "wrong").ErrCode, "a refusal issues nothing, so its answer arrives")
	require.Zero(t, tb.stats(t, appA).AnswersLost)
}

func TestFaultResetAfterIssueRateIsAFraction(t *testing.T) {
	tb := setup(t, Config{ClassicSurvivors: 1000})
	require.NoError(t, tb.sim.SetFaults(Faults{AppID: appA, ResetAfterIssueRate: 0.5}))
	const n = 200
	lost := 0
	for range n {
		if _, _, err := credentialCalls[0].raw(t, tb, ""); err != nil {
			lost++
		}
	}
	// Binomial(200, 0.5) has a standard deviation of about 7: this never flakes.
	require.InDelta(t, n/2, lost, 50)
	as := tb.stats(t, appA)
	require.Equal(t, int64(lost), as.AnswersLost)
	require.Equal(t, int64(n), as.TokensIssued, "every call issued, answered or not")
}
