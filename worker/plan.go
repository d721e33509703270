package worker

import (
	"context"
	"fmt"

	"wxhub/db"
	"wxhub/wechat"
)

// refresher says how one kind of credential of one kind of account is refreshed. Adding an
// account kind (WeCom, component, authorizer) means adding its rows to refresherFor.
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
	fetch            func(ctx context.Context, c *wechat.Client, cl db.Claim) (wechat.Token, error)
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
	return db.Plan{API: r.api, DailyLimit: limit, Rotates: r.rotates}, nil
}
