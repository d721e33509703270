package worker_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/db"
	"wxhub/db/keyring"
	"wxhub/wechatsim"
)

func TestNewAccountGetsTokenAndTicketsThenRotates(t *testing.T) {
	t.Parallel()
	b := setup(t, 8*time.Second, 3*time.Second)
	accounts := b.addAccounts(t, "wxfresh", 5, "stable", []string{"jsapi", "wx_card"}, nil)
	b.startWorker(t, b.config("w1"), b.simURL)
	ctx := context.Background()

	for _, a := range accounts {
		waitFor(t, 10*time.Second, a.AppID+" tickets", func() bool {
			_, err1 := b.store.GetCredential(ctx, a.ID, "jsapi_ticket")
			_, err2 := b.store.GetCredential(ctx, a.ID, "wx_card_ticket")
			return err1 == nil && err2 == nil
		})
	}
	first, err := b.store.GetCredential(ctx, accounts[0].ID, "access_token")
	require.NoError(t, err)
	require.Equal(t, int64(1), first.Generation)
	require.WithinDuration(t, time.Now().Add(8*time.Second), first.ExpiresAt, 3*time.Second, "expiry comes from expires_in")

	// The stable token rotates in WeChat's window, the last 3 s of its 8 s life.
	waitFor(t, 12*time.Second, "a second generation", func() bool {
		c, err := b.store.GetCredential(ctx, accounts[0].ID, "access_token")
		return err == nil && c.Generation == 2
	})
	second, err := b.store.GetCredential(ctx, accounts[0].ID, "access_token")
	require.NoError(t, err)
	require.NotEqual(t, first.Value, second.Value)
	code, err := b.simc.Use(ctx, second.Value)
	require.NoError(t, err)
	require.Zero(t, code)
	code, err = b.simc.Use(ctx, first.Value)
	require.NoError(t, err)
	require.Zero(t, code, "the replaced stable token works until its own expiry")

	stats := b.sim.Stats(accounts[0].AppID)
	s := stats.Accounts[accounts[0].AppID]
	require.Equal(t, int64(2), s.TokensIssued)
	require.LessOrEqual(t, s.Calls[wechatsim.APIStableToken], int64(4), "no more than two calls per cycle")
	requireNoQuotaAnswers(t, b.sim.Stats(""))
}

func TestCredentialsThatCannotBeRefreshedYetDoNotBlockOthers(t *testing.T) {
	t.Parallel()
	b := setup(t, 30*time.Second, 5*time.Second)
	ctx := context.Background()
	// An authorizer of a component that has no token yet (WeChat pushed no verify ticket)
	// cannot be refreshed; its credential must step aside while the others are. The test
	// writes the authorizer's rows itself, as an authorization would.
	_, err := b.store.CreateAccount(ctx, db.NewAccount{Tenant: "acme", AppID: "wxcomponent0001", Kind: "component", Secret: "s",
		Callback: &db.CallbackConfig{Token: "token", AESKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"}})
	require.NoError(t, err)
	pool, err := db.Open(ctx, b.dsn)
	require.NoError(t, err)
	defer pool.Close()
	_, err = pool.Exec(ctx, `WITH a AS (
		INSERT INTO accounts (tenant_id, appid, kind, component_account_id)
		SELECT tenant_id, 'wxauthorizer0001', 'authorizer', id FROM accounts WHERE appid = 'wxcomponent0001'
		RETURNING tenant_id, id
	), c AS (
		INSERT INTO credentials (tenant_id, account_id, kind, replace_not_before) SELECT tenant_id, id, 'access_token', now() FROM a
	)
	INSERT INTO credential_schedule (tenant_id, account_id, kind, refresh_at) SELECT tenant_id, id, 'access_token', now() FROM a`)
	require.NoError(t, err)
	accounts := b.addAccounts(t, "wxnormal", 3, "stable", nil, nil)
	cfg := b.config("w1")
	cfg.Concurrency = 1
	b.startWorker(t, cfg, b.simURL)
	for _, a := range accounts {
		waitFor(t, 10*time.Second, a.AppID+" token", func() bool {
			_, err := b.store.GetCredential(ctx, a.ID, "access_token")
			return err == nil
		})
	}
	authorizer, err := b.store.GetAccount(ctx, "wxauthorizer0001")
	require.NoError(t, err)
	c, err := b.store.GetCredential(ctx, authorizer.ID, "access_token")
	require.ErrorIs(t, err, db.ErrNotFound)
	require.Contains(t, c.LastErrMsg, "no valid access token")
	require.True(t, c.RefreshAt.After(time.Now()), "postponed")
}

func TestWrongSecretMarksAccountFailingAndBacksOff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode, api string
		code      int
	}{
		{"classic", wechatsim.APIToken, 40125},
		{"stable", wechatsim.APIStableToken, 40001},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			b := setup(t, 30*time.Second, 5*time.Second)
			ctx := context.Background()
			good := b.addAccounts(t, "wxgood", 3, tt.mode, nil, nil)
			bad := b.addAccounts(t, "wxbad", 1, tt.mode, nil, nil)[0]
			require.NoError(t, b.sim.AddAccount(wechatsim.Account{AppID: bad.AppID, Secret: "rotated-by-the-merchant"}))
			cfg := b.config("w1")
			cfg.ConfigRetry = 4 * time.Second
			b.startWorker(t, cfg, b.simURL)

			waitFor(t, 10*time.Second, "the bad account failing", func() bool {
				a, err := b.store.GetAccount(ctx, bad.AppID)
				require.NoError(t, err)
				return a.Status == "failing"
			})
			a, err := b.store.GetAccount(ctx, bad.AppID)
			require.NoError(t, err)
			require.Contains(t, a.StatusReason, "errcode")
			c, err := b.store.GetCredential(ctx, bad.ID, "access_token")
			require.ErrorIs(t, err, db.ErrNotFound, "nothing stored for the bad account")
			require.Equal(t, tt.code, c.LastErrCode)
			require.NotContains(t, c.LastErrMsg, "secret-"+bad.AppID)
			// The good accounts' values go through the batched writer while the failure is
			// recorded on its own, so either may commit first.
			for _, g := range good {
				waitFor(t, 10*time.Second, "other accounts unaffected: "+g.AppID+" token", func() bool {
					_, err := b.store.GetCredential(ctx, g.ID, "access_token")
					return err == nil
				})
			}

			// ConfigRetry 4 s with jitter: in 6 more seconds at most two more calls, not a storm.
			before := b.sim.Stats(bad.AppID).Accounts[bad.AppID].Calls[tt.api]
			time.Sleep(6 * time.Second)
			after := b.sim.Stats(bad.AppID).Accounts[bad.AppID].Calls[tt.api]
			require.LessOrEqual(t, after-before, int64(3), "calls while failing")

			// The merchant fixes the secret in WeChat: the account recovers on its own.
			require.NoError(t, b.sim.AddAccount(wechatsim.Account{AppID: bad.AppID, Secret: "secret-" + bad.AppID}))
			waitFor(t, 10*time.Second, "recovery", func() bool {
				a, err := b.store.GetAccount(ctx, bad.AppID)
				require.NoError(t, err)
				return a.Status == "active"
			})
			_, err = b.store.GetCredential(ctx, bad.ID, "access_token")
			require.NoError(t, err)
		})
	}
}

func TestQuotaAnswerStopsCallsAndKeepsServingCurrentToken(t *testing.T) {
	t.Parallel()
	b := setup(t, 6*time.Second, 2*time.Second)
	ctx := context.Background()
	a := b.addAccounts(t, "wxquota", 1, "classic", nil, nil)[0]
	b.startWorker(t, b.config("w1"), b.simURL)
	waitFor(t, 5*time.Second, "first token", func() bool {
		_, err := b.store.GetCredential(ctx, a.ID, "access_token")
		return err == nil
	})
	held, err := b.store.GetCredential(ctx, a.ID, "access_token")
	require.NoError(t, err)
	require.NoError(t, b.sim.SetFaults(wechatsim.Faults{AppID: a.AppID, QuotaExhausted: true}))

	waitFor(t, 10*time.Second, "the 45009 answer recorded", func() bool {
		c, err := b.store.GetCredential(ctx, a.ID, "access_token")
		return err == nil && c.LastErrCode == 45009
	})
	calls := b.sim.Stats(a.AppID).Accounts[a.AppID].Calls[wechatsim.APIToken]
	c, err := b.store.GetCredential(ctx, a.ID, "access_token")
	require.NoError(t, err)
	require.Equal(t, held.Value, c.Value, "the current token stays in service")
	require.Equal(t, held.Generation, c.Generation)
	require.True(t, c.RefreshAt.After(time.Now().Add(time.Minute)), "next attempt after the quota day ends, not %s", c.RefreshAt)

	// An app server reporting the token rejected does not bring the next call forward: every
	// call would be refused until the quota day turns.
	for _, report := range []func(context.Context, int64, string, int64, time.Duration) (bool, error){
		b.store.ReportDead, b.store.RequestRefresh} {
		did, err := report(ctx, a.ID, "access_token", c.Generation, 0)
		require.NoError(t, err)
		require.False(t, did, "no refresh requested while WeChat's quota is spent")
	}
	after, err := b.store.GetCredential(ctx, a.ID, "access_token")
	require.NoError(t, err)
	require.True(t, after.RefreshAt.Equal(*c.RefreshAt), "the next attempt stays after the quota day ends")

	time.Sleep(3 * time.Second)
	require.Equal(t, calls, b.sim.Stats(a.AppID).Accounts[a.AppID].Calls[wechatsim.APIToken], "no calls after 45009")
}

func TestQuotaGuardNeverExceedsDailyLimit(t *testing.T) {
	t.Parallel()
	b := setup(t, 2*time.Second, time.Second)
	ctx := context.Background()
	// A test account with a limit of 5 classic calls a day; the 10% reserve keeps none back
	// at this size (5 - 0), so wxhub may make exactly 5 calls.
	a := b.addAccounts(t, "wxlimit", 1, "classic", nil, map[string]int{"token": 5})[0]
	b.startWorker(t, b.config("w1"), b.simURL)
	waitFor(t, 20*time.Second, "the guard to stop refreshes", func() bool {
		c, err := b.store.GetCredential(ctx, a.ID, "access_token")
		return err == nil && c.LastErrCode == db.CodeQuotaGuard
	})
	time.Sleep(2 * time.Second)
	s := b.sim.Stats(a.AppID).Accounts[a.AppID]
	require.Equal(t, int64(5), s.Calls[wechatsim.APIToken])
	require.Zero(t, s.Errors[wechatsim.APIToken][45009], "wxhub stopped itself; WeChat never had to refuse")
	c, err := b.store.GetCredential(ctx, a.ID, "access_token")
	require.NoError(t, err)
	require.Contains(t, c.LastErrMsg, "quota guard")
}

func TestQuotaCountsCallsNotClaims(t *testing.T) {
	t.Parallel()
	b := setup(t, 6*time.Second, 2*time.Second)
	ctx := context.Background()
	// The account's secret is sealed with a key the workers' ring lacks (WXHUB_KEYS lost it):
	// every claim ends before any call. With a limit of 5 calls a day, counting claims would
	// spend the day's quota and park the account until China midnight.
	otherRing, err := keyring.Parse("t9:HxweHRwbGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=")
	require.NoError(t, err)
	pool, err := db.Open(ctx, b.dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	const appid, secret = "wxrefund000000", "secret-wxrefund"
	require.NoError(t, b.sim.AddAccount(wechatsim.Account{AppID: appid, Secret: secret}))
	a, err := db.NewStore(pool, otherRing).CreateAccount(ctx, db.NewAccount{
		Tenant: "acme", AppID: appid, Kind: "official_account", Secret: secret,
		TokenMode: "classic", DailyLimits: map[string]int{wechatsim.APIToken: 5},
	})
	require.NoError(t, err)

	cfg := b.config("w1")
	cfg.ConfigRetry = 100 * time.Millisecond
	w1 := b.startWorker(t, cfg, b.simURL)
	waitFor(t, 15*time.Second, "ten claims that called nothing", func() bool {
		return w1.counter(t, "wxhub_worker_refreshes_total", map[string]string{"outcome": "undecryptable"}) >= 10
	})
	_, err = b.store.GetCredential(ctx, a.ID, "access_token")
	require.ErrorIs(t, err, db.ErrNotFound, "no value yet")
	d, err := b.store.GetAccountDetail(ctx, a)
	require.NoError(t, err)
	require.Zero(t, d.UpstreamCalls[wechatsim.APIToken], "no call counted for claims that made none")
	require.Zero(t, b.sim.Stats(appid).Accounts[appid].Calls[wechatsim.APIToken])

	// The secret sealed again with the current key: the day's quota is intact, the account
	// gets its token, and the ledger counts exactly the calls WeChat saw.
	newSecret := secret
	_, err = b.store.UpdateAccount(ctx, a, db.AccountChange{Secret: &newSecret})
	require.NoError(t, err)
	waitFor(t, 5*time.Second, "a token", func() bool {
		_, err := b.store.GetCredential(ctx, a.ID, "access_token")
		return err == nil
	})
	d, err = b.store.GetAccountDetail(ctx, a)
	require.NoError(t, err)
	require.Equal(t, int(b.sim.Stats(appid).Accounts[appid].Calls[wechatsim.APIToken]), d.UpstreamCalls[wechatsim.APIToken])
	require.Positive(t, d.UpstreamCalls[wechatsim.APIToken])
}

func TestNoCallAfterTheLeaseRanOut(t *testing.T) {
	t.Parallel()
	b := setup(t, 6*time.Second, 2*time.Second)
	ctx := context.Background()
	a := b.addAccounts(t, "wxlease", 1, "classic", nil, nil)[0]
	// Every claim's lease has run out before its call could start: another worker may have
	// taken the credential over and fetched, so no call is made, and the quota is given back.
	cfg := b.config("w1")
	cfg.Lease = time.Microsecond
	w := b.startWorker(t, cfg, b.simURL)
	waitFor(t, 10*time.Second, "claims ended as too late", func() bool {
		return w.counter(t, "wxhub_worker_refreshes_total", map[string]string{"outcome": "late_claim"}) >= 3
	})
	w.stop()
	require.Zero(t, b.sim.Stats(a.AppID).Accounts[a.AppID].Calls[wechatsim.APIToken], "no call that could land after a takeover")
	d, err := b.store.GetAccountDetail(ctx, a)
	require.NoError(t, err)
	require.Zero(t, d.UpstreamCalls[wechatsim.APIToken])

	// With the lease still running, the call is made.
	b.startWorker(t, b.config("w2"), b.simURL)
	waitFor(t, 5*time.Second, "a token", func() bool {
		_, err := b.store.GetCredential(ctx, a.ID, "access_token")
		return err == nil
	})
}

func TestBusyAndSlowWeChatStillRefreshesBeforeExpiry(t *testing.T) {
	t.Parallel()
	// A 20 s token refreshed at about 80% leaves 4 s for retries: the same proportions as
	// WeChat's 7200 s token, where 30% busy answers never outlast the margin.
	b := setup(t, 20*time.Second, 5*time.Second)
	accounts := b.addAccounts(t, "wxbusy", 50, "classic", []string{"jsapi"}, nil)
	require.NoError(t, b.sim.SetFaults(wechatsim.Faults{BusyRate: 0.3, Latency: 150 * time.Millisecond}))
	b.startWorker(t, b.config("w1"), b.simURL)
	b.startWorker(t, b.config("w2"), b.simURL)
	ctx := context.Background()
	for _, a := range accounts {
		waitFor(t, 10*time.Second, a.AppID+" token", func() bool {
			_, err := b.store.GetCredential(ctx, a.ID, "access_token")
			return err == nil
		})
	}
	chk := b.startChecker(t, accounts, time.Second)
	time.Sleep(45 * time.Second) // more than two lifetimes
	chk.requireNoRejections(t)
	stats := b.sim.Stats("")
	require.Positive(t, stats.Totals.Errors[wechatsim.APIToken][-1], "busy answers were injected")
	for _, a := range accounts {
		c, err := b.store.GetCredential(ctx, a.ID, "access_token")
		require.NoError(t, err)
		require.GreaterOrEqual(t, c.Generation, int64(3), a.AppID)
		_, err = b.store.GetCredential(ctx, a.ID, "jsapi_ticket")
		require.NoError(t, err, a.AppID)
	}
	requireNoQuotaAnswers(t, stats)
}

func TestPausedWorkerCannotOverwriteNewerToken(t *testing.T) {
	t.Parallel()
	b := setup(t, 30*time.Second, 6*time.Second)
	ctx := context.Background()
	a := b.addAccounts(t, "wxpause", 1, "classic", nil, nil)[0]

	// Worker A's answers from WeChat are held for 4 s, past its 1 s claim lease.
	g, gateURL := newGate(t, b.sim)
	g.hold.Store(int64(4 * time.Second))
	cfgA := b.config("paused")
	cfgA.Lease, cfgA.CallTimeout, cfgA.Concurrency = time.Second, 5*time.Second, 1
	workerA := b.startWorker(t, cfgA, gateURL)
	<-g.arrived // A's call reached WeChat: token T_A issued, answer held

	// Worker B takes over once A's lease expires and stores its own token.
	b.startWorker(t, b.config("healthy"), b.simURL)
	waitFor(t, 5*time.Second, "B's token", func() bool {
		c, err := b.store.GetCredential(ctx, a.ID, "access_token")
		return err == nil && c.Generation >= 1
	})
	g.mu.Lock()
	var answer struct {
		AccessToken string `json:"access_token"`
	}
	require.NoError(t, json.Unmarshal([]byte(g.bodies[0]), &answer))
	g.mu.Unlock()
	tokenA := answer.AccessToken
	require.NotEmpty(t, tokenA)

	// A resumes and tries to write T_A: its claim was taken over, so it changes nothing.
	waitFor(t, 10*time.Second, "A to be fenced", func() bool {
		return workerA.counter(t, "wxhub_worker_refreshes_total", map[string]string{"outcome": "fenced"}) == 1
	})
	g.hold.Store(0)
	stored, err := b.store.GetCredential(ctx, a.ID, "access_token")
	require.NoError(t, err)
	require.NotEqual(t, tokenA, stored.Value, "the paused worker's token was never stored")
	require.Equal(t, int64(1), stored.Generation)

	// A's call reached WeChat before B's (its lease had to end first), so B's token is the
	// newest and outlives the overlap; nothing more is fetched.
	time.Sleep(b.overlap + time.Second)
	code, err := b.simc.Use(ctx, stored.Value)
	require.NoError(t, err)
	require.Zero(t, code)
	c, err := b.store.GetCredential(ctx, a.ID, "access_token")
	require.NoError(t, err)
	require.Equal(t, stored.Generation, c.Generation)
	require.Equal(t, int64(2), b.sim.Stats(a.AppID).Accounts[a.AppID].TokensIssued)
}

func TestCrashAfterFetchBeforeCommitLosesNothing(t *testing.T) {
	t.Parallel()
	b := setup(t, 20*time.Second, 6*time.Second)
	ctx := context.Background()
	accounts := b.addAccounts(t, "wxcrash", 1, "classic", nil, nil)
	a := accounts[0]
	healthy := b.startWorker(t, b.config("first"), b.simURL)
	waitFor(t, 5*time.Second, "first token", func() bool {
		_, err := b.store.GetCredential(ctx, a.ID, "access_token")
		return err == nil
	})
	healthy.stop()
	chk := b.startChecker(t, accounts, 200*time.Millisecond)

	// The crashing worker gets its answer from WeChat and then loses its database before it
	// can commit: its pool is closed under it and its context cancelled.
	g, gateURL := newGate(t, b.sim)
	g.hold.Store(int64(time.Second))
	cfg := b.config("crashing")
	cfg.Lease = 2 * time.Second
	pool, err := db.Open(ctx, b.dsn)
	require.NoError(t, err)
	crashing := startWorkerOnPool(t, b, cfg, gateURL, pool)
	// Make the token due now, as the schedule would at 80% of its life.
	cur, err := b.store.GetCredential(ctx, a.ID, "access_token")
	require.NoError(t, err)
	_, err = b.store.RequestRefresh(ctx, a.ID, "access_token", cur.Generation, 0)
	require.NoError(t, err)
	<-g.arrived // WeChat issued a new token; the old one now dies after the overlap
	pool.Close()
	go crashing.stop()

	b.startWorker(t, b.config("survivor"), b.simURL)
	waitFor(t, 10*time.Second, "the survivor's refresh", func() bool {
		c, err := b.store.GetCredential(ctx, a.ID, "access_token")
		return err == nil && c.Generation > cur.Generation
	})
	// Past the overlap of the token the crashed worker fetched: the stored token still works.
	time.Sleep(b.overlap + time.Second)
	chk.requireNoRejections(t)
	c, err := b.store.GetCredential(ctx, a.ID, "access_token")
	require.NoError(t, err)
	code, err := b.simc.Use(ctx, c.Value)
	require.NoError(t, err)
	require.Zero(t, code)
	require.False(t, strings.Contains(c.LastErrMsg, "secret"))
}

func TestWriteIsRetriedWhileTheDatabaseIsAway(t *testing.T) {
	t.Parallel()
	b := setup(t, 20*time.Second, 6*time.Second)
	ctx := context.Background()
	a := b.addAccounts(t, "wxdbaway", 1, "classic", nil, nil)[0]
	g, gateURL := newGate(t, b.sim)
	g.hold.Store(int64(500 * time.Millisecond))
	w := b.startWorker(t, b.config("w1"), gateURL)
	<-g.arrived // WeChat issued the token; the worker now holds it while the database goes away

	admin, err := db.Open(ctx, strings.Replace(b.dsn, "/"+dbName(b.dsn)+"?", "/postgres?", 1))
	require.NoError(t, err)
	defer admin.Close()
	_, err = admin.Exec(ctx, "ALTER DATABASE "+dbName(b.dsn)+" ALLOW_CONNECTIONS false")
	require.NoError(t, err)
	_, err = admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", dbName(b.dsn))
	require.NoError(t, err)
	time.Sleep(2 * time.Second)
	_, err = admin.Exec(ctx, "ALTER DATABASE "+dbName(b.dsn)+" ALLOW_CONNECTIONS true")
	require.NoError(t, err)

	waitFor(t, 10*time.Second, "the held token to be stored", func() bool {
		c, err := b.store.GetCredential(ctx, a.ID, "access_token")
		return err == nil && c.Generation == 1
	})
	c, err := b.store.GetCredential(ctx, a.ID, "access_token")
	require.NoError(t, err)
	var answer struct {
		AccessToken string `json:"access_token"`
	}
	g.mu.Lock()
	require.NoError(t, json.Unmarshal([]byte(g.bodies[0]), &answer))
	g.mu.Unlock()
	require.Equal(t, answer.AccessToken, c.Value, "the token fetched before the outage is the one stored")
	require.Equal(t, int64(1), b.sim.Stats(a.AppID).Accounts[a.AppID].TokensIssued, "no second fetch")
	require.Positive(t, w.counter(t, "wxhub_worker_write_retries_total", nil), "the write failed at least once")
}

func dbName(dsn string) string {
	path := dsn[strings.LastIndex(dsn, "/")+1:]
	name, _, _ := strings.Cut(path, "?")
	return name
}

// TestValuesAreStoredInBatchesAndALoneOneIsNotDelayed: many refreshes at once share
// statements, while a single refresh is stored within its batch delay, not held for company.
func TestValuesAreStoredInBatchesAndALoneOneIsNotDelayed(t *testing.T) {
	t.Parallel()
	b := setup(t, time.Hour, 5*time.Minute)
	accounts := b.addAccounts(t, "wxbatch", 300, "stable", nil, nil)
	cfg := b.config("w1")
	cfg.Concurrency, cfg.WriteBatch, cfg.WriteDelay = 300, 64, 50*time.Millisecond
	w := b.startWorker(t, cfg, b.simURL)
	ctx := context.Background()
	waitFor(t, 20*time.Second, "every account's first token", func() bool {
		for _, a := range accounts {
			if _, err := b.store.GetCredential(ctx, a.ID, "access_token"); err != nil {
				return false
			}
		}
		return true
	})
	rows, statements := w.histogram(t, "wxhub_worker_write_batch_rows")
	require.Equal(t, 300.0, rows, "every value stored once")
	require.Less(t, statements, uint64(300/4), "values share statements")

	// A lone refresh: the account's token is made due while nothing else is.
	lone := b.addAccounts(t, "wxlone", 1, "stable", nil, nil)[0]
	waitFor(t, 10*time.Second, "the lone account's token", func() bool {
		_, err := b.store.GetCredential(ctx, lone.ID, "access_token")
		return err == nil
	})
	_, after := w.histogram(t, "wxhub_worker_write_batch_rows")
	require.Equal(t, statements+1, after, "the lone value went in a statement of its own, without waiting for a full batch")
}

// TestTheWorkerPrunesWhatNobodyNeedsAnyMore: the gateway's expired tokens and authorization
// codes older than WeChat's hour are deleted by a worker's prune (the first runs as it
// starts); what is still live is kept.
func TestTheWorkerPrunesWhatNobodyNeedsAnyMore(t *testing.T) {
	t.Parallel()
	b := setup(t, time.Hour, 5*time.Minute)
	ctx := context.Background()
	a := b.addAccounts(t, "wxprune", 1, "stable", nil, nil)[0]
	require.NoError(t, b.store.RecordGatewayToken(ctx, "expired", a.TenantID, a.ID, time.Now().Add(-time.Second)))
	require.NoError(t, b.store.RecordGatewayToken(ctx, "live", a.TenantID, a.ID, time.Now().Add(time.Hour)))
	pool, err := db.Open(ctx, b.dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(ctx, `
		INSERT INTO authorization_codes (code_sha256, tenant_id, account_id, component_account_id, recorded_at)
		VALUES (sha256('old'), $1, $2, $2, now() - interval '61 minutes'), (sha256('new'), $1, $2, $2, now())`, a.TenantID, a.ID)
	require.NoError(t, err)
	count := func(table string) int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n))
		return n
	}

	b.startWorker(t, b.config("w"), b.simURL)
	waitFor(t, 10*time.Second, "the prune", func() bool { return count("gateway_tokens") == 1 && count("authorization_codes") == 1 })
	_, err = b.store.FindGatewayToken(ctx, "live")
	require.NoError(t, err)
}
