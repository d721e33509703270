package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"wxhub/db"
	"wxhub/db/keyring"
	"wxhub/wechat"
	"wxhub/worker"
)

func runWorker(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("worker", stdout)
	databaseURL := fs.String("database-url", envOr("DATABASE_URL", ""), "PostgreSQL URL (env DATABASE_URL)")
	listen := fs.String("listen", envOr("WXHUB_LISTEN", "127.0.0.1:8082"), "address for /metrics and /healthz; empty disables (env WXHUB_LISTEN)")
	baseURL := fs.String("wechat-base-url", envOr("WXHUB_WECHAT_BASE_URL", "https://api.weixin.qq.com"), "WeChat API base URL (env WXHUB_WECHAT_BASE_URL)")
	wecomURL := fs.String("wecom-base-url", envOr("WXHUB_WECOM_BASE_URL", defaultWeComBaseURL), "WeCom API base URL, for wecom_app accounts (env WXHUB_WECOM_BASE_URL)")
	cfg := worker.Config{}
	fs.StringVar(&cfg.ID, "id", "", "worker name in claims and logs (default hostname-pid)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 256, "refreshes in flight at once")
	fs.IntVar(&cfg.WriteBatch, "write-batch", 256, "most fetched values stored in one statement")
	fs.DurationVar(&cfg.WriteDelay, "write-delay", 2*time.Millisecond, "how long a batch of fetched values waits for more after its first")
	fs.IntVar(&cfg.WriteConns, "write-conns", 2, "batches of fetched values stored at once")
	fs.IntVar(&cfg.QuotaHistoryDays, "quota-history-days", 35, "past quota days of the call ledger kept for operators")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", time.Second, "how often to look for due credentials when idle")
	fs.DurationVar(&cfg.Lease, "lease", 60*time.Second, "how long a claim holds before another worker may take it over")
	fs.DurationVar(&cfg.CallTimeout, "call-timeout", 10*time.Second, "timeout of one WeChat call")
	fs.DurationVar(&cfg.Overlap, "overlap", 300*time.Second, "how long WeChat accepts a replaced token (change only against a simulator)")
	fs.Float64Var(&cfg.QuotaReserve, "quota-reserve", 0.1, "fraction of each daily limit kept for refreshes app servers request")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: wxhub worker [flags]\n\nNeeds WXHUB_KEYS, the key ring that encrypts secrets and tokens.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %s", errUsage, strings.Join(fs.Args(), " "))
	}
	if cfg.Lease <= cfg.CallTimeout {
		return fmt.Errorf("%w: --lease must be longer than --call-timeout", errUsage)
	}
	if cfg.Overlap <= cfg.CallTimeout {
		return fmt.Errorf("%w: --overlap must be longer than --call-timeout", errUsage)
	}
	if cfg.Concurrency < 1 || cfg.QuotaReserve < 0 || cfg.QuotaReserve >= 1 {
		return fmt.Errorf("%w: need --concurrency >= 1 and 0 <= --quota-reserve < 1", errUsage)
	}
	if cfg.WriteBatch < 1 || cfg.WriteConns < 1 || cfg.WriteDelay <= 0 || cfg.QuotaHistoryDays < 1 {
		return fmt.Errorf("%w: need --write-batch >= 1, --write-conns >= 1, --write-delay > 0 and --quota-history-days >= 1", errUsage)
	}
	logger, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	ring, err := loadKeyRing()
	if err != nil {
		return err
	}
	store, closeStore, err := openStore(ctx, *databaseURL, "wxhub-worker", ring)
	if err != nil {
		return err
	}
	defer closeStore()
	reg := prometheus.NewRegistry()
	cfg.Logger, cfg.Registerer = logger, reg
	hc := &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConnsPerHost: cfg.Concurrency,
		IdleConnTimeout:     90 * time.Second,
	}}
	cfg.WeCom = wechat.New(*wecomURL, hc)
	w, err := worker.New(store, wechat.New(*baseURL, hc), cfg)
	if err != nil {
		return err
	}
	if *listen != "" {
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
		go func() {
			if err := serveUntilDone(ctx, ln, mux); err != nil {
				logger.Error("metrics listener stopped", "err", err)
			}
		}()
		logger.Info("worker metrics listening", "addr", ln.Addr().String())
	}
	return w.Run(ctx)
}

// defaultWeComBaseURL is WeCom's API host.
const defaultWeComBaseURL = "https://qyapi.weixin.qq.com"

// openStore connects to the database as application (its application_name) and refuses a
// key ring that cannot open what is stored; the returned function closes the pool.
func openStore(ctx context.Context, databaseURL, application string, ring *keyring.Ring) (*db.Store, func(), error) {
	pool, err := db.OpenFor(ctx, databaseURL, application)
	if err != nil {
		return nil, nil, err
	}
	store := db.NewStore(pool, ring)
	if err := store.CheckKeyRing(ctx); err != nil {
		pool.Close()
		return nil, nil, err
	}
	return store, pool.Close, nil
}

// loadKeyRing reads WXHUB_KEYS; serve and worker refuse to run without it, since they would
// otherwise have to store secrets in plain text.
func loadKeyRing() (*keyring.Ring, error) {
	spec := os.Getenv(keyring.EnvVar)
	if spec == "" {
		return nil, errors.New(keyring.EnvVar + " is not set: give the key ring as id:base64(32 bytes),… (the first key encrypts)")
	}
	return keyring.Parse(spec)
}

// newLogger returns a JSON logger on stderr at the given level.
func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level: want debug, info, warn or error", errUsage)
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}
