package wechatsim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestClientDrivesTheSimulator(t *testing.T) {
	tb := setup(t, Config{})
	ctx := context.Background()
	c := tb.client

	require.NoError(t, c.AddAccount(ctx, Account{AppID: "wx_client", Secret: "s", Kind: KindMiniProgram}))
	err := c.AddAccount(ctx, Account{Secret: "s"})
	require.ErrorContains(t, err, "appid is required")

	tok := tb.mustToken(t, "wx_client", "s")
	code, err := c.Use(ctx, tok)
	require.NoError(t, err)
	require.Zero(t, code)
	code, err = c.Use(ctx, "forged")
	require.NoError(t, err)
	require.Equal(t, CodeInvalidCredential, code)

	require.NoError(t, c.SetFaults(ctx, Faults{AppID: "wx_client", BusyRate: 1, Latency: time.Millisecond}))
	require.ErrorContains(t, c.SetFaults(ctx, Faults{BusyRate: 2}), "busy_rate")
	require.Equal(t, CodeBusy, tb.token(t, "wx_client", "s").ErrCode)
	require.NoError(t, c.ClearFaults(ctx))
	tb.mustToken(t, "wx_client", "s")

	st, err := c.Stats(ctx, "wx_client")
	require.NoError(t, err)
	require.Equal(t, KindMiniProgram, st.Accounts["wx_client"].Kind)
	require.Equal(t, int64(2), st.Accounts["wx_client"].TokensIssued)
	require.Equal(t, int64(1), st.Accounts["wx_client"].Errors[APIToken][CodeBusy])

	tok = tb.mustToken(t, "wx_client", "s")
	check := signed("wx_client", tb.mustTicket(t, tok, TicketJSAPI))
	valid, reason, err := c.VerifyJSSDK(ctx, check)
	require.NoError(t, err)
	require.True(t, valid, reason)
	check.NonceStr = "other"
	valid, reason, err = c.VerifyJSSDK(ctx, check)
	require.NoError(t, err)
	require.False(t, valid)
	require.Equal(t, JSSDKReasonNoMatch, reason)
	_, _, err = c.VerifyJSSDK(ctx, JSSDKCheck{AppID: "wx_client"})
	require.ErrorContains(t, err, "missing url, noncestr, signature", "a malformed check is an error, not a verdict")

	require.NoError(t, c.Reset(ctx))
	st, err = c.Stats(ctx, "")
	require.NoError(t, err)
	require.Empty(t, st.Accounts)

	tb.srv.Close()
	_, err = c.Use(ctx, tok)
	require.Error(t, err, "transport failures are errors, not errcodes")
}

func TestClientRejectsAnswersThatAreNotWeChats(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	_, err := (&Client{BaseURL: srv.URL + "/"}).Use(context.Background(), "x")
	require.ErrorContains(t, err, "neither errcode nor ip_list")
}

// TestConcurrentAccountsAreIndependent hammers many accounts from many
// goroutines (run it with -race) and checks that the counters add up: every
// successful call issued exactly one token, and no token was rejected while
// the clock stood still inside the overlap.
func TestConcurrentAccountsAreIndependent(t *testing.T) {
	const accounts, workers, rounds = 100, 4, 10
	clock := &fakeClock{t: t0}
	// Every token an account issues stays live: between one worker's fetch
	// and use, the others may fetch any number of tokens.
	sim := New(Config{Now: clock.Now, ClassicSurvivors: workers * rounds})
	for i := range accounts {
		require.NoError(t, sim.AddAccount(Account{AppID: fmt.Sprintf("wx_%03d", i), Secret: "s"}))
	}

	serve := func(method, target, body string) map[string]any {
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Errorf("%s %s: %v", method, target, err)
		}
		return out
	}

	var wg sync.WaitGroup
	for i := range accounts {
		appid := fmt.Sprintf("wx_%03d", i)
		for range workers {
			wg.Go(func() {
				for range rounds {
					ans := serve(http.MethodGet, pathToken+"?grant_type=client_credential&appid="+appid+"&secret=s", "")
					tok, _ := ans["access_token"].(string)
					if tok == "" {
						t.Errorf("%s: no token: %v", appid, ans)
						return
					}
					if ans := serve(http.MethodGet, pathDomainIP+"?access_token="+url.QueryEscape(tok), ""); ans["errcode"] != nil {
						t.Errorf("%s: use rejected: %v", appid, ans)
					}
					serve(http.MethodPost, pathStableToken, `{"grant_type":"client_credential","appid":"`+appid+`","secret":"s"}`)
					serve(http.MethodGet, pathGetTicket+"?type=jsapi&access_token="+url.QueryEscape(tok), "")
				}
			})
		}
	}
	// Readers and writers of the admin side run at the same time.
	wg.Go(func() {
		for range 20 {
			_ = sim.Stats("")
			_ = sim.SetFaults(Faults{AppID: "wx_unrelated", Latency: time.Nanosecond})
			_ = sim.AddAccount(Account{AppID: "wx_000", Secret: "s"})
		}
	})
	wg.Wait()

	st := sim.Stats("")
	require.Equal(t, accounts, st.Totals.Accounts)
	for appid, as := range st.Accounts {
		require.Equal(t, int64(workers*rounds), as.TokensIssuedByKind[TokenKindClassic], appid)
		require.Equal(t, int64(1), as.TokensIssuedByKind[TokenKindStable], "%s: concurrent normal-mode calls share one stable token", appid)
		require.Equal(t, int64(workers*rounds), as.TicketsIssued[TicketJSAPI], appid)
		require.Equal(t, int64(2*workers*rounds), as.UsesAccepted, "%s: get_api_domain_ip and getticket", appid)
		require.Empty(t, as.UsesRejected, appid)
		require.Len(t, as.TokenIssueTimes, int(as.TokensIssued), appid)
	}
	require.Equal(t, int64(accounts*workers*rounds*2), st.Totals.UsesAccepted)
}
