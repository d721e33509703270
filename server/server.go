// Package server is wxhub's API node: the REST API application servers call for tokens,
// tickets and account context, with credentials served from memory and kept true by
// LISTEN/NOTIFY. Nodes are stateless; run any number behind a load balancer.
package server

import (
	"context"
	_ "embed"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/singleflight"

	"wxhub/db"
	"wxhub/wechat"
)

// Version is the API version in the OpenAPI document.
const Version = "1.0.0"

// Config tunes an API node; zero fields take the defaults in brackets.
type Config struct {
	// ListenerURL is the database URL of the LISTEN connection, which must reach PostgreSQL
	// directly (not through a transaction pooler) [the store's URL, given by the caller].
	ListenerURL string
	// StalenessBound is the longest a cached entry is served without a live listener or a
	// fresh read [30s].
	StalenessBound time.Duration
	// RefreshWait is how long a request waits for a credential that is missing, expired or
	// being refreshed before it answers 503 [10s].
	RefreshWait time.Duration
	// Overlap is how long WeChat keeps accepting a value after the next one is fetched [300s].
	// Responses for classic tokens and tickets report an expiry no later than the overlap
	// after the earliest time their replacement may be fetched, nor than the overlap minus
	// StalenessBound from now, so clients that cache until expires_at never hold a dead
	// value. It must exceed StalenessBound by more than a second.
	Overlap time.Duration
	// RateLimit is how many requests per second one API key may make to this node, with
	// bursts of twice that [1000]; negative disables the limit.
	RateLimit float64
	// BadKeyRate is how many unknown API keys per second one client address may send, with
	// bursts of twice that, before the keys it sends that the node has not cached are
	// answered 429 without a database lookup [5]; negative disables the limit. Known keys
	// from an address that sends none are never limited by it.
	BadKeyRate float64
	// WeChat is the client for the calls a request makes to WeChat itself (a component's
	// pre-authorization code) [https://api.weixin.qq.com].
	WeChat *wechat.Client
	// Logger receives structured logs [slog.Default()].
	Logger *slog.Logger
	// Registry receives the node's metrics and is served at /metrics [a new registry].
	Registry *prometheus.Registry
}

// DefaultWeChatBaseURL is WeChat's API host.
const DefaultWeChatBaseURL = "https://api.weixin.qq.com"

// Server is one API node.
type Server struct {
	store    *db.Store
	cfg      Config
	log      *slog.Logger
	cache    *Cache
	keys     *keyCache
	listener *Listener
	api      huma.API
	handler  http.Handler
	metrics  *apiMetrics
	limiters sync.Map // API key id → *keyLimiter
	// reports coalesces concurrent reports of one rejected token; reportsSent counts the
	// reports that reached the database.
	reports     singleflight.Group
	reportsSent atomic.Int64
	reported    sync.Map // account id → reported
	fastServed  atomic.Int64
	// dead (account id → deadToken) holds access tokens reported rejected, deadCount how
	// many, so a read checks the map only when there are some.
	dead      sync.Map
	deadCount atomic.Int64
	// gateway is the node's WeChat-compatible gateway, once built (see Gateway).
	gateway atomic.Pointer[Gateway]
}

// New builds an API node over store. Call Run to start its listener; the handler answers
// at once (readiness waits for the listener).
func New(store *db.Store, cfg Config) *Server {
	if cfg.StalenessBound == 0 {
		cfg.StalenessBound = 30 * time.Second
	}
	if cfg.RefreshWait == 0 {
		cfg.RefreshWait = 10 * time.Second
	}
	if cfg.Overlap == 0 {
		cfg.Overlap = 300 * time.Second
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 1000
	}
	if cfg.BadKeyRate == 0 {
		cfg.BadKeyRate = 5
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.WeChat == nil {
		cfg.WeChat = wechat.New(DefaultWeChatBaseURL, nil)
	}
	s := &Server{store: store, cfg: cfg, log: cfg.Logger}
	s.cache = NewCache(store, cfg.StalenessBound)
	s.keys = newKeyCache(store, cfg.StalenessBound, cfg.Logger, cfg.BadKeyRate)
	s.listener = &Listener{url: cfg.ListenerURL, cache: s.cache, keys: s.keys, bound: cfg.StalenessBound, log: cfg.Logger}
	s.metrics = newAPIMetrics(cfg.Registry, s)

	mux := http.NewServeMux()
	s.api = humago.New(mux, apiConfig())
	s.api.UseMiddleware(s.observe, s.authenticate)
	s.register()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.HandleFunc("GET /readyz", s.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /docs", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(docsPage)
	})
	s.registerUI(mux)
	mux.HandleFunc("/", notRouted(mux))
	s.handler = s.fastReads(limitBodies(mux))
	return s
}

// notRouted answers what no route takes with a problem document instead of the mux's plain
// text: 405 with Allow when the path exists under other methods, 404 otherwise.
func notRouted(mux *http.ServeMux) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "/" && pattern != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) == 0 {
			writeProblem(w, http.StatusNotFound, "no operation at this path; see /openapi.json")
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeProblem(w, http.StatusMethodNotAllowed, r.Method+" is not allowed here; allowed: "+strings.Join(allow, ", "))
	}
}

// Handler is the node's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Cache exposes the credential cache, for tests and metrics.
func (s *Server) Cache() *Cache { return s.cache }

// Listener exposes the LISTEN session, for readiness and tests.
func (s *Server) Listener() *Listener { return s.listener }

// Run keeps the listener connected until ctx ends, and meanwhile, once a minute, forgets
// what the node no longer needs: notifications older than a minute, credentials no request
// waited for in that time, client addresses that stopped sending unknown keys, tokens
// reported dead a day ago, and what the gateway no longer needs.
func (s *Server) Run(ctx context.Context) {
	go func() {
		tick := time.NewTicker(time.Minute)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				s.cache.forget(now.Add(-time.Minute))
				s.keys.failures.prune(now)
				s.forgetDead(now)
				if g := s.gateway.Load(); g != nil {
					g.prune(now)
				}
			}
		}
	}()
	s.listener.Run(ctx)
}

// KeyLookups is how many times this node asked the database about an API key.
func (s *Server) KeyLookups() int64 { return s.keys.lookups.Load() }

// KeyCacheEntries is how many API keys this node holds in memory.
func (s *Server) KeyCacheEntries() int { return s.keys.entries() }

// ready answers 200 when the database answers and the listener is connected.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	switch {
	case !s.listener.Connected():
		http.Error(w, "listener not connected", http.StatusServiceUnavailable)
	case s.store.Ping(ctx) != nil:
		http.Error(w, "database not reachable", http.StatusServiceUnavailable)
	default:
		_, _ = w.Write([]byte("ready\n"))
	}
}

// maxBodyBytes bounds request bodies; wxhub's largest are settings documents.
const maxBodyBytes = 64 << 10

// limitBodies refuses oversized bodies before anything reads them.
func limitBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBodyBytes {
			writeProblem(w, http.StatusRequestEntityTooLarge, "request body larger than 64 KiB")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		next.ServeHTTP(w, r)
	})
}

func apiConfig() huma.Config {
	registry := huma.NewMapRegistry("#/components/schemas/", huma.DefaultSchemaNamer)
	cfg := huma.Config{
		OpenAPI: &huma.OpenAPI{
			OpenAPI: "3.1.0",
			Info: &huma.Info{
				Title:   "wxhub",
				Version: Version,
				Description: "Central control server for WeChat credentials. Application servers take the current " +
					"access token, tickets and JS-SDK configuration of their WeChat accounts from wxhub and never " +
					"call WeChat's token endpoints themselves. Errors are RFC 9457 problem details.",
			},
			Components: &huma.Components{
				Schemas: registry,
				SecuritySchemes: map[string]*huma.SecurityScheme{
					"bearer": {Type: "http", Scheme: "bearer", Description: "An API key: `Authorization: Bearer wxh_…`."},
				},
			},
			Security: []map[string][]string{{"bearer": {}}},
		},
		OpenAPIPath:   "/openapi",
		Formats:       map[string]huma.Format{"application/json": huma.DefaultJSONFormat, "json": huma.DefaultJSONFormat},
		DefaultFormat: "application/json",
	}
	return cfg
}

//go:embed docs.html
var docsPage []byte

// errNoPrincipal should not happen: every operation runs behind authenticate.
var errNoPrincipal = errors.New("no principal in context")
