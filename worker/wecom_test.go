package worker_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/db"
	"wxhub/wechat"
	"wxhub/wechatsim"
	"wxhub/worker"
)

const testCorp = "ww_worker_corp"

// withWeComSim replaces the bundle's simulator by one with these WeCom settings.
func (b *bundle) withWeComSim(t *testing.T, wcfg wechatsim.WeComConfig) {
	t.Helper()
	b.sim = wechatsim.New(wechatsim.Config{TokenTTL: b.ttl, Overlap: b.overlap, WeCom: wcfg})
	srv := httptest.NewServer(b.sim)
	t.Cleanup(srv.Close)
	b.simURL = srv.URL
	b.simc = &wechatsim.Client{BaseURL: srv.URL, HTTP: srv.Client()}
}

// addWeComApp creates agent agentID of testCorp in the simulator and in wxhub.
func (b *bundle) addWeComApp(t *testing.T, appid string, agentID int64, tickets []string) db.Account {
	t.Helper()
	secret := "corpsecret-" + appid
	require.NoError(t, b.sim.AddAccount(wechatsim.Account{AppID: appid, Secret: secret, Kind: wechatsim.KindWeComApp,
		CorpID: testCorp, AgentID: agentID}))
	a, err := b.store.CreateAccount(context.Background(), db.NewAccount{Tenant: "acme", AppID: appid, Kind: "wecom_app",
		Secret: secret, Tickets: tickets, CorpID: testCorp, AgentID: agentID})
	require.NoError(t, err)
	return a
}

// weComConfig is the bundle's worker configuration with a WeCom client on the simulator.
func (b *bundle) weComConfig(id string) worker.Config {
	cfg := b.config(id)
	cfg.WeCom = wechat.New(b.simURL+wechatsim.WeComPrefix, nil)
	return cfg
}

func TestWeComAppsOfOneCorpGetTheirOwnTokensAndTickets(t *testing.T) {
	t.Parallel()
	b := setup(t, 20*time.Second, 4*time.Second)
	ctx := context.Background()
	keeper := b.addWeComApp(t, "wecom_keeper", 1000001, []string{"jsapi", "agent_config"})
	other := b.addWeComApp(t, "wecom_other", 1000002, []string{"agent_config"})
	_, err := b.store.CreateAccount(ctx, db.NewAccount{Tenant: "acme", AppID: "wecom_third", Kind: "wecom_app",
		Secret: "s", Tickets: []string{"jsapi"}, CorpID: testCorp, AgentID: 1000003})
	require.ErrorIs(t, err, db.ErrCorpTicketKept, "one app of a corp keeps the corp's ticket")
	b.startWorker(t, b.weComConfig("w1"), b.simURL)

	creds := map[string]db.Credential{}
	for _, want := range []struct {
		a    db.Account
		kind string
	}{{keeper, "access_token"}, {keeper, "jsapi_ticket"}, {keeper, "agent_config_ticket"}, {other, "access_token"}, {other, "agent_config_ticket"}} {
		waitFor(t, 10*time.Second, want.a.AppID+" "+want.kind, func() bool {
			c, err := b.store.GetCredential(ctx, want.a.ID, want.kind)
			creds[want.a.AppID+"/"+want.kind] = c
			return err == nil
		})
	}
	keeperToken, otherToken := creds["wecom_keeper/access_token"].Value, creds["wecom_other/access_token"].Value
	require.NotEqual(t, keeperToken, otherToken, "each agent has its own token")
	for _, tok := range []string{keeperToken, otherToken} {
		code, err := b.simc.UseWeCom(ctx, tok)
		require.NoError(t, err)
		require.Zero(t, code, "the stored WeCom token is alive")
	}
	require.NotEqual(t, creds["wecom_keeper/agent_config_ticket"].Value, creds["wecom_other/agent_config_ticket"].Value)

	st := b.sim.Stats("")
	require.EqualValues(t, 1, st.Accounts["wecom_keeper"].TicketsIssued[wechatsim.TicketWeComCorp])
	require.Zero(t, st.Accounts["wecom_other"].TicketsIssued[wechatsim.TicketWeComCorp], "only the keeper fetches the corp ticket")
	require.EqualValues(t, 1, st.Accounts["wecom_other"].TicketsIssued[wechatsim.TicketAgentConfig])
	require.Zero(t, st.Totals.Calls[wechatsim.APIToken]+st.Totals.Calls[wechatsim.APIStableToken], "WeCom apps never call WeChat's token APIs")
}

func TestWeComTicketFetchRejected40014RefreshesTheToken(t *testing.T) {
	t.Parallel()
	b := setup(t, 30*time.Second, 5*time.Second)
	ctx := context.Background()
	a := b.addWeComApp(t, "wecom_killed", 1000001, nil)
	b.startWorker(t, b.weComConfig("w1"), b.simURL)
	waitFor(t, 10*time.Second, "the first token", func() bool {
		_, err := b.store.GetCredential(ctx, a.ID, "access_token")
		return err == nil
	})
	first, err := b.store.GetCredential(ctx, a.ID, "access_token")
	require.NoError(t, err)

	// Someone else fetches two tokens with the app's secret: WeCom kills wxhub's at once.
	for range 2 {
		_, err := wechat.New(b.simURL+wechatsim.WeComPrefix, nil).WeComToken(ctx, testCorp, "corpsecret-wecom_killed")
		require.NoError(t, err)
	}
	code, err := b.simc.UseWeCom(ctx, first.Value)
	require.NoError(t, err)
	require.Equal(t, wechatsim.CodeInvalidAccessToken, code)

	// The agent ticket asked for now is fetched with the dead token, answered 40014, and that
	// makes the worker compare and refresh the token, then fetch the ticket.
	_, err = b.store.UpdateAccount(ctx, a, db.AccountChange{Tickets: &[]string{"agent_config"}})
	require.NoError(t, err)
	waitFor(t, 15*time.Second, "the ticket", func() bool {
		_, err := b.store.GetCredential(ctx, a.ID, "agent_config_ticket")
		return err == nil
	})
	now, err := b.store.GetCredential(ctx, a.ID, "access_token")
	require.NoError(t, err)
	require.Greater(t, now.Generation, first.Generation)
	code, err = b.simc.UseWeCom(ctx, now.Value)
	require.NoError(t, err)
	require.Zero(t, code)
	st := b.sim.Stats("wecom_killed").Accounts["wecom_killed"]
	require.EqualValues(t, 1, st.Errors[wechatsim.APIWeComAgentTicket][wechatsim.CodeInvalidAccessToken],
		"the ticket fetch met the dead token once")
}

func TestWeComHourlyTicketLimitsAreNeverPassed(t *testing.T) {
	t.Parallel()
	const window = 10 * time.Second
	// Tickets live 4 s and are refreshed about every 3 s: about three fetches wanted per
	// 10 s window, where wxhub allows two and the simulator three (a call counted just
	// before a window turns may reach the simulator just after).
	b := setup(t, 4*time.Second, 2*time.Second)
	b.withWeComSim(t, wechatsim.WeComConfig{CorpTicketLimit: 3, AgentTicketLimit: 3, Window: window})
	ctx := context.Background()
	a := b.addWeComApp(t, "wecom_hourly", 1000001, []string{"jsapi", "agent_config"})
	cfg := b.weComConfig("w1")
	cfg.HourlyWindow = window
	cfg.HourlyLimits = map[string]int{wechat.APIWeComJSAPITicket: 2, wechat.APIWeComAgentTicket: 2}
	// Start just after a window turned, so the test spans three whole windows.
	time.Sleep(time.Until(time.Now().Truncate(window).Add(window + 200*time.Millisecond)))
	b.startWorker(t, cfg, b.simURL)

	deferred := map[string]bool{}
	deadline := time.Now().Add(3 * window)
	for time.Now().Before(deadline) {
		for _, kind := range []string{"jsapi_ticket", "agent_config_ticket"} {
			if c, err := b.store.GetCredential(ctx, a.ID, kind); err == nil && c.LastErrCode == db.CodeHourlyGuard {
				deferred[kind] = true
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.True(t, deferred["jsapi_ticket"], "the corp ticket met wxhub's hourly guard")
	require.True(t, deferred["agent_config_ticket"], "the agent ticket met wxhub's hourly guard")

	pool, err := db.Open(ctx, b.dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	rows, err := pool.Query(ctx, `SELECT scope, api, window_start, calls FROM upstream_calls_hourly ORDER BY window_start`)
	require.NoError(t, err)
	windows := map[string]int{}
	for rows.Next() {
		var scope, api string
		var start time.Time
		var calls int
		require.NoError(t, rows.Scan(&scope, &api, &start, &calls))
		require.LessOrEqual(t, calls, 2, "%s %s in the window of %s", scope, api, start)
		if calls > 0 {
			windows[api]++
		}
	}
	require.NoError(t, rows.Err())
	for _, api := range []string{wechat.APIWeComJSAPITicket, wechat.APIWeComAgentTicket} {
		require.GreaterOrEqual(t, windows[api], 3, "%s: fetched again after each window turned", api)
	}
	st := b.sim.Stats("wecom_hourly").Accounts["wecom_hourly"]
	require.Zero(t, st.Errors[wechatsim.APIWeComJSAPITicket][wechatsim.CodeWeComTicketLimit], "WeCom never refused a corp ticket")
	require.Zero(t, st.Errors[wechatsim.APIWeComAgentTicket][wechatsim.CodeWeComTicketLimit], "WeCom never refused an agent ticket")
	require.GreaterOrEqual(t, st.TicketsIssued[wechatsim.TicketAgentConfig], int64(5))
}
