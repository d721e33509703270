package worker

import (
	"context"
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
	fetch             func(ctx context.Context, c *wechat.Client, cl db.Claim) (wechat.Token, error)
}

var (
	stableToken = refresher{
		api: wechat.APIStableToken, defaultLimit: 500_000,
		fetch: func(ctx context.Context, c *wechat.Client, cl db.Claim) (wechat.Token, error) {
			return c.StableToken(ctx, cl.AppID, cl.Secret, false)
		},
	}
	classicToken = refresher{
		api: wechat.APIToken, defaultLimit: 2_000, rotates: true,
		fetch: func(ctx context.Context, c *wechat.Client, cl db.Claim) (wechat.Token, error) {
			return c.ClassicToken(ctx, cl.AppID, cl.Secret)
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
		fetch: func(ctx context.Context, c *wechat.Client, cl db.Claim) (wechat.Token, error) {
			return c.WeComToken(ctx, cl.CorpID, cl.Secret)
		},
	}
	wecomCorpTicket = refresher{
		api: wechat.APIWeComJSAPITicket, defaultLimit: 400 * 24, rotates: true, needsAccessToken: true, wecom: true,
		hourlyLimit: 400, perCorp: true,
		fetch: func(ctx context.Context, c *wechat.Client, cl db.Claim) (wechat.Token, error) {
			return c.WeComJSAPITicket(ctx, cl.AccessToken)
		},
	}
	wecomAgentTicket = refresher{
		api: wechat.APIWeComAgentTicket, defaultLimit: 100 * 24, rotates: true, needsAccessToken: true, wecom: true,
		hourlyLimit: 100,
		fetch: func(ctx context.Context, c *wechat.Client, cl db.Claim) (wechat.Token, error) {
			return c.WeComAgentTicket(ctx, cl.AccessToken)
		},
	}
)

// componentToken is a third-party platform's own token. WeChat documents no daily limit for
// it; 2,000 (the classic token's) is a guard against a runaway loop, and an account's
// daily_limits can raise it.
var componentToken = refresher{
	api: wechat.APIComponentToken, defaultLimit: 2_000, rotates: true, needsVerifyTicket: true,
	fetch: func(ctx context.Context, c *wechat.Client, cl db.Claim) (wechat.Token, error) {
		return c.ComponentToken(ctx, cl.AppID, cl.Secret, cl.VerifyTicket)
	},
}

// ticket refreshes a JS-SDK or card ticket with the account's current access token.
func ticket(ticketType string) refresher {
	return refresher{
		api: wechat.APIGetTicket, defaultLimit: 100_000, rotates: true, needsAccessToken: true,
		fetch: func(ctx context.Context, c *wechat.Client, cl db.Claim) (wechat.Token, error) {
			return c.Ticket(ctx, cl.AccessToken, ticketType)
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
