// Package worker keeps every active account's credentials fresh: it claims due credentials
// from PostgreSQL, calls WeChat, and writes the new value fenced on the generation it read,
// so any number of workers can run against one database and each refresh happens once.
package worker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"wxhub/db"
	"wxhub/wechat"
)

// Config tunes a worker; zero fields take the defaults in brackets.
type Config struct {
	// ID names the worker in claims and logs [hostname-pid].
	ID string
	// Concurrency is how many refreshes run at once [256].
	Concurrency int
	// WriteBatch is the most fetched values stored in one statement [256].
	WriteBatch int
	// WriteDelay is how long a batch waits for more values after its first one [2ms].
	WriteDelay time.Duration
	// WriteConns is how many batches are stored at once, each on its own database connection
	// [2].
	WriteConns int
	// PollInterval is how often the worker looks for due credentials when idle [1s].
	PollInterval time.Duration
	// Lease is how long a claim holds before another worker may take the credential over
	// [60s]. It should exceed CallTimeout plus the time a write takes; a shorter lease only
	// costs extra calls (the fenced write keeps it correct), which tests use to stage a
	// worker that lost its claim.
	Lease time.Duration
	// CallTimeout bounds one WeChat call [10s].
	CallTimeout time.Duration
	// Overlap is how long WeChat keeps accepting a replaced value, and the length of the
	// stable token's rotation window [300s]; tests scale it down with the token lifetime.
	Overlap time.Duration
	// QuotaReserve is the fraction of each daily limit kept for refreshes that app servers
	// request by reporting a rejected value [0.1].
	QuotaReserve float64
	// RetryBase and RetryMax bound the exponential backoff after transient failures [1s, 2m].
	RetryBase, RetryMax time.Duration
	// ConfigRetry is how long to wait after WeChat rejected the account's configuration
	// (bad secret, IP whitelist) [10m].
	ConfigRetry time.Duration
	// QuotaHistoryDays is how many past quota days of the call ledger are kept for operators
	// [35]; older days are deleted once an hour.
	QuotaHistoryDays int
	// WeCom is the client for WeCom's APIs (qyapi.weixin.qq.com or the simulator's
	// /qyapi); nil leaves WeCom apps unrefreshed, each refresh failing with a message saying so.
	WeCom *wechat.Client
	// HourlyWindow is the window of WeCom's hourly ticket limits [1h, the clock hour]; tests
	// shorten it together with the simulator's.
	HourlyWindow time.Duration
	// HourlyLimits overrides WeCom's hourly limits per API (wechat.APIWeComJSAPITicket: 400
	// per corp, wechat.APIWeComAgentTicket: 100 per app), for tests and for corps WeCom gave
	// other limits.
	HourlyLimits map[string]int
	// ContextEvery is how often an authorizer's context (authorizer_info and what it
	// granted) is read from WeChat again [24h]; authorization events read it as they come.
	ContextEvery time.Duration
	// ShutdownGrace is how long Run waits for refreshes in flight after its context ends [30s].
	ShutdownGrace time.Duration
	// Logger receives structured logs [slog.Default()].
	Logger *slog.Logger
	// Registerer receives the worker's metrics [a private registry].
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() Config {
	if c.ID == "" {
		host, _ := os.Hostname()
		c.ID = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	setDefault(&c.Concurrency, 256)
	setDefault(&c.WriteBatch, 256)
	setDefault(&c.WriteDelay, 2*time.Millisecond)
	setDefault(&c.WriteConns, 2)
	setDefault(&c.PollInterval, time.Second)
	setDefault(&c.Lease, 60*time.Second)
	setDefault(&c.CallTimeout, 10*time.Second)
	setDefault(&c.Overlap, 300*time.Second)
	setDefault(&c.QuotaReserve, 0.1)
	setDefault(&c.RetryBase, time.Second)
	setDefault(&c.RetryMax, 2*time.Minute)
	setDefault(&c.ConfigRetry, 10*time.Minute)
	setDefault(&c.QuotaHistoryDays, 35)
	setDefault(&c.ShutdownGrace, 30*time.Second)
	setDefault(&c.HourlyWindow, time.Hour)
	setDefault(&c.ContextEvery, 24*time.Hour)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Registerer == nil {
		c.Registerer = prometheus.NewRegistry()
	}
	return c
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Worker refreshes credentials. Create it with New and start it with Run.
type Worker struct {
	store   *db.Store
	wechat  *wechat.Client
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	writer  *batchWriter
}

// claimTimeout bounds one claim transaction, which shutdown lets finish.
const claimTimeout = 30 * time.Second

// New returns a worker that claims from store and calls WeChat through client.
func New(store *db.Store, client *wechat.Client, cfg Config) (*Worker, error) {
	cfg = cfg.withDefaults()
	if cfg.CallTimeout >= cfg.Overlap {
		return nil, fmt.Errorf("worker: the call timeout %s must be shorter than the overlap %s", cfg.CallTimeout, cfg.Overlap)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	return &Worker{store: store, wechat: client, cfg: cfg, log: cfg.Logger.With("worker", cfg.ID), metrics: m,
		writer: newBatchWriter(store, cfg.WriteBatch, cfg.WriteDelay, m)}, nil
}

// Run claims and refreshes due credentials until ctx ends. Then it claims nothing more and
// waits up to ShutdownGrace for refreshes in flight: they run on a context of their own, so
// a shutdown never cancels a WeChat call whose answer would then be lost. A claim still
// running after the grace period is abandoned; its lease expires and another worker
// takes it.
func (w *Worker) Run(ctx context.Context) error {
	w.log.Info("worker started", "concurrency", w.cfg.Concurrency, "lease", w.cfg.Lease, "write_batch", w.cfg.WriteBatch)
	// The writer outlives the claim loop: refreshes still in flight at shutdown store their
	// values through it.
	writerCtx, stopWriter := context.WithCancel(context.WithoutCancel(ctx))
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		w.writer.run(writerCtx, w.cfg.WriteConns)
	}()
	defer func() {
		stopWriter()
		<-writerDone
	}()
	slots := make(chan struct{}, w.cfg.Concurrency)
	freed := make(chan struct{}, 1)
	var inflight sync.WaitGroup
	refreshCtx := context.WithoutCancel(ctx)
	// Reading contexts makes WeChat calls one after another: it must not hold up claims.
	contextsDone := make(chan struct{})
	go func() {
		defer close(contextsDone)
		for {
			wait := w.readContexts(ctx)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
	defer func() { <-contextsDone }()
	nextBacklog, nextPrune := time.Now(), time.Now()
	claimFailures := 0

	for ctx.Err() == nil {
		if time.Now().After(nextBacklog) {
			w.updateBacklog(ctx)
			nextBacklog = time.Now().Add(5 * time.Second)
		}
		if time.Now().After(nextPrune) {
			w.prune(ctx)
			nextPrune = time.Now().Add(time.Hour)
		}
		free := cap(slots) - len(slots)
		wait := w.cfg.PollInterval
		// A claim costs a transaction whatever its size, so while most slots are busy the
		// worker waits for more to free up rather than claiming one credential at a time.
		if free > 0 && (free == cap(slots) || free >= max(1, cap(slots)/4)) {
			// A claim under way when shutdown begins is finished and its credentials
			// refreshed: dropped after its commit, it would keep the quota it counted and
			// leave unfinished claims, which hold the next fetch of a rotating credential.
			claimCtx, cancelClaim := context.WithTimeout(refreshCtx, claimTimeout)
			res, err := w.store.ClaimDue(claimCtx, db.ClaimRequest{
				Worker: w.cfg.ID, Max: free, Lease: w.cfg.Lease, Plan: w.plan, Postpone: time.Hour,
				OrphanHold: w.cfg.Overlap + orphanMargin, CallBound: w.cfg.CallTimeout + orphanMargin,
				HourlyWindow: w.cfg.HourlyWindow,
			})
			cancelClaim()
			switch {
			case err != nil && ctx.Err() == nil:
				// A failed claim costs the database nothing, and after an outage every second
				// spent waiting here is a second app servers wait for their credentials: the
				// backoff stays short.
				claimFailures++
				wait = backoff(w.cfg.PollInterval, max(2*time.Second, w.cfg.PollInterval), claimFailures)
				w.log.Error("claim failed", "err", err, "retry_in", wait)
			case err == nil:
				claimFailures = 0
			}
			w.metrics.claims.Add(float64(len(res.Claims)))
			w.metrics.overQuota.Add(float64(len(res.OverQuota)))
			for _, appid := range res.OverQuota {
				w.log.Warn("daily quota guard reached; next refresh after the quota day ends", "appid", appid)
			}
			w.metrics.overQuota.Add(float64(len(res.OverHourly)))
			for _, appid := range res.OverHourly {
				w.log.Warn("hourly limit guard reached; next refresh after the hour turns", "appid", appid)
			}
			for _, c := range res.Claims {
				slots <- struct{}{}
				inflight.Add(1)
				go func() {
					defer inflight.Done()
					w.refresh(refreshCtx, c)
					<-slots
					select {
					case freed <- struct{}{}:
					default:
					}
				}()
			}
			if len(res.Claims) == free {
				continue // more may be due: claim again at once
			}
		}
		select {
		case <-ctx.Done():
		case <-freed:
		case <-time.After(wait):
		}
	}
	return w.drain(&inflight)
}

func (w *Worker) drain(inflight *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		inflight.Wait()
		close(done)
	}()
	select {
	case <-done:
		w.log.Info("worker stopped")
		return nil
	case <-time.After(w.cfg.ShutdownGrace):
		return fmt.Errorf("worker: refreshes still running after %s; their claims expire with the lease", w.cfg.ShutdownGrace)
	}
}

// prune deletes what is no longer needed: old days of the quota ledger, old push nonces,
// old authorization codes and the gateway's expired tokens.
func (w *Worker) prune(ctx context.Context) {
	n, err := w.store.PruneQuotaLedger(ctx, w.cfg.QuotaHistoryDays)
	switch {
	case err != nil && ctx.Err() == nil:
		w.log.Warn("quota ledger not pruned", "err", err)
	case n > 0:
		w.log.Info("quota ledger pruned", "rows", n, "kept_days", w.cfg.QuotaHistoryDays)
	}
	// A push older than the API nodes' freshness window (five minutes) is refused on its
	// timestamp, so its nonce need not be remembered; an hour leaves room for clock skew.
	n, err = w.store.PruneCallbackNonces(ctx, time.Hour)
	switch {
	case err != nil && ctx.Err() == nil:
		w.log.Warn("push nonces not pruned", "err", err)
	case n > 0:
		w.log.Info("push nonces pruned", "rows", n)
	}
	n, err = w.store.PruneAuthorizationCodes(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		w.log.Warn("authorization codes not pruned", "err", err)
	case n > 0:
		w.log.Info("authorization codes pruned", "rows", n)
	}
	n, err = w.store.PruneGatewayTokens(ctx)
	switch {
	case err != nil && ctx.Err() == nil:
		w.log.Warn("gateway tokens not pruned", "err", err)
	case n > 0:
		w.log.Info("gateway tokens pruned", "rows", n)
	}
}

func (w *Worker) updateBacklog(ctx context.Context) {
	n, err := w.store.CountDue(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("backlog not measured", "err", err)
		}
		return
	}
	w.metrics.due.Set(float64(n))
}
