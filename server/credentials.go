package server

import (
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5/pgconn"

	"wxhub/db"
	"wxhub/db/keyring"
)

// TokenBody is a credential as the API returns it.
type TokenBody struct {
	AccessToken string    `json:"access_token" doc:"The current access token of the account."`
	ExpiresAt   time.Time `json:"expires_at" doc:"Until when the token is good, a promise clients may rely on: its expiry, and for classic tokens no later than the overlap after the earliest time wxhub may fetch its replacement, nor than the overlap minus the node's staleness bound from now. Clients may cache it until then, and report a rejection through invalidate."`
	ExpiresIn   int64     `json:"expires_in" doc:"Seconds until expires_at, rounded down." example:"6840"`
	Generation  int64     `json:"generation" doc:"Increases with every new token; compare to know which of two is newer."`
}

// TokenOutput is the access-token response.
type TokenOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         TokenBody
}

// TicketBody is a ticket as the API returns it.
type TicketBody struct {
	Ticket     string    `json:"ticket" doc:"The current ticket."`
	ExpiresAt  time.Time `json:"expires_at" doc:"Until when the ticket is good, a promise clients may rely on: its expiry, no later than the overlap after the earliest time wxhub may fetch its replacement, nor than the overlap minus the node's staleness bound from now."`
	ExpiresIn  int64     `json:"expires_in" doc:"Seconds until expires_at, rounded down."`
	Generation int64     `json:"generation" doc:"Increases with every new ticket."`
}

// TicketOutput is the ticket response.
type TicketOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         TicketBody
}

// AccessTokenInput selects an account's access token.
type AccessTokenInput struct {
	AppID  string `path:"appid" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"The account's appid." example:"wx0000000000000001"`
	MinTTL int64  `query:"min_ttl" minimum:"0" maximum:"1800" doc:"Seconds the token must still be valid for. If it has less left, wxhub asks for a refresh and waits for it (best effort: a stable token cannot be renewed before WeChat's rotation window, and a classic token is never promised for longer than the overlap, so the answer may still have less)."`
}

// TicketInput selects an account's ticket.
type TicketInput struct {
	AppID string `path:"appid" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"The account's appid."`
	Type  string `path:"type" enum:"jsapi,wx_card,agent_config" doc:"jsapi (JS-SDK), wx_card (card API), agent_config (WeCom agent config)."`
}

// InvalidateInput reports a token WeChat rejected.
type InvalidateInput struct {
	AppID string `path:"appid" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"The account's appid."`
	Body  struct {
		AccessToken string `json:"access_token" minLength:"1" maxLength:"2048" doc:"The token WeChat rejected."`
		ErrCode     int    `json:"errcode,omitempty" doc:"WeChat's errcode for the rejection. Only 40001, 40014 and 42001 say the token is dead and cause a refresh; any other errcode is answered 422 and changes nothing. Omitted, the report is taken as one of those." example:"40001"`
	}
}

// JSSDKInput asks for a JS-SDK configuration for a page.
type JSSDKInput struct {
	AppID string `path:"appid" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"The account's appid."`
	Body  struct {
		URL string `json:"url" minLength:"1" maxLength:"4096" format:"uri" doc:"The full URL of the page calling wx.config; anything after # is dropped." example:"https://example.com/page?x=1"`
		// Ticket picks the ticket that signs: WeCom's wx.agentConfig is signed with the app's
		// agent_config ticket in the same format.
		Ticket string `json:"ticket,omitempty" enum:"jsapi,agent_config" default:"jsapi" doc:"The ticket that signs: jsapi for wx.config (for a WeCom app the corp's jsapi ticket, kept by one app of the corp), agent_config for WeCom's wx.agentConfig."`
	}
}

// JSSDKOutput is what wx.config needs.
type JSSDKOutput struct {
	CacheControl string `header:"Cache-Control"`
	Body         struct {
		AppID     string `json:"appId" doc:"The account's appid."`
		Timestamp int64  `json:"timestamp" doc:"Seconds since the epoch used in the signature."`
		NonceStr  string `json:"nonceStr" doc:"The random string used in the signature."`
		Signature string `json:"signature" doc:"SHA-1 of jsapi_ticket, noncestr, timestamp and url, in WeChat's format."`
	}
}

var ticketKinds = map[string]string{"jsapi": "jsapi_ticket", "wx_card": "wx_card_ticket", "agent_config": "agent_config_ticket"}

func (s *Server) registerCredentials() {
	tenantOrAdmin := map[string]any{rolesKey: []string{RoleAdmin, RoleTenant}}
	huma.Register(s.api, huma.Operation{
		OperationID: "get-access-token", Method: http.MethodGet, Path: "/v1/accounts/{appid}/access-token",
		Summary: "Get an account's access token", Tags: []string{"Credentials"}, Metadata: tenantOrAdmin,
		Description: "Returns the current access token from memory. If the account has none that is valid (first " +
			"fetch, refresh in progress), the request waits for the refresh for up to 10 s, then answers 503 with Retry-After. " +
			"When no refresh can help, it answers at once: 409 for an account that is disabled, revoked or whose " +
			"configuration WeChat refuses (with WeChat's errcode), 410 for an authorizer whose merchant revoked the " +
			"authorization, 503 with Retry-After until the next quota day when the " +
			"day's calls are spent (problem types in docs/problems.md).",
		Errors: []int{401, 403, 404, 409, 410, 503},
	}, func(ctx context.Context, in *AccessTokenInput) (*TokenOutput, error) {
		cred, err := s.credential(ctx, in.AppID, "access_token", time.Duration(in.MinTTL)*time.Second)
		if err != nil {
			return nil, err
		}
		return s.tokenOutput(cred), nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-ticket", Method: http.MethodGet, Path: "/v1/accounts/{appid}/tickets/{type}",
		Summary: "Get an account's ticket", Tags: []string{"Credentials"}, Metadata: tenantOrAdmin,
		Description: "Returns the current JS-SDK (jsapi), card (wx_card) or WeCom agent (agent_config) ticket. 404 if the account " +
			"does not keep that ticket. Waits and fails like the access token.",
		Errors: []int{401, 403, 404, 409, 410, 503},
	}, func(ctx context.Context, in *TicketInput) (*TicketOutput, error) {
		cred, err := s.credential(ctx, in.AppID, ticketKinds[in.Type], 0)
		if err != nil {
			return nil, err
		}
		out := &TicketOutput{CacheControl: "no-store"}
		good := s.goodUntil(cred, time.Now())
		out.Body = TicketBody{Ticket: cred.Value, ExpiresAt: good, ExpiresIn: secondsLeft(good), Generation: cred.Generation}
		return out, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "invalidate-access-token", Method: http.MethodPost, Path: "/v1/accounts/{appid}/access-token/invalidate",
		Summary: "Report an access token WeChat rejected", Tags: []string{"Credentials"}, Metadata: tenantOrAdmin,
		Description: "Compare and refresh: if the reported token is still the current one, one refresh is triggered " +
			"(however many callers report it at once) and the new token is returned; if a newer token already exists, it " +
			"is returned at once. Never an unconditional refresh. Only errcodes that say the token is dead (40001, 40014, " +
			"42001) are reports; any other errcode is answered 422.",
		Errors: []int{401, 403, 404, 409, 410, 422, 503},
	}, func(ctx context.Context, in *InvalidateInput) (*TokenOutput, error) {
		if in.Body.ErrCode != 0 && !deadTokenCodes[in.Body.ErrCode] {
			return nil, huma.Error422UnprocessableEntity(fmt.Sprintf("errcode %d does not say the access token is dead "+
				"(40001, 40014 and 42001 do); nothing was refreshed: a refresh would not fix it", in.Body.ErrCode))
		}
		cred, err := s.invalidate(ctx, in.AppID, in.Body.AccessToken)
		if err != nil {
			return nil, err
		}
		return s.tokenOutput(cred), nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "create-jssdk-config", Method: http.MethodPost, Path: "/v1/accounts/{appid}/jssdk-config",
		Summary: "Sign a JS-SDK configuration", Tags: []string{"Credentials"}, Metadata: tenantOrAdmin,
		Description: "Returns appId, timestamp, nonceStr and signature for wx.config on the given page, signed with the account's current jsapi ticket, " +
			"or with ticket agent_config, for WeCom's wx.agentConfig, with the app's agent_config ticket (same format). A WeCom page passes its corpid " +
			"(wx.config) or corpid and agentid (wx.agentConfig) as the appId.",
		Errors: []int{401, 403, 404, 409, 410, 422, 503},
	}, func(ctx context.Context, in *JSSDKInput) (*JSSDKOutput, error) {
		page, err := url.Parse(in.Body.URL)
		if err != nil || (page.Scheme != "http" && page.Scheme != "https") || page.Host == "" {
			return nil, huma.Error422UnprocessableEntity("url must be an absolute http or https URL")
		}
		ticket := in.Body.Ticket
		if ticket == "" {
			ticket = "jsapi"
		}
		cred, err := s.credential(ctx, in.AppID, ticketKinds[ticket], 0)
		if err != nil {
			return nil, err
		}
		nonce := make([]byte, 8)
		_, _ = rand.Read(nonce)
		out := &JSSDKOutput{CacheControl: "no-store"}
		out.Body.AppID = in.AppID
		out.Body.Timestamp = time.Now().Unix()
		out.Body.NonceStr = hex.EncodeToString(nonce)
		out.Body.Signature = JSSDKSignature(cred.Value, out.Body.NonceStr, out.Body.Timestamp, in.Body.URL)
		return out, nil
	})
}

// JSSDKSignature signs a page for wx.config as WeChat specifies: SHA-1 over
// jsapi_ticket=…&noncestr=…&timestamp=…&url=… (keys in ASCII order, raw values, the URL
// without its fragment), in lowercase hex.
func JSSDKSignature(ticket, nonceStr string, timestamp int64, pageURL string) string {
	pageURL, _, _ = strings.Cut(pageURL, "#")
	sum := sha1.Sum([]byte("jsapi_ticket=" + ticket + "&noncestr=" + nonceStr +
		"&timestamp=" + strconv.FormatInt(timestamp, 10) + "&url=" + pageURL))
	return hex.EncodeToString(sum[:])
}

// requestInterval is the least time between two refreshes app servers cause for one
// credential, so a client that reports every value it gets cannot drain the quota.
const requestInterval = time.Minute

// tokenOutput is the answer of the access-token operations.
func (s *Server) tokenOutput(cred db.CachedCredential) *TokenOutput {
	good := s.goodUntil(cred, time.Now())
	return &TokenOutput{CacheControl: "no-store", Body: TokenBody{AccessToken: cred.Value, ExpiresAt: good,
		ExpiresIn: secondsLeft(good), Generation: cred.Generation}}
}

func secondsLeft(t time.Time) int64 { return max(0, int64(time.Until(t)/time.Second)) }

// minPromise is the least time a value handed out must have left: a client needs a moment
// to use it.
const minPromise = time.Second

// goodUntil is how long a client may rely on a value handed out at now: what the database
// promises (db.CachedCredential.Promise), and for a value whose replacement kills it, no later than the
// overlap after the staleness bound. A refresh requested through another node is announced
// by a notification, but a node may learn of it only up to the staleness bound later; a
// promise counted from now minus that bound still ends before the value dies.
func (s *Server) goodUntil(c db.CachedCredential, now time.Time) time.Time {
	good := c.Promise(s.cfg.Overlap)
	if c.Rotates {
		if end := now.Add(s.cfg.Overlap - s.cfg.StalenessBound); end.Before(good) {
			return end
		}
	}
	return good
}

// servable reports whether a value exists, can be promised for at least minPromise more,
// was not reported rejected by WeChat, and belongs to an account that has not withdrawn its
// authorization (WeChat stops taking its tokens).
func (s *Server) servable(c db.CachedCredential, now time.Time) bool {
	return c.Value != "" && c.AccountStatus != "unauthorized" && s.goodUntil(c, now).Sub(now) >= minPromise && !s.reportedDead(c)
}

// deadToken is an access token an app server reported WeChat rejected: its generation.
type deadToken struct {
	generation int64
	at         time.Time
}

// markDead remembers that WeChat rejected this generation of the account's access token:
// this node does not hand it out again while the refresh the report asked for is pending,
// however long it fails.
func (s *Server) markDead(c db.CachedCredential) {
	if _, loaded := s.dead.Swap(c.AccountID, deadToken{generation: c.Generation, at: time.Now()}); !loaded {
		s.deadCount.Add(1)
	}
}

// reportedDead reports whether c is an access token reported rejected on this node whose
// refresh has not ended: a refresh that kept the token (WeChat's stable_token answering it
// as current) clears the request, and the token is served again.
func (s *Server) reportedDead(c db.CachedCredential) bool {
	if c.Kind != "access_token" || !c.RefreshRequested || s.deadCount.Load() == 0 {
		return false
	}
	d, ok := s.dead.Load(c.AccountID)
	return ok && d.(deadToken).generation == c.Generation
}

// forgetDead drops dead reports older than a day: a token lives two hours at most.
func (s *Server) forgetDead(now time.Time) {
	s.dead.Range(func(id, d any) bool {
		if now.Sub(d.(deadToken).at) > 24*time.Hour && s.dead.CompareAndDelete(id, d) {
			s.deadCount.Add(-1)
		}
		return true
	})
}

// lasts reports whether c can be handed out with at least minTTL left.
func (s *Server) lasts(c db.CachedCredential, minTTL time.Duration) bool {
	now := time.Now()
	return s.servable(c, now) && s.goodUntil(c, now).Sub(now) > minTTL
}

// credential returns a usable value of an account's credential: one that is valid for at
// least minTTL (or at all when minTTL is 0). Without one it waits, a bounded time, for the
// refresh, instead of failing while another node or the worker is at it.
func (s *Server) credential(ctx context.Context, appid, kind string, minTTL time.Duration) (db.CachedCredential, error) {
	p, err := principal(ctx)
	if err != nil {
		return db.CachedCredential{}, err
	}
	cred, err := s.cache.Get(ctx, appid, kind)
	if err == nil && !p.mayAccess(cred.TenantID) {
		// A refusal is made on a fresh read, like a missing account's: the work, and so the
		// time, of a 404 does not tell a tenant key whether another tenant's appid exists.
		cred, err = s.cache.Reload(ctx, appid, kind)
	}
	if err := s.visible(p, cred, err); err != nil {
		return db.CachedCredential{}, err
	}
	if s.lasts(cred, minTTL) {
		return cred, nil
	}
	if answered, err := s.unrefreshable(cred); answered {
		return cred, err
	}
	requested, asked := false, false
	before := cred.Generation
	deadline := time.NewTimer(s.cfg.RefreshWait)
	defer deadline.Stop()
	// Waiting starts before each read, so a change between the read and the wait is not missed.
	changed := s.cache.Changed(cred.AccountID, kind)
	for {
		// A value that is too short for min_ttl, or that can no longer be promised, is asked
		// for now: past its promise the worker's own retries are spaced out to spare the
		// quota, but an app server waiting for it is worth a call (at most one per
		// requestInterval).
		servable := s.servable(cred, time.Now())
		if !requested && (minTTL > 0 && servable || cred.Generation > 0 && !servable) {
			did, err := s.store.RequestRefresh(ctx, cred.AccountID, kind, cred.Generation, requestInterval)
			if err != nil {
				s.log.Error("request refresh", "appid", appid, "credential", kind, "err", err)
			} else if did {
				asked = true
				reason := "min_ttl"
				if !servable {
					reason = "expired"
				}
				s.audit(ctx, "credential.force_refresh", appid, cred.TenantID, nil,
					map[string]any{"credential": kind, "generation": cred.Generation, "reason": reason})
			}
			requested = true
		}
		select {
		case <-ctx.Done():
			return db.CachedCredential{}, s.internal(ctx.Err())
		case <-deadline.C:
			if s.servable(cred, time.Now()) {
				return cred, nil // best effort for min_ttl: the token is still valid
			}
			return db.CachedCredential{}, unavailable(kind)
		case <-changed:
		case <-time.After(time.Second):
			// The listener may be down: look in the database, not only for notifications.
		}
		changed = s.cache.Changed(cred.AccountID, kind)
		if cred, err = s.cache.Reload(ctx, appid, kind); err != nil {
			return db.CachedCredential{}, s.visible(p, cred, err)
		}
		// A refreshed value answers min_ttl as well as it can: a rotating value is never
		// promised longer than the overlap, whatever min_ttl asks.
		if s.lasts(cred, minTTL) || requested && cred.Generation > before && s.servable(cred, time.Now()) {
			return cred, nil
		}
		// The refresh this request asked for ended and kept the value (a stable token, which
		// WeChat renews only near its expiry): it is the best there is for min_ttl.
		if asked && cred.Generation == before && !cred.RefreshRequested && !cred.Refreshing && s.servable(cred, time.Now()) {
			return cred, nil
		}
		if answered, err := s.unrefreshable(cred); answered {
			return cred, err
		}
	}
}

// unrefreshable tells whether no refresh will help (see cannotRefresh), and then how to
// answer at once: with the current value if it can still be promised (the best there is for
// a min_ttl), or with the problem saying why there is none.
func (s *Server) unrefreshable(cred db.CachedCredential) (answered bool, err error) {
	now := time.Now()
	if err := cannotRefresh(cred, now); err != nil {
		if s.servable(cred, now) {
			return true, nil
		}
		return true, err
	}
	return false, nil
}

// visible maps lookup errors and other tenants' accounts to API errors. Another tenant's
// account is a 404 like a missing one, so keys cannot probe appids.
func (s *Server) visible(p Principal, cred db.CachedCredential, err error) error {
	switch {
	case errors.Is(err, db.ErrNotFound):
		return huma.Error404NotFound("no such account or credential")
	case err != nil:
		return s.internal(err)
	case !p.mayAccess(cred.TenantID):
		return huma.Error404NotFound("no such account or credential")
	}
	return nil
}

func unavailable(kind string) error {
	return huma.ErrorWithHeaders(
		huma.Error503ServiceUnavailable("no valid "+kind+" yet: a refresh is pending or WeChat is failing; see the account's state"),
		http.Header{"Retry-After": {"5"}})
}

// internal logs an unexpected error and returns a 500 that carries none of its text.
func (s *Server) internal(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return huma.Error503ServiceUnavailable("request cancelled or timed out")
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22") {
		// Class 22 is PostgreSQL refusing the data itself (e.g. a NUL character in JSON).
		return huma.Error422UnprocessableEntity("the request holds data PostgreSQL cannot store (such as a NUL character)")
	}
	if errors.Is(err, keyring.ErrUnknownKey) {
		// Another process wrote under a key this node's ring lacks: a rotation began before
		// every node had the new ring.
		s.log.Error("a stored value is under a key this node's WXHUB_KEYS lacks", "err", err)
		return huma.ErrorWithHeaders(huma.Error503ServiceUnavailable("this API node cannot decrypt the stored value: "+
			"its WXHUB_KEYS lacks the key it was written with; give every node the same ring, new key first"),
			http.Header{"Retry-After": {"30"}})
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	if errors.As(err, &connectErr) || errors.As(err, &netErr) || pgconn.SafeToRetry(err) {
		s.log.Warn("database unavailable", "err", err)
		return huma.ErrorWithHeaders(huma.Error503ServiceUnavailable("the database is unavailable; retry shortly"),
			http.Header{"Retry-After": {"2"}})
	}
	s.log.Error("request failed", "err", err)
	return huma.Error500InternalServerError("internal error")
}

// invalidate implements compare and refresh for a reported token.
func (s *Server) invalidate(ctx context.Context, appid, reported string) (db.CachedCredential, error) {
	p, err := principal(ctx)
	if err != nil {
		return db.CachedCredential{}, err
	}
	// Read the database, not the cache: the report is often the first sign of a change.
	cred, err := s.cache.Reload(ctx, appid, "access_token")
	if err := s.visible(p, cred, err); err != nil {
		return db.CachedCredential{}, err
	}
	if cred.Value != reported {
		if s.servable(cred, time.Now()) {
			return cred, nil // a newer token exists already
		}
		return s.credential(ctx, appid, "access_token", 0)
	}
	s.markDead(cred)
	changed := s.cache.Changed(cred.AccountID, "access_token")
	if err := s.reportDead(ctx, appid, cred); err != nil {
		return db.CachedCredential{}, s.internal(err)
	}
	return s.awaitRefresh(ctx, p, appid, cred, changed)
}

// forceRefresh asks for a refresh of cred, an access token just read, if it is still the
// current one (compare and refresh) and no refresh was asked for within requestInterval, and
// waits a bounded time for the result. Without a refresh to wait for, or when the wait ends
// with cred still servable, the answer is cred. It never makes WeChat force a new token: the
// worker refreshes as it always does, and a stable token WeChat does not rotate yet comes
// back unchanged.
func (s *Server) forceRefresh(ctx context.Context, appid string, cred db.CachedCredential) (db.CachedCredential, error) {
	p, err := principal(ctx)
	if err != nil {
		return db.CachedCredential{}, err
	}
	changed := s.cache.Changed(cred.AccountID, cred.Kind)
	did, err := s.store.RequestRefresh(ctx, cred.AccountID, cred.Kind, cred.Generation, requestInterval)
	if err != nil || !did {
		if err != nil {
			s.log.Error("request refresh", "appid", appid, "credential", cred.Kind, "err", err)
		}
		return cred, nil
	}
	s.audit(ctx, "credential.force_refresh", appid, cred.TenantID, nil,
		map[string]any{"credential": cred.Kind, "generation": cred.Generation, "reason": "force_refresh"})
	next, err := s.awaitRefresh(ctx, p, appid, cred, changed)
	if err != nil && s.servable(cred, time.Now()) && ctx.Err() == nil {
		return cred, nil
	}
	return next, err
}

// awaitRefresh waits, up to the refresh wait, for the refresh of cred that was just asked
// for to end, and returns the value it left: a new generation, or the same one when WeChat
// confirmed it (a stable token it still considers current). changed was taken before the
// request was made, so its notification is not missed.
func (s *Server) awaitRefresh(ctx context.Context, p Principal, appid string, cred db.CachedCredential, changed <-chan struct{}) (db.CachedCredential, error) {
	deadline := time.NewTimer(s.cfg.RefreshWait)
	defer deadline.Stop()
	for {
		select {
		case <-ctx.Done():
			return db.CachedCredential{}, s.internal(ctx.Err())
		case <-deadline.C:
			return db.CachedCredential{}, unavailable(cred.Kind)
		case <-changed:
		case <-time.After(time.Second):
		}
		woke := isClosed(changed)
		changed = s.cache.Changed(cred.AccountID, cred.Kind)
		next, err := s.cache.Reload(ctx, appid, cred.Kind)
		if err != nil {
			return db.CachedCredential{}, s.visible(p, next, err)
		}
		// A new generation answers the report; the same generation after a notification,
		// with the request no longer pending, means WeChat confirmed the token (a stable
		// token it still considers current). The request itself notifies too.
		if next.Generation > cred.Generation || (next.Generation == cred.Generation && woke && !next.RefreshRequested) {
			if s.servable(next, time.Now()) {
				return next, nil
			}
		}
	}
}

// deadTokenCodes are WeChat's errcodes that say an access token is no longer accepted:
// invalid credential, invalid access_token, access_token expired.
var deadTokenCodes = map[int]bool{40001: true, 40014: true, 42001: true}

// reportDead asks the database to refresh a token reported rejected. Reports of the same
// token on this node make one UPDATE: concurrent ones share the first one's (which no
// caller's cancellation stops, since the others wait on it), and once one took effect the
// database refuses more requests for the account within requestInterval, so later ones are
// not sent.
func (s *Server) reportDead(ctx context.Context, appid string, cred db.CachedCredential) error {
	if r, ok := s.reported.Load(cred.AccountID); ok {
		if r := r.(reported); r.generation == cred.Generation && time.Since(r.at) < requestInterval {
			return nil
		}
	}
	key := strconv.FormatInt(cred.AccountID, 10) + "/" + strconv.FormatInt(cred.Generation, 10)
	_, err, _ := s.reports.Do(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.RefreshWait)
		defer cancel()
		s.reportsSent.Add(1)
		at := time.Now()
		did, err := s.store.ReportDead(ctx, cred.AccountID, "access_token", cred.Generation, requestInterval)
		if did {
			s.reported.Store(cred.AccountID, reported{generation: cred.Generation, at: at})
			s.audit(ctx, "credential.force_refresh", appid, cred.TenantID, nil,
				map[string]any{"credential": "access_token", "generation": cred.Generation, "reason": "reported rejected"})
		}
		return nil, err
	})
	return err
}

// reported is the last report of an account's token this node made the database act on.
type reported struct {
	generation int64
	at         time.Time
}

// DeadReports is how many reports of a rejected token this node sent to the database.
func (s *Server) DeadReports() int64 { return s.reportsSent.Load() }

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
