package server

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/prometheus/client_golang/prometheus"

	"wxhub/db"
)

// The gateway speaks WeChat's own protocol on a listener of its own, so an app whose SDK
// fetches tokens from api.weixin.qq.com migrates by pointing the SDK's API host at wxhub.
// Token and ticket requests are answered from wxhub's credential cache (the same path as
// the REST API: s.credential), never by a call to WeChat on the request path (only an
// authorization code nobody exchanged yet is, in api_query_auth); every other request is
// forwarded to WeChat with the account's current token injected (gateway_proxy.go). Answers
// have WeChat's shapes and WeChat's habit of HTTP 200 with an errcode.

// GatewayConfig configures the WeChat-compatible gateway; zero fields take the defaults in
// brackets.
type GatewayConfig struct {
	// Upstream is WeChat's API base URL, where requests other than tokens and tickets are
	// forwarded [https://api.weixin.qq.com].
	Upstream string
	// Transport makes the forwarded calls [an http.Transport with connect, TLS and
	// response-header timeouts, and no transparent compression].
	Transport http.RoundTripper
	// RetryBodyLimit is the largest request body kept in memory so that a call WeChat
	// rejects for its token can be sent again with the new token [1 MiB]. Larger bodies
	// (media uploads) stream through once, and a rejection is passed back as it came.
	RetryBodyLimit int64
}

// DefaultGatewayUpstream is WeChat's API host.
const DefaultGatewayUpstream = DefaultWeChatBaseURL

// WeChat errcodes the gateway answers itself.
const (
	wxBusy               = -1
	wxInvalidCredential  = 40001
	wxInvalidGrantType   = 40002
	wxInvalidAppID       = 40013
	wxInvalidAccessToken = 40014
	wxInvalidArgs        = 40097
	wxInvalidSecret      = 40125
	wxMissingAccessToken = 41001
	wxMissingAppID       = 41002
	wxMissingSecret      = 41004
	wxTokenExpired       = 42001
	wxRequireGET         = 43001
	wxRequirePOST        = 43002
	wxQuotaExceeded      = 45009
	wxMinuteQuota        = 45011
	wxDataFormat         = 47001
	wxAPIUnauthorized    = 48001
	// The third-party platform's codes.
	wxNotAuthorized        = 61003
	wxCodeInvalid          = 61009
	wxInvalidComponent     = 61011
	wxNeedsComponentToken  = 61014
	wxNeedsAccountToken    = 61015
	wxUseComponentTokenAPI = 61024
)

// wxMessages are WeChat's errmsg texts for the codes the gateway answers.
var wxMessages = map[int]string{
	wxBusy:               "system error",
	wxInvalidCredential:  "invalid credential, access_token is invalid or not latest",
	wxInvalidGrantType:   "invalid grant_type",
	wxInvalidAppID:       "invalid appid",
	wxInvalidAccessToken: "invalid access_token",
	wxInvalidArgs:        "invalid args",
	wxInvalidSecret:      "invalid appsecret",
	wxMissingAccessToken: "access_token missing",
	wxMissingAppID:       "appid missing",
	wxMissingSecret:      "appsecret missing",
	wxTokenExpired:       "access_token expired",
	wxRequireGET:         "require GET method",
	wxRequirePOST:        "require POST method",
	wxQuotaExceeded:      "reach max api daily quota limit",
	wxMinuteQuota:        "api minute-quota reach limit mustslower retry next minute",
	wxDataFormat:         "data format error",
	wxAPIUnauthorized:    "api unauthorized",

	wxNotAuthorized:        "component is not authorized by this account",
	wxCodeInvalid:          "code is invalid",
	wxInvalidComponent:     "invalid component",
	wxNeedsComponentToken:  "must use component token for component api",
	wxNeedsAccountToken:    "must use biz account token for not component api",
	wxUseComponentTokenAPI: "must use api(api_component_token) to get token for component acct",
}

// wxError is WeChat's error answer. It is also the error the gateway's steps return, so a
// failure carries the answer it gets.
type wxError struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

func (e *wxError) Error() string { return fmt.Sprintf("errcode %d: %s", e.ErrCode, e.ErrMsg) }

// wxErr is WeChat's answer for code, with a note from wxhub after WeChat's own text.
func wxErr(code int, note string) *wxError {
	msg := wxMessages[code]
	if note != "" {
		msg += " (wxhub gateway: " + note + ")"
	}
	return &wxError{ErrCode: code, ErrMsg: msg}
}

// wxToken is WeChat's token answer: no errcode field.
type wxToken struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// wxTicket is WeChat's getticket answer.
type wxTicket struct {
	ErrCode   int    `json:"errcode"`
	ErrMsg    string `json:"errmsg"`
	Ticket    string `json:"ticket"`
	ExpiresIn int64  `json:"expires_in"`
}

// Path classes of the gateway's metrics.
const (
	classToken       = "token"
	classStableToken = "stable_token"
	classTicket      = "ticket"
	classProxy       = "proxy"
	classWeComToken  = "wecom_token"
	classWeComTicket = "wecom_ticket"
)

// gatewayRoute is one path the gateway answers itself.
type gatewayRoute struct {
	class string
	serve func(w http.ResponseWriter, r *http.Request) error
}

// Gateway is the WeChat-compatible gateway of an API node: serve its Handler on a listener
// of its own.
type Gateway struct {
	s        *Server
	upstream *url.URL
	proxy    *httputil.ReverseProxy
	retryMax int64
	routes   map[string]gatewayRoute
	// salt keys the hashes of secrets and tokens this node keeps, so a memory dump does not
	// allow testing guesses against them offline.
	salt [32]byte
	// unknownTokens limits, per client address, lookups of tokens no node handed out. It is
	// apart from the wrong secrets' limit (the node's BadKeyRate): an app whose SDK keeps
	// presenting a stale token must not slow down its neighbours' token fetches behind the
	// same address.
	unknownTokens *addrLimiter
	secrets       sync.Map // appid → secretEntry
	corps         sync.Map // WeCom corp id → wecomCorp
	handed        sync.Map // tokenHash → handedToken
	metrics       gatewayMetrics
}

type tokenHash [32]byte

// secretEntry is what the gateway keeps of an account to authenticate callers by its
// AppSecret: a salted hash of the secret, never the secret.
type secretEntry struct {
	hash     [32]byte
	tenantID int64
	kind     string
	loadedAt time.Time
}

// handedToken is an access token a gateway node handed out: whose it is, and until when it
// can be valid at WeChat.
type handedToken struct {
	appid     string
	accountID int64
	tenantID  int64
	until     time.Time
	corpID    string // set for a WeCom app's token
	component bool   // a component_access_token
	shared    bool   // recorded in the database, for the other nodes
}

// handedFor is the entry of a credential's value handed out.
func handedFor(cred db.CachedCredential) handedToken {
	return handedToken{appid: cred.AppID, accountID: cred.AccountID, tenantID: cred.TenantID, until: cred.ExpiresAt}
}

type gatewayMetrics struct {
	requests *prometheus.CounterVec
	retries  prometheus.Counter
}

// Gateway builds the node's WeChat-compatible gateway. Call it once per node: its metrics
// join the node's registry.
func (s *Server) Gateway(cfg GatewayConfig) (*Gateway, error) {
	if cfg.Upstream == "" {
		cfg.Upstream = DefaultGatewayUpstream
	}
	up, err := url.Parse(cfg.Upstream)
	if err != nil || (up.Scheme != "http" && up.Scheme != "https") || up.Host == "" {
		return nil, fmt.Errorf("gateway upstream %q: need an absolute http or https URL", cfg.Upstream)
	}
	if cfg.RetryBodyLimit == 0 {
		cfg.RetryBodyLimit = 1 << 20
	}
	if cfg.Transport == nil {
		cfg.Transport = newUpstreamTransport()
	}
	g := &Gateway{s: s, upstream: up, retryMax: cfg.RetryBodyLimit, unknownTokens: newAddrLimiter(s.cfg.BadKeyRate)}
	if _, err := rand.Read(g.salt[:]); err != nil {
		return nil, fmt.Errorf("gateway salt: %w", err)
	}
	g.metrics = gatewayMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wxhub_gateway_requests_total",
			Help: "Requests to the WeChat-compatible gateway by path class (token, stable_token, ticket, wecom_token, wecom_ticket, component_token, query_auth, authorizer_token, component_proxy, proxy) and outcome (ok, or the errcode the gateway answered itself; a forwarded answer is ok whatever WeChat said).",
		}, []string{"path", "outcome"}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "wxhub_gateway_retries_total",
			Help: "Forwarded calls WeChat rejected for their token (40001, 40014, 42001) that were sent again with the token wxhub refreshed.",
		}),
	}
	if err := s.cfg.Registry.Register(g.metrics.requests); err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	if err := s.cfg.Registry.Register(g.metrics.retries); err != nil {
		return nil, fmt.Errorf("gateway metrics: %w", err)
	}
	g.proxy = g.newProxy(cfg.Transport)
	g.routes = map[string]gatewayRoute{
		"/cgi-bin/token":            {classToken, g.serveToken},
		"/cgi-bin/stable_token":     {classStableToken, g.serveStableToken},
		"/cgi-bin/ticket/getticket": {classTicket, g.serveTicket},
		// WeCom: its host is qyapi.weixin.qq.com, but an SDK pointed at the gateway sends these
		// paths here (gateway_wecom.go). They never reach the proxy.
		"/cgi-bin/gettoken":         {classWeComToken, g.serveWeComToken},
		"/cgi-bin/get_jsapi_ticket": {classWeComTicket, g.serveWeComCorpTicket},
		"/cgi-bin/ticket/get":       {classWeComTicket, g.serveWeComAgentTicket},

		// A third-party platform's (gateway_component.go): its token, and its authorizers'
		// tokens, which wxhub keeps. Its other endpoints are forwarded with its token injected.
		"/cgi-bin/component/api_component_token":  {classComponentToken, g.serveComponentToken},
		"/cgi-bin/component/api_query_auth":       {classQueryAuth, g.serveQueryAuth},
		"/cgi-bin/component/api_authorizer_token": {classAuthorizerToken, g.serveAuthorizerToken},
	}
	s.gateway.Store(g)
	return g, nil
}

// Handler serves the gateway: WeChat's and WeCom's token and ticket endpoints, the
// component's and its authorizers' tokens, and the proxy for every other path.
func (g *Gateway) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, ok := g.routes[r.URL.Path]
		switch {
		case ok:
		case strings.HasPrefix(r.URL.Path, "/cgi-bin/component/") && r.URL.Query().Has(componentTokenParam):
			route = gatewayRoute{classComponentProxy, g.serveComponentProxy}
		default:
			route = gatewayRoute{classProxy, g.serveProxy}
		}
		outcome := "ok"
		if err := route.serve(w, r); err != nil {
			var we *wxError
			if !errors.As(err, &we) {
				g.s.log.Error("gateway", "path", r.URL.Path, "err", err)
				we = wxErr(wxBusy, "")
			}
			writeWeChat(w, we)
			outcome = strconv.Itoa(we.ErrCode)
		}
		g.metrics.requests.WithLabelValues(route.class, outcome).Inc()
	})
}

// writeWeChat answers as WeChat does: JSON with HTTP 200, errors included.
func writeWeChat(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json; encoding=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(v)
}

// serveToken answers GET /cgi-bin/token from wxhub's cache. Unlike WeChat's, it never issues
// a new token: every caller gets the current one, so no app kills another's.
func (g *Gateway) serveToken(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return wxErr(wxRequireGET, "")
	}
	q := r.URL.Query()
	if err := checkTokenRequest(q.Get("grant_type"), q.Get("appid"), q.Get("secret")); err != nil {
		return err
	}
	cred, err := g.accessToken(r, q.Get("appid"), q.Get("secret"), wxInvalidSecret, false)
	if err != nil {
		return err
	}
	writeWeChat(w, wxToken{AccessToken: cred.Value, ExpiresIn: g.expiresIn(cred)})
	return nil
}

// stableTokenRequest is the body of POST /cgi-bin/stable_token.
type stableTokenRequest struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

// serveStableToken answers POST /cgi-bin/stable_token. force_refresh asks for a refresh of
// the token the caller would get, compare-and-refresh, at most one per requestInterval per
// credential (as the REST API's min_ttl and invalidate do); it never makes WeChat force a
// new token. A wrong secret is 40001 here, as WeChat answers on this endpoint.
func (g *Gateway) serveStableToken(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return wxErr(wxRequirePOST, "")
	}
	var req stableTokenRequest
	if err := readWeChatJSON(r, &req); err != nil {
		return err
	}
	if err := checkTokenRequest(req.GrantType, req.AppID, req.Secret); err != nil {
		return err
	}
	cred, err := g.accessToken(r, req.AppID, req.Secret, wxInvalidCredential, req.ForceRefresh)
	if err != nil {
		return err
	}
	writeWeChat(w, wxToken{AccessToken: cred.Value, ExpiresIn: g.expiresIn(cred)})
	return nil
}

// checkTokenRequest checks a token request's parameters in WeChat's order.
func checkTokenRequest(grantType, appid, secret string) error {
	switch {
	case grantType != "client_credential":
		return wxErr(wxInvalidGrantType, "")
	case appid == "":
		return wxErr(wxMissingAppID, "")
	case secret == "":
		return wxErr(wxMissingSecret, "")
	}
	return nil
}

// accessToken authenticates a token request and returns the account's current token,
// refreshed first (compare and refresh) when force asks for it. badSecret is the errcode of a
// wrong secret on the endpoint asked.
func (g *Gateway) accessToken(r *http.Request, appid, secret string, badSecret int, force bool) (db.CachedCredential, error) {
	ctx, kind, err := g.authenticate(r, appid, secret, badSecret)
	if err != nil {
		return db.CachedCredential{}, err
	}
	switch kind {
	case "official_account", "mini_program":
	case "component":
		return db.CachedCredential{}, wxErr(wxUseComponentTokenAPI, "")
	default:
		return db.CachedCredential{}, wxErr(wxInvalidAppID, "a "+kind+" account has no token at this endpoint")
	}
	cred, err := g.s.credential(ctx, appid, "access_token", 0)
	if err == nil && force {
		cred, err = g.s.forceRefresh(ctx, appid, cred)
	}
	if err != nil {
		return db.CachedCredential{}, g.wxFromAPI(err, "")
	}
	g.remember(ctx, cred.Value, handedFor(cred))
	return cred, nil
}

// expiresIn is what wxhub promises for a value, in whole seconds rounded down: the REST
// API's expires_in.
func (g *Gateway) expiresIn(cred db.CachedCredential) int64 {
	return secondsLeft(g.s.goodUntil(cred, time.Now()))
}

// secretTTL is how long the gateway trusts a cached secret hash without reading the account
// again; a changed secret is also noticed at once when a caller sends one that does not
// match.
func (g *Gateway) secretTTL() time.Duration { return g.s.cfg.StalenessBound }

// authenticate resolves the caller of a token request, who proves it may have the
// account's token with the account's AppSecret (compared in constant time with a salted
// hash this node keeps) or a wxhub API key in the secret field (whose tenant must own the
// account; admin keys may read all). It returns the context carrying the principal, and the
// account's kind. Like the REST API, it looks up nothing more for a client address that sent
// too many wrong secrets or keys (BadKeyRate), unless the secret matches what the node holds.
func (g *Gateway) authenticate(r *http.Request, appid, secret string, badSecret int) (context.Context, string, error) {
	ctx := r.Context()
	now := time.Now()
	addr := clientAddr(r.RemoteAddr)
	given := g.hash(secret)
	if v, ok := g.secrets.Load(appid); ok {
		e := v.(secretEntry)
		if now.Sub(e.loadedAt) < g.secretTTL() && subtle.ConstantTimeCompare(e.hash[:], given[:]) == 1 {
			return withPrincipal(ctx, Principal{Role: RoleTenant, TenantID: e.tenantID}), e.kind, nil
		}
	}
	limiter := g.s.keys.failures
	if limiter.exhausted(addr, now) {
		return nil, "", wxErr(wxMinuteQuota, "too many wrong secrets or keys from this address; slow down")
	}
	e, err := g.loadSecret(ctx, appid, now)
	if errors.Is(err, db.ErrNotFound) {
		limiter.failed(addr, now)
		return nil, "", wxErr(wxInvalidAppID, "")
	}
	if err != nil {
		return nil, "", fmt.Errorf("gateway: secret of %s: %w", appid, err)
	}
	if subtle.ConstantTimeCompare(e.hash[:], given[:]) == 1 {
		return withPrincipal(ctx, Principal{Role: RoleTenant, TenantID: e.tenantID}), e.kind, nil
	}
	p, err := g.byKey(ctx, secret, addr, e.tenantID, badSecret, now)
	if err != nil {
		return nil, "", err
	}
	return withPrincipal(ctx, p), e.kind, nil
}

// byKey authenticates a caller that sent something other than the account's secret in the
// secret field: a wxhub API key, whose tenant must own the account (tenantID; admin keys may
// read all). Anything else is a wrong secret, answered badSecret and counted against the
// client address.
func (g *Gateway) byKey(ctx context.Context, secret, addr string, tenantID int64, badSecret int, now time.Time) (Principal, error) {
	limiter := g.s.keys.failures
	if checkKeyFormat(secret) != nil {
		limiter.failed(addr, now)
		return Principal{}, wxErr(badSecret, "")
	}
	p, err := g.s.keys.authenticate(ctx, secret, addr, g.s.listener.Connected())
	switch {
	case errors.Is(err, errTooManyBadKeys):
		return Principal{}, wxErr(wxMinuteQuota, "too many wrong secrets or keys from this address; slow down")
	case errors.Is(err, errBadKey), errors.Is(err, errMalformedKey):
		return Principal{}, wxErr(badSecret, "")
	case err != nil:
		return Principal{}, fmt.Errorf("gateway: API key: %w", err)
	case !p.mayAccess(tenantID):
		// A key of another tenant is a wrong secret for this appid: WeChat tells a wrong
		// secret from an unknown appid, and so does the gateway, but nothing more.
		limiter.failed(addr, now)
		return Principal{}, wxErr(badSecret, "")
	case !g.s.allow(p.KeyID):
		return Principal{}, wxErr(wxMinuteQuota, "too many requests with this API key; slow down")
	}
	return p, nil
}

// loadSecret reads an account's secret from the database and keeps its salted hash.
func (g *Gateway) loadSecret(ctx context.Context, appid string, now time.Time) (secretEntry, error) {
	a, err := g.s.store.GetAccountSecret(ctx, appid)
	if err != nil {
		return secretEntry{}, err
	}
	e := secretEntry{hash: g.hash(a.Secret), tenantID: a.TenantID, kind: a.Kind, loadedAt: now}
	g.secrets.Store(appid, e)
	return e, nil
}

// hash is the salted SHA-256 of a secret or token.
func (g *Gateway) hash(s string) [32]byte {
	h := sha256.New()
	h.Write(g.salt[:])
	h.Write([]byte(s))
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func withPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// clientAddr is the host part of a remote address, the key of the bad-secret limit.
func clientAddr(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// remember records a token this node hands out, so the caller's later requests that carry
// it are tied to the account, on this node and (through gateway_tokens) on every other: an
// SDK that caches its token works behind a load balancer that spreads its calls. The first
// hand-out of each value on a node writes its row; when that write fails the token still
// works on this node, and the next hand-out tries again.
func (g *Gateway) remember(ctx context.Context, value string, h handedToken) {
	if value == "" {
		return
	}
	key := tokenHash(g.hash(value))
	if v, ok := g.handed.Load(key); ok && v.(handedToken).shared {
		return
	}
	if err := g.s.store.RecordGatewayToken(ctx, value, h.tenantID, h.accountID, h.until); err != nil {
		if ctx.Err() == nil {
			g.s.log.Warn("gateway: a token handed out is not recorded for the other nodes", "appid", h.appid, "err", err)
		}
	} else {
		h.shared = true
	}
	g.handed.Store(key, h)
}

// caller finds the account of an access token the caller presents (getticket, the proxy).
//
// Only tokens a gateway handed out are known: wxhub stores values encrypted under a random
// nonce, so credentials cannot be searched by value (and an index on a hash column of
// credentials would change on every refresh, ending the heap-only updates the refresh path
// relies on), which is why the gateway records what it hands out in gateway_tokens. An
// unknown token is answered 40001, as WeChat answers a token it does not accept; its lookup
// is limited per client address (BadKeyRate), so made-up tokens cannot make a node query the
// database without bound.
//
// A component's token is forwarded in access_token too: WeChat takes it there on some
// component APIs (the code template library's), and answers 61015 on the others.
func (g *Gateway) caller(r *http.Request) (context.Context, handedToken, error) {
	return g.handedBy(r, accessTokenParam)
}

// The query parameters that carry the token of a WeChat call.
const (
	accessTokenParam    = "access_token"
	componentTokenParam = "component_access_token"
)

// handedBy finds the token in the query parameter param among those this node handed out.
func (g *Gateway) handedBy(r *http.Request, param string) (context.Context, handedToken, error) {
	tok := r.URL.Query().Get(param)
	if tok == "" {
		return nil, handedToken{}, wxErr(wxMissingAccessToken, "")
	}
	key := tokenHash(g.hash(tok))
	var h handedToken
	if v, ok := g.handed.Load(key); ok {
		h = v.(handedToken)
	} else {
		var err error
		if h, err = g.recall(r, tok, key); err != nil {
			return nil, handedToken{}, err
		}
	}
	if !time.Now().Before(h.until) {
		return nil, handedToken{}, wxErr(wxTokenExpired, "")
	}
	return withPrincipal(r.Context(), Principal{Role: RoleTenant, TenantID: h.tenantID}), h, nil
}

// recall looks up a token this node did not hand out among those another node recorded.
func (g *Gateway) recall(r *http.Request, token string, key tokenHash) (handedToken, error) {
	addr, now := clientAddr(r.RemoteAddr), time.Now()
	limiter := g.unknownTokens
	if limiter.exhausted(addr, now) {
		return handedToken{}, wxErr(wxMinuteQuota, "too many unknown tokens from this address; slow down")
	}
	t, err := g.s.store.FindGatewayToken(r.Context(), token)
	switch {
	case errors.Is(err, db.ErrNotFound):
		limiter.failed(addr, now)
		return handedToken{}, wxErr(wxInvalidCredential, "no gateway handed out this token; fetch one through the gateway")
	case err != nil:
		return handedToken{}, fmt.Errorf("gateway: %w", err)
	}
	h := handedToken{appid: t.AppID, accountID: t.AccountID, tenantID: t.TenantID, until: t.ValidUntil,
		corpID: t.CorpID, component: t.Kind == "component", shared: true}
	g.handed.Store(key, h)
	return h, nil
}

// gatewayTicketTypes are the ticket types getticket serves.
var gatewayTicketTypes = map[string]string{"jsapi": "jsapi_ticket", "wx_card": "wx_card_ticket"}

// serveTicket answers GET /cgi-bin/ticket/getticket from wxhub's cache, for a caller that
// presents an access token the gateway handed out.
func (g *Gateway) serveTicket(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return wxErr(wxRequireGET, "")
	}
	ctx, h, err := g.caller(r)
	if err != nil {
		return err
	}
	switch {
	case h.corpID != "":
		// WeChat does not know WeCom's tokens.
		return wxErr(wxInvalidCredential, "a WeCom token: ask /cgi-bin/get_jsapi_ticket or /cgi-bin/ticket/get")
	case h.component:
		return wxErr(wxNeedsAccountToken, "")
	}
	typ := r.URL.Query().Get("type")
	kind, ok := gatewayTicketTypes[typ]
	if !ok {
		return wxErr(wxInvalidArgs, "type must be jsapi or wx_card")
	}
	cred, err := g.s.credential(ctx, h.appid, kind, 0)
	if err != nil {
		return g.wxFromAPI(err, "wxhub keeps no "+typ+" ticket for this account: add it to the account's tickets")
	}
	writeWeChat(w, wxTicket{ErrCode: 0, ErrMsg: "ok", Ticket: cred.Value, ExpiresIn: g.expiresIn(cred)})
	return nil
}

// wxFromAPI turns the error of a credential read into WeChat's answer: an unknown account
// (or credential, explained by missing) is an invalid appid, a configuration WeChat refuses
// is WeChat's own errcode for it, a spent quota 45009, and anything transient -1, which SDKs
// retry.
func (g *Gateway) wxFromAPI(err error, missing string) error {
	var p *problem
	if errors.As(err, &p) {
		switch p.Type {
		case problemQuotaExhausted:
			return wxErr(wxQuotaExceeded, "")
		case problemAccountFailing:
			if p.ErrCode != 0 {
				return &wxError{ErrCode: p.ErrCode, ErrMsg: "wxhub gateway: WeChat refuses the account's configuration: " + p.Detail}
			}
		case problemAccountDisabled, problemAccountUnauthorized:
			return wxErr(wxAPIUnauthorized, p.Detail)
		case problemUpstreamRefused:
			// WeChat refused a call wxhub made for this request (an authorization code): its
			// answer, as the caller would have had it from WeChat.
			if p.ErrCode != 0 {
				return &wxError{ErrCode: p.ErrCode, ErrMsg: "wxhub gateway: " + p.Detail}
			}
		}
		return wxErr(wxBusy, p.Detail)
	}
	var se huma.StatusError
	if errors.As(err, &se) {
		switch se.GetStatus() {
		case http.StatusNotFound:
			if missing != "" {
				return wxErr(wxInvalidArgs, missing)
			}
			return wxErr(wxInvalidAppID, "")
		case http.StatusTooManyRequests:
			return wxErr(wxMinuteQuota, "")
		case http.StatusConflict:
			// wxhub keeps the appid as something else (another kind of account, another
			// component's authorizer): not something a retry changes.
			return wxErr(wxAPIUnauthorized, se.Error())
		}
		return wxErr(wxBusy, "no valid token within the wait; retry")
	}
	return err
}

// prune forgets tokens past their expiry, and secret hashes no request used within their
// trust period.
func (g *Gateway) prune(now time.Time) {
	g.handed.Range(func(k, v any) bool {
		if now.After(v.(handedToken).until) {
			g.handed.Delete(k)
		}
		return true
	})
	g.secrets.Range(func(k, v any) bool {
		if now.Sub(v.(secretEntry).loadedAt) > g.secretTTL() {
			g.secrets.Delete(k)
		}
		return true
	})
	g.unknownTokens.prune(now)
	g.corps.Range(func(k, v any) bool {
		if now.Sub(v.(wecomCorp).loadedAt) > g.secretTTL() {
			g.corps.Delete(k)
		}
		return true
	})
}
