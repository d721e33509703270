package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"wxhub/db"
)

// WeCom's token and ticket endpoints, answered from wxhub's cache like WeChat's
// (gateway.go). A WeCom caller names no app: gettoken carries the corp id and the app's
// corpsecret, so the gateway finds the app whose secret matches among the corp's apps (or,
// given a wxhub API key instead of a secret, the app named by an agentid parameter). The
// answers have WeCom's shapes: errcode and errmsg on success too.

// wecomToken is WeCom's gettoken answer.
type wecomToken struct {
	ErrCode     int    `json:"errcode"`
	ErrMsg      string `json:"errmsg"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// wecomCorp is what the gateway keeps of a corp's apps to authenticate WeCom callers:
// salted hashes of their secrets, never the secrets.
type wecomCorp struct {
	apps     []wecomApp
	keeper   string // the appid that keeps the corp's jsapi ticket, "" for none
	loadedAt time.Time
}

type wecomApp struct {
	appid    string
	agentID  int64
	tenantID int64
	hash     [32]byte
}

// serveWeComToken answers GET /cgi-bin/gettoken from wxhub's cache: the current token of
// the app whose corpsecret the caller sent. It never issues a token, so no caller kills
// another's.
func (g *Gateway) serveWeComToken(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return wxErr(wxRequireGET, "")
	}
	q := r.URL.Query()
	corpID, secret := q.Get("corpid"), q.Get("corpsecret")
	switch {
	case corpID == "":
		return &wxError{ErrCode: wxMissingAppID, ErrMsg: "corpid missing"}
	case secret == "":
		return &wxError{ErrCode: wxMissingSecret, ErrMsg: "corpsecret missing"}
	}
	ctx, app, err := g.authenticateWeCom(r, corpID, secret, q.Get("agentid"))
	if err != nil {
		return err
	}
	cred, err := g.s.credential(ctx, app.appid, "access_token", 0)
	if err != nil {
		return g.wxFromAPI(err, "")
	}
	h := handedFor(cred)
	h.corpID = corpID
	g.remember(ctx, cred.Value, h)
	writeWeChat(w, wecomToken{ErrCode: 0, ErrMsg: "ok", AccessToken: cred.Value, ExpiresIn: g.expiresIn(cred)})
	return nil
}

// authenticateWeCom finds the app of corpID whose corpsecret is secret, comparing salted
// hashes in constant time, or with a wxhub API key in place of the secret, the app whose
// agent id is agentID. An unknown corp is 40013 and a wrong secret 40001, as WeCom answers.
func (g *Gateway) authenticateWeCom(r *http.Request, corpID, secret, agentID string) (context.Context, wecomApp, error) {
	ctx := r.Context()
	now := time.Now()
	addr := clientAddr(r.RemoteAddr)
	given := g.hash(secret)
	if v, ok := g.corps.Load(corpID); ok {
		if c := v.(wecomCorp); now.Sub(c.loadedAt) < g.secretTTL() {
			if app, ok := c.match(given); ok {
				return withPrincipal(ctx, Principal{Role: RoleTenant, TenantID: app.tenantID}), app, nil
			}
		}
	}
	if g.s.keys.failures.exhausted(addr, now) {
		return nil, wecomApp{}, wxErr(wxMinuteQuota, "too many wrong secrets or keys from this address; slow down")
	}
	c, err := g.loadCorp(ctx, corpID, now)
	if errors.Is(err, db.ErrNotFound) {
		g.s.keys.failures.failed(addr, now)
		return nil, wecomApp{}, &wxError{ErrCode: wxInvalidAppID, ErrMsg: "invalid corpid"}
	}
	if err != nil {
		return nil, wecomApp{}, err
	}
	if app, ok := c.match(given); ok {
		return withPrincipal(ctx, Principal{Role: RoleTenant, TenantID: app.tenantID}), app, nil
	}
	// An API key names no app of the corp: agentid does.
	var app wecomApp
	for _, a := range c.apps {
		if agentID != "" && strconv.FormatInt(a.agentID, 10) == agentID {
			app = a
		}
	}
	if app.appid == "" {
		if checkKeyFormat(secret) == nil && agentID == "" {
			return nil, wecomApp{}, wxErr(wxInvalidArgs, "with a wxhub API key as corpsecret, name the app with agentid")
		}
		g.s.keys.failures.failed(addr, now)
		return nil, wecomApp{}, wxErr(wxInvalidCredential, "")
	}
	p, err := g.byKey(ctx, secret, addr, app.tenantID, wxInvalidCredential, now)
	if err != nil {
		return nil, wecomApp{}, err
	}
	return withPrincipal(ctx, p), app, nil
}

// match finds the app whose secret hashes to given; every app is compared, in constant time.
func (c wecomCorp) match(given [32]byte) (wecomApp, bool) {
	var found wecomApp
	ok := false
	for _, a := range c.apps {
		if subtle.ConstantTimeCompare(a.hash[:], given[:]) == 1 {
			found, ok = a, true
		}
	}
	return found, ok
}

// loadCorp reads a corp's apps from the database and keeps their salted secret hashes.
func (g *Gateway) loadCorp(ctx context.Context, corpID string, now time.Time) (wecomCorp, error) {
	apps, err := g.s.store.WeComAppSecrets(ctx, corpID)
	if err != nil {
		if errors.Is(err, db.ErrNotFound) {
			return wecomCorp{}, err
		}
		return wecomCorp{}, fmt.Errorf("gateway: apps of corp %s: %w", corpID, err)
	}
	c := wecomCorp{loadedAt: now}
	for _, a := range apps {
		c.apps = append(c.apps, wecomApp{appid: a.AppID, agentID: a.AgentID, tenantID: a.TenantID, hash: g.hash(a.Secret)})
		for _, t := range a.Tickets {
			if t == "jsapi" {
				c.keeper = a.AppID
			}
		}
	}
	g.corps.Store(corpID, c)
	return c, nil
}

// corp returns what the gateway keeps of a corp, read again once older than the secrets'
// trust period.
func (g *Gateway) corp(ctx context.Context, corpID string) (wecomCorp, error) {
	now := time.Now()
	if v, ok := g.corps.Load(corpID); ok {
		if c := v.(wecomCorp); now.Sub(c.loadedAt) < g.secretTTL() {
			return c, nil
		}
	}
	return g.loadCorp(ctx, corpID, now)
}

// wecomCaller is caller for WeCom's ticket endpoints: the token must be a WeCom token this
// node handed out, and an unknown one is WeCom's 40014.
func (g *Gateway) wecomCaller(r *http.Request) (context.Context, handedToken, error) {
	if r.Method != http.MethodGet {
		return nil, handedToken{}, wxErr(wxRequireGET, "")
	}
	ctx, h, err := g.caller(r)
	var we *wxError
	switch {
	case errors.As(err, &we) && we.ErrCode == wxInvalidCredential:
		return nil, handedToken{}, wxErr(wxInvalidAccessToken, "this node did not hand out this token; fetch one through the gateway")
	case err != nil:
		return nil, handedToken{}, err
	case h.corpID == "":
		return nil, handedToken{}, wxErr(wxInvalidAccessToken, "not a WeCom token")
	}
	return ctx, h, nil
}

// serveWeComCorpTicket answers GET /cgi-bin/get_jsapi_ticket: the corp's jsapi ticket, kept
// by one app of the corp, whichever app's token the caller presents.
func (g *Gateway) serveWeComCorpTicket(w http.ResponseWriter, r *http.Request) error {
	ctx, h, err := g.wecomCaller(r)
	if err != nil {
		return err
	}
	c, err := g.corp(ctx, h.corpID)
	if err != nil {
		return g.wxFromAPI(err, "")
	}
	if c.keeper == "" {
		return wxErr(wxInvalidArgs, "no app of this corp keeps the corp's jsapi ticket: add jsapi to one app's tickets")
	}
	return g.writeWeComTicket(ctx, w, c.keeper, "jsapi_ticket", "jsapi")
}

// serveWeComAgentTicket answers GET /cgi-bin/ticket/get?type=agent_config: the ticket of
// the app whose token the caller presents.
func (g *Gateway) serveWeComAgentTicket(w http.ResponseWriter, r *http.Request) error {
	ctx, h, err := g.wecomCaller(r)
	if err != nil {
		return err
	}
	if typ := r.URL.Query().Get("type"); typ != "agent_config" {
		return wxErr(wxInvalidArgs, "type must be agent_config")
	}
	return g.writeWeComTicket(ctx, w, h.appid, "agent_config_ticket", "agent_config")
}

func (g *Gateway) writeWeComTicket(ctx context.Context, w http.ResponseWriter, appid, kind, typ string) error {
	cred, err := g.s.credential(ctx, appid, kind, 0)
	if err != nil {
		return g.wxFromAPI(err, "wxhub keeps no "+typ+" ticket for this app: add it to the account's tickets")
	}
	writeWeChat(w, wxTicket{ErrCode: 0, ErrMsg: "ok", Ticket: cred.Value, ExpiresIn: g.expiresIn(cred)})
	return nil
}
