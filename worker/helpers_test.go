package worker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"wxhub/db"
	"wxhub/db/dbtest"
	"wxhub/db/keyring"
	"wxhub/wechat"
	"wxhub/wechatsim"
	"wxhub/worker"
)

func TestMain(m *testing.M) { dbtest.Main(m) }

const testKeys = "t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="

// bundle is one test's world: a database, the simulator behind a real HTTP listener, and a
// store over its own pool.
type bundle struct {
	dsn     string
	ring    *keyring.Ring
	store   *db.Store
	sim     *wechatsim.Simulator
	simURL  string
	simc    *wechatsim.Client
	ttl     time.Duration
	overlap time.Duration
}

func setup(t testing.TB, ttl, overlap time.Duration) *bundle {
	t.Helper()
	ring, err := keyring.Parse(testKeys)
	require.NoError(t, err)
	dsn := dbtest.URL(t)
	pool, err := db.Open(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	sim := wechatsim.New(wechatsim.Config{TokenTTL: ttl, Overlap: overlap})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	store := db.NewStore(pool, ring)
	_, err = store.CreateTenant(context.Background(), "acme")
	require.NoError(t, err)
	return &bundle{
		dsn: dsn, ring: ring, store: store, sim: sim, simURL: srv.URL,
		simc: &wechatsim.Client{BaseURL: srv.URL, HTTP: srv.Client()},
		ttl:  ttl, overlap: overlap,
	}
}

// addAccounts creates n accounts in the simulator and in wxhub.
func (b *bundle) addAccounts(t testing.TB, prefix string, n int, mode string, tickets []string, limits map[string]int) []db.Account {
	t.Helper()
	out := make([]db.Account, n)
	for i := range n {
		appid := fmt.Sprintf("%s%06d", prefix, i)
		secret := "secret-" + appid
		require.NoError(t, b.sim.AddAccount(wechatsim.Account{AppID: appid, Secret: secret, Quotas: limits}))
		a, err := b.store.CreateAccount(context.Background(), db.NewAccount{
			Tenant: "acme", AppID: appid, Kind: "official_account", Secret: secret,
			TokenMode: mode, Tickets: tickets, DailyLimits: limits,
		})
		require.NoError(t, err)
		out[i] = a
	}
	return out
}

// config is the worker configuration tests start from: times scaled to the short tokens.
func (b *bundle) config(id string) worker.Config {
	return worker.Config{
		ID: id, Concurrency: 32, PollInterval: 100 * time.Millisecond, Lease: 5 * time.Second,
		CallTimeout: min(3*time.Second, b.overlap/2), Overlap: b.overlap, RetryBase: 200 * time.Millisecond,
		RetryMax: 2 * time.Second, ConfigRetry: 5 * time.Second,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registerer: prometheus.NewRegistry(),
	}
}

// runningWorker is a worker started by startWorker, with its own pool, as a separate
// process would have.
type runningWorker struct {
	stop func()
	reg  *prometheus.Registry
}

// startWorker runs a worker with its own pool against the test database until the test
// ends or stop is called. baseURL is where it calls WeChat.
func (b *bundle) startWorker(t testing.TB, cfg worker.Config, baseURL string) *runningWorker {
	t.Helper()
	pool, err := db.Open(context.Background(), b.dsn)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return startWorkerOnPool(t, b, cfg, baseURL, pool)
}

// startWorkerOnPool runs a worker over a pool the test controls, so the test can take the
// database away from it.
func startWorkerOnPool(t testing.TB, b *bundle, cfg worker.Config, baseURL string, pool *pgxpool.Pool) *runningWorker {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	w, err := worker.New(db.NewStore(pool, b.ring), wechat.New(baseURL, nil), cfg)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("worker %s: %v", cfg.ID, err)
			}
		})
	}
	t.Cleanup(stop)
	return &runningWorker{stop: stop, reg: reg}
}

// counter reads a counter of the worker's metrics by name and labels.
func (r *runningWorker) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := r.reg.Gather()
	require.NoError(t, err)
	var total float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue metric
				}
			}
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

// histogram reads a histogram of the worker's metrics by name: the sum and the number of
// observations.
func (r *runningWorker) histogram(t *testing.T, name string) (sum float64, count uint64) {
	t.Helper()
	families, err := r.reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() == name {
			for _, m := range f.GetMetric() {
				sum += m.GetHistogram().GetSampleSum()
				count += m.GetHistogram().GetSampleCount()
			}
		}
	}
	return sum, count
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checker plays the application servers: every interval it reads each account's current
// access token from the database and, while wxhub still promises it, uses it against the
// simulator, counting rejections.
type checker struct {
	uses, rejected, missing, unpromised atomic.Int64
	mu                                  sync.Mutex
	failures                            []string
}

func (b *bundle) startChecker(t *testing.T, accounts []db.Account, interval time.Duration) *checker {
	t.Helper()
	c := &checker{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sem := make(chan struct{}, 16)
		for ctx.Err() == nil {
			round := time.Now()
			var roundWG sync.WaitGroup
			for _, a := range accounts {
				sem <- struct{}{}
				roundWG.Add(1)
				go func() {
					defer roundWG.Done()
					defer func() { <-sem }()
					c.use(ctx, b, a)
				}()
			}
			roundWG.Wait()
			select {
			case <-ctx.Done():
			case <-time.After(time.Until(round.Add(interval))):
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	return c
}

func (c *checker) use(ctx context.Context, b *bundle, a db.Account) {
	cred, err := b.store.GetCredential(ctx, a.ID, "access_token")
	if err != nil {
		c.missing.Add(1) // not fetched yet
		return
	}
	// A node would not hand the value out with less than a second left.
	if time.Until(db.PromisedUntil(cred.ExpiresAt, cred.ReplaceNotBefore, a.TokenMode == "classic", b.overlap)) < time.Second {
		c.unpromised.Add(1)
		return
	}
	code, err := b.simc.Use(ctx, cred.Value)
	if err != nil {
		return // the checker's own context ended
	}
	c.uses.Add(1)
	if code != 0 {
		c.rejected.Add(1)
		c.mu.Lock()
		c.failures = append(c.failures, fmt.Sprintf("%s generation %d: errcode %d at %s (stored expiry %s)",
			a.AppID, cred.Generation, code, time.Now().Format(time.StampMilli), cred.ExpiresAt.Format(time.StampMilli)))
		c.mu.Unlock()
	}
}

func (c *checker) requireNoRejections(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	require.Positive(t, c.uses.Load(), "the checker used no token")
	require.Zero(t, c.rejected.Load(), "rejected uses (first ones): %v", c.failures[:min(10, len(c.failures))])
}

// requireNoQuotaAnswers asserts that WeChat never had to refuse a call for quota, i.e. wxhub
// never exceeded a daily limit.
func requireNoQuotaAnswers(t *testing.T, stats wechatsim.Stats) {
	t.Helper()
	for appid, s := range stats.Accounts {
		for api, codes := range s.Errors {
			require.Zero(t, codes[45009], "%s got 45009 from %s", appid, api)
		}
	}
}

// gate sits between a worker and the simulator and holds responses for a while, as a
// network or a paused process would, recording what the simulator answered.
type gate struct {
	hold    atomic.Int64 // nanoseconds to hold each response
	mu      sync.Mutex
	bodies  []string
	arrived chan struct{}
}

func newGate(t testing.TB, sim http.Handler) (*gate, string) {
	g := &gate{arrived: make(chan struct{}, 100)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, r)
		g.mu.Lock()
		g.bodies = append(g.bodies, rec.Body.String())
		g.mu.Unlock()
		g.arrived <- struct{}{}
		time.Sleep(time.Duration(g.hold.Load()))
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	return g, srv.URL
}
