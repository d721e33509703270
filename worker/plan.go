package worker

import (
	"context"
	"errors"
	"fmt"

	"wxhub/db"
	"wxhub/wechat"
)

// refresher says how one kind of credential of one kind of account is refreshed. Adding an
// account kind means adding its rows to refresherFor.
type refresher struct {
	// api is the WeChat API called, the quota ledger's key.
	api string
	// defaultLimit is WeChat's documented daily limit for api; accounts may override it.
	defaultLimit int
	// rotates is true when every call issues a new value and kills the previous one after
	// the overlap; false for stable_token in normal mode, which returns the current value.
	rotates bool
	// needsAccessToken is true for tickets, which are fetched with the account's access token.
	needsAccessToken bool
	// wecom is true for WeCom's APIs, called through the WeCom client (Config.WeCom).
	wecom bool
	// hourlyLimit, when positive, is WeCom's limit of calls per hour, counted per corp when
	// perCorp and per account otherwise; the worker config may override it.
	hourlyLimit int
	perCorp     bool
	// needsVerifyTicket is true for a component's token, fetched with the verify ticket
	// WeChat pushes to the component's callback endpoint.
	needsVerifyTicket bool
	fetch             func(ctx context.Context, w *Worker, c *wechat.Client, cl db.Claim) (fetched, error)
}

// fetched is what a refresher got from WeChat: the value, and for an authorizer the refresh
// token to keep with it.
type fetched struct {
	wechat.Token
	refreshToken string
}

// value wraps a call that answers a value alone.
func value(t wechat.Token, err error) (fetched, error) { return fetched{Token: t}, err }

var (
	stableToken = refresher{
		api: wechat.APIStableToken, defaultLimit: 500_000,
		fetch: func(ctx context.Context, _ *Worker, c *wechat.Client, cl db.Claim) (fetched, error) {
			return value(c.StableToken(ctx, cl.AppID, cl.Secret, false))
		},
	}
	classicToken = refresher{
		api: wechat.APIToken, defaultLimit: 2_000, rotates: true,
		fetch: func(ctx context.Context, _ *Worker, c *wechat.Client, cl db.Claim) (fetched, error) {
			return value(c.ClassicToken(ctx, cl.AppID, cl.Secret))
		},
	}
)

// WeCom's refreshers. WeCom's gettoken returns the same token while it is valid, its
// documentation says; wxhub does not count on it and treats it like the classic token, whose
// every call may kill the previous value after the overlap. WeCom documents no daily limit
// for it, so the ledger's limit is a generous guard against a loop. The tickets' limits are
// hourly (400 corp tickets per corp, 100 agent_config tickets per app); their daily guard is
// the hourly limit times 24.
var (
	wecomToken = refresher{
		api: wechat.APIWeComToken, defaultLimit: 100_000, rotates: true, wecom: true,
		fetch: func(ctx context.Context, _ *Worker, c *wechat.Client, cl db.Claim) (fetched, error) {
			return value(c.WeComToken(ctx, cl.CorpID, cl.Secret))
		},
	}
	wecomCorpTicket = refresher{
		api: wechat.APIWeComJSAPITicket, defaultLimit: 400 * 24, rotates: true, needsAccessToken: true, wecom: true,
		hourlyLimit: 400, perCorp: true,
		fetch: func(ctx context.Context, _ *Worker, c *wechat.Client, cl db.Claim) (fetched, error) {
			return value(c.WeComJSAPITicket(ctx, cl.AccessToken))
		},
	}
	wecomAgentTicket = refresher{
		api: wechat.APIWeComAgentTicket, defaultLimit: 100 * 24, rotates: true, needsAccessToken: true, wecom: true,
		hourlyLimit: 100,
		fetch: func(ctx context.Context, _ *Worker, c *wechat.Client, cl db.Claim) (fetched, error) {
			return value(c.WeComAgentTicket(ctx, cl.AccessToken))
		},
	}
)

// componentToken is a third-party platform's own token. WeChat documents no daily limit for
// it; 2,000 (the classic token's) is a guard against a runaway loop, and an account's
// daily_limits can raise it.
var componentToken = refresher{
	api: wechat.APIComponentToken, defaultLimit: 2_000, rotates: true, needsVerifyTicket: true,
	fetch: func(ctx context.Context, _ *Worker, c *wechat.Client, cl db.Claim) (fetched, error) {
		return value(c.ComponentToken(ctx, cl.AppID, cl.Secret, cl.VerifyTicket))
	},
}

// authorizerToken is the access token of an account that authorized a component, bought
// with the account's refresh token and the component's token (needsAccessToken: the claim's
// AccessToken is the component's). WeChat documents no daily limit for it; 2,000 is a guard
// against a runaway loop.
var authorizerToken = refresher{
	api: wechat.APIAuthorizerToken, defaultLimit: 2_000, rotates: true, needsAccessToken: true,
	fetch: fetchAuthorizerToken,
}

// codeRefreshTokenInvalid is WeChat's answer to a refresh token it no longer takes.
const codeRefreshTokenInvalid = 61023

// fetchAuthorizerToken calls api_authorizer_token with the stored refresh token. WeChat may
// replace the refresh token with every call, and a worker that crashed between WeChat's
// answer and its commit, or whose answer was lost, leaves a stored refresh token WeChat no
// longer takes (61023). The authorizer is not stranded: api_get_authorizer_info answers
// WeChat's current refresh token, and the call is made again with it. Both extra calls are
// counted in the quota ledger.
func fetchAuthorizerToken(ctx context.Context, w *Worker, c *wechat.Client, cl db.Claim) (fetched, error) {
	t, err := c.AuthorizerToken(ctx, cl.ComponentAppID, cl.AccessToken, cl.AppID, cl.Secret)
	var we *wechat.Error
	if !errors.As(err, &we) || we.Code != codeRefreshTokenInvalid {
		return fetched{Token: t.Token, refreshToken: t.RefreshToken}, err
	}
	w.log.Warn("WeChat no longer takes the stored refresh token; reading its current one", "appid", cl.AppID,
		"component", cl.ComponentAppID)
	w.metrics.refreshTokenRecoveries.Inc()
	w.countExtraCall(ctx, cl, wechat.APIGetAuthorizerInfo)
	info, err := c.GetAuthorizerInfo(ctx, cl.ComponentAppID, cl.AccessToken, cl.AppID)
	if err != nil {
		return fetched{}, err
	}
	w.countExtraCall(ctx, cl, wechat.APIAuthorizerToken)
	t, err = c.AuthorizerToken(ctx, cl.ComponentAppID, cl.AccessToken, cl.AppID, info.Authorization.RefreshToken)
	return fetched{Token: t.Token, refreshToken: t.RefreshToken}, err
}

// ticket refreshes a JS-SDK or card ticket with the account's current access token.
func ticket(ticketType string) refresher {
	return refresher{
		api: wechat.APIGetTicket, defaultLimit: 100_000, rotates: true, needsAccessToken: true,
		fetch: func(ctx context.Context, _ *Worker, c *wechat.Client, cl db.Claim) (fetched, error) {
			return value(c.Ticket(ctx, cl.AccessToken, ticketType))
		},
	}
}

// refresherFor is the one place that maps an account kind and credential kind to the WeChat
// call that refreshes it.
func refresherFor(accountKind, kind, tokenMode string) (refresher, error) {
	switch accountKind {
	case "official_account", "mini_program":
		switch kind {
		case "access_token":
			if tokenMode == "classic" {
				return classicToken, nil
			}
			return stableToken, nil
		case "jsapi_ticket":
			return ticket("jsapi"), nil
		case "wx_card_ticket":
			return ticket("wx_card"), nil
		}
	case "wecom_app":
		switch kind {
		case "access_token":
			return wecomToken, nil
		case "jsapi_ticket":
			// The corp's ticket: the one app of the corp that keeps it (see migration 00008).
			return wecomCorpTicket, nil
		case "agent_config_ticket":
			return wecomAgentTicket, nil
		}
	case "component":
		if kind == "access_token" {
			return componentToken, nil
		}
	case "authorizer":
		switch kind {
		case "access_token":
			return authorizerToken, nil
		case "jsapi_ticket":
			return ticket("jsapi"), nil
		case "wx_card_ticket":
			return ticket("wx_card"), nil
		}
	}
	return refresher{}, fmt.Errorf("wxhub cannot refresh %s of a %s account yet", kind, accountKind)
}

// plan answers the claim's question for a due credential: which API, and how many calls of
// it are allowed today. A reserve of the limit is kept for refreshes that app servers asked
// for by reporting a rejected value.
func (w *Worker) plan(d db.Due) (db.Plan, error) {
	r, err := refresherFor(d.AccountKind, d.Kind, d.TokenMode)
	if err != nil {
		return db.Plan{}, err
	}
	limit := r.defaultLimit
	if l, ok := d.DailyLimits[r.api]; ok {
		limit = l
	}
	if !d.Requested {
		limit -= int(float64(limit) * w.cfg.QuotaReserve)
	}
	p := db.Plan{API: r.api, DailyLimit: limit, Rotates: r.rotates}
	if r.hourlyLimit > 0 {
		// No reserve here: a requested refresh of a ticket still waits for the hour to turn,
		// because WeCom would refuse it anyway.
		p.HourlyLimit = r.hourlyLimit
		if l, ok := w.cfg.HourlyLimits[r.api]; ok {
			p.HourlyLimit = l
		}
		p.HourlyScope = fmt.Sprintf("account:%d", d.AccountID)
		if r.perCorp {
			p.HourlyScope = "corp:" + d.CorpID
		}
	}
	return p, nil
}
