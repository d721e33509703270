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
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"wxhub/db"
	"wxhub/server"
	"wxhub/wechat"
)

func runServe(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("serve", stdout)
	databaseURL := fs.String("database-url", envOr("DATABASE_URL", ""), "PostgreSQL URL (env DATABASE_URL)")
	listenerURL := fs.String("listener-database-url", envOr("WXHUB_LISTENER_DATABASE_URL", ""),
		"PostgreSQL URL for the LISTEN connection, direct (not through a transaction pooler); default --database-url (env WXHUB_LISTENER_DATABASE_URL)")
	listen := fs.String("listen", envOr("WXHUB_LISTEN", "127.0.0.1:8080"), "address to serve the API on (env WXHUB_LISTEN)")
	bound := fs.Duration("staleness-bound", 30*time.Second, "longest a cached credential is served without a live listener or a fresh read")
	wait := fs.Duration("refresh-wait", 10*time.Second, "how long a request waits for a missing or expired credential before 503")
	overlap := fs.Duration("overlap", 300*time.Second, "how long WeChat accepts a replaced token, as given to the workers (change only against a simulator)")
	rateLimit := fs.Float64("rate-limit", 1000, "requests per second one API key may make to this node (bursts of twice that); negative disables")
	badKeyRate := fs.Float64("bad-key-rate", 5, "unknown API keys per second one client address may send (bursts of twice that) before its keys the node has not cached are answered 429 without a database lookup; negative disables")
	gatewayListen := fs.String("gateway-listen", envOr("WXHUB_GATEWAY_LISTEN", ""), "address of the WeChat-compatible gateway (point an SDK's API host here); empty: no gateway (env WXHUB_GATEWAY_LISTEN)")
	gatewayUpstream := fs.String("gateway-upstream", envOr("WXHUB_GATEWAY_UPSTREAM", server.DefaultGatewayUpstream), "where the gateway forwards the WeChat calls it does not answer itself (env WXHUB_GATEWAY_UPSTREAM)")
	wechatURL := fs.String("wechat-base-url", envOr("WXHUB_WECHAT_BASE_URL", server.DefaultWeChatBaseURL), "WeChat API base URL for the calls a request makes itself (a component's pre-authorization code) (env WXHUB_WECHAT_BASE_URL)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: wxhub serve [flags]\n\nNeeds WXHUB_KEYS; WXHUB_BOOTSTRAP_ADMIN_KEY, if set, makes sure an admin key with that value exists.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %s", errUsage, strings.Join(fs.Args(), " "))
	}
	if *badKeyRate == 0 {
		return fmt.Errorf("%w: --bad-key-rate 0 would refuse every key not yet cached after one mistake; use a negative value to disable it", errUsage)
	}
	if *rateLimit == 0 {
		return fmt.Errorf("%w: --rate-limit 0 would refuse everything; use a negative value to disable it", errUsage)
	}
	if *bound < 3*time.Second || *wait <= 0 || *overlap <= 0 {
		return fmt.Errorf("%w: need --staleness-bound >= 3s, --refresh-wait > 0 and --overlap > 0", errUsage)
	}
	if *overlap < *bound+2*time.Second {
		return fmt.Errorf("%w: --overlap %s must exceed --staleness-bound %s by 2s at least: classic tokens and tickets are promised for the overlap minus the bound", errUsage, *overlap, *bound)
	}
	logger, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	ring, err := loadKeyRing()
	if err != nil {
		return err
	}
	store, closeStore, err := openStore(ctx, *databaseURL, "wxhub-serve", ring)
	if err != nil {
		return err
	}
	defer closeStore()
	if key := os.Getenv("WXHUB_BOOTSTRAP_ADMIN_KEY"); key != "" {
		err := server.EnsureBootstrapKey(ctx, store, key)
		if errors.Is(err, db.ErrKeyRevoked) {
			logger.Warn("WXHUB_BOOTSTRAP_ADMIN_KEY was revoked and stays revoked; remove it from the environment")
		} else if err != nil {
			return err
		}
	}
	if *listenerURL == "" {
		*listenerURL = *databaseURL
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	srv := newAPIServer(store, server.Config{ListenerURL: *listenerURL, StalenessBound: *bound, RefreshWait: *wait, Overlap: *overlap, RateLimit: *rateLimit, BadKeyRate: *badKeyRate, WeChat: wechat.New(*wechatURL, nil), Logger: logger})
	if *gatewayListen != "" {
		_, stop, err := startGateway(ctx, srv, *gatewayListen, *gatewayUpstream, logger)
		if err != nil {
			return err
		}
		defer stop()
	}
	logger.Info("API listening", "addr", ln.Addr().String())
	return runAPI(ctx, srv, srv.Handler(), ln)
}

// startGateway serves the node's WeChat-compatible gateway on addr, forwarding to upstream,
// until stop is called, and returns the address it listens on. Its server has longer timeouts than the API's: media
// bodies stream through it, and its wait for WeChat is bounded by the proxy's own client.
func startGateway(ctx context.Context, srv *server.Server, addr, upstream string, logger *slog.Logger) (listening string, stop func(), err error) {
	gw, err := srv.Gateway(server.GatewayConfig{Upstream: upstream})
	if err != nil {
		return "", nil, fmt.Errorf("%w: --gateway-upstream: %v", errUsage, err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("gateway: %w", err)
	}
	hs := &http.Server{
		Handler:           gw.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Minute,
		WriteTimeout:      10 * time.Minute,
		IdleTimeout:       2 * time.Minute,
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("gateway stopped", "err", err)
		}
	}()
	logger.Info("gateway listening", "addr", ln.Addr().String(), "upstream", upstream)
	var once sync.Once
	stop = func() {
		once.Do(func() {
			shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
			defer cancel()
			_ = hs.Shutdown(shutdownCtx)
			<-done
		})
	}
	return ln.Addr().String(), stop, nil
}

// newAPIServer builds an API node whose /metrics also carries the process's Go metrics.
func newAPIServer(store *db.Store, cfg server.Config) *server.Server {
	cfg.Registry = prometheus.NewRegistry()
	cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return server.New(store, cfg)
}

// runAPI runs the node's listener and serves handler (the node's, or one around it) on ln
// until ctx ends.
func runAPI(ctx context.Context, srv *server.Server, handler http.Handler, ln net.Listener) error {
	listenerCtx, stopListener := context.WithCancel(ctx)
	defer stopListener()
	listenerDone := make(chan struct{})
	go func() {
		srv.Run(listenerCtx)
		close(listenerDone)
	}()
	httpSrv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(ln) }()
	var err error
	select {
	case err = <-errc:
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		err = httpSrv.Shutdown(shutdownCtx)
	}
	stopListener()
	<-listenerDone
	return err
}
