package wechatsim

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// credentialCalls are the endpoints faults apply to, each called for appA.
var credentialCalls = []struct {
	name string
	call func(t *testing.T, tb *testBundle, tok string) wxAnswer
}{
	{name: "token", call: func(t *testing.T, tb *testBundle, _ string) wxAnswer { return tb.token(t, appA, secretA) }},
	{name: "stable_token", call: func(t *testing.T, tb *testBundle, _ string) wxAnswer { return tb.stable(t, appA, secretA, false) }},
	{name: "stable_token force", call: func(t *testing.T, tb *testBundle, _ string) wxAnswer { return tb.stable(t, appA, secretA, true) }},
	{name: "getticket", call: func(t *testing.T, tb *testBundle, tok string) wxAnswer { return tb.ticket(t, tok, TicketJSAPI) }},
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
	}
	for _, f := range faults {
		for _, c := range credentialCalls {
			t.Run(f.name+"/"+c.name, func(t *testing.T) {
				tb := setup(t, Config{})
				tok := tb.mustToken(t, appA, secretA) // for getticket, before the fault
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
	}{
		{name: "busy rate above 1", body: `{"busy_rate":1.5}`},
		{name: "negative drop rate", body: `{"drop_rate":-0.1}`},
		{name: "unparsable latency", body: `{"latency":"soon"}`},
		{name: "negative latency", body: `{"latency":"-5ms"}`},
		{name: "not JSON", body: `busy`},
		{name: "empty", body: ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			status, body := simRequest(t, tb, http.MethodPost, "/sim/faults", tt.body)
			require.Equal(t, http.StatusBadRequest, status)
			require.NotEmpty(t, body["error"])
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
	in := Faults{AppID: appA, BusyRate: 0.3, Latency: 200 * time.Millisecond, DropRate: 0.1, QuotaExhausted: true, IPNotWhitelisted: true}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	require.JSONEq(t, `{"appid":"wx_a","busy_rate":0.3,"latency":"200ms","drop_rate":0.1,"quota_exhausted":true,"ip_not_whitelisted":true}`, string(b))
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
