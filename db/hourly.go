package db

import (
	"context"
	"time"

	"wxhub/db/dbsqlc"
)

// CodeHourlyGuard is the error code stored for a credential parked by wxhub's own hourly
// limit guard (WeCom's tickets), as opposed to WeCom's own refusal.
const CodeHourlyGuard = -1005

// defaultHourlyWindow is the hourly ledger's window when ClaimRequest leaves it zero.
const defaultHourlyWindow = time.Hour

// hourlyCount is what a claim round counted in the hourly ledger.
type hourlyCount struct {
	// counted maps a credential's claim key to the ledger row its call was counted in.
	counted map[string]dbsqlc.UpstreamCallsHourlyCountRow
	// refused holds the claim keys not to claim this round: over the limit (parked until the
	// next window), or a second credential of a scope already counted (left due).
	refused map[string]bool
	// over lists the appids parked until the next window.
	over []string
}

// countHourly counts, in the hourly ledger, the call of each planned credential whose plan
// has an hourly limit, and parks those over it until the next window. It runs inside the
// claim's transaction, before the daily count: a credential the daily count then refuses
// gives its hourly count back (refund).
func countHourly(ctx context.Context, q *dbsqlc.Queries, req ClaimRequest, order []string, held map[string]bool,
	byKey map[string]dbsqlc.CredentialLockDueRow, plans map[string]Plan) (hourlyCount, error) {
	h := hourlyCount{counted: map[string]dbsqlc.UpstreamCallsHourlyCountRow{}, refused: map[string]bool{}}
	window := req.HourlyWindow
	if window <= 0 {
		window = defaultHourlyWindow
	}
	var in dbsqlc.UpstreamCallsHourlyCountParams
	byScope := map[string]string{} // scope/api → claim key
	for _, key := range order {
		plan := plans[key]
		if held[key] || plan.HourlyLimit <= 0 {
			continue
		}
		scope := plan.HourlyScope + "/" + plan.API
		if _, dup := byScope[scope]; dup {
			h.refused[key] = true
			continue
		}
		byScope[scope] = key
		in.Scopes = append(in.Scopes, plan.HourlyScope)
		in.Apis = append(in.Apis, plan.API)
		in.HourlyLimits = append(in.HourlyLimits, int32(plan.HourlyLimit))
	}
	if len(in.Scopes) == 0 {
		return h, nil
	}
	in.WindowSeconds = window.Seconds()
	rows, err := q.UpstreamCallsHourlyCount(ctx, in)
	if err != nil {
		return h, err
	}
	for _, r := range rows {
		h.counted[byScope[r.Scope+"/"+r.Api]] = r
	}
	var over dbsqlc.CredentialDeferToNextWindowParams
	for _, key := range byScope {
		if _, ok := h.counted[key]; ok {
			continue
		}
		d := byKey[key]
		h.refused[key] = true
		h.over = append(h.over, d.Appid)
		over.AccountIds = append(over.AccountIds, d.AccountID)
		over.Kinds = append(over.Kinds, d.Kind)
	}
	if len(over.AccountIds) == 0 {
		return h, nil
	}
	over.WindowSeconds = window.Seconds()
	over.JitterSeconds = min(time.Minute, window/10).Seconds()
	over.ErrorCode = CodeHourlyGuard
	over.Message = "wxhub's hourly limit guard: no calls left in this hour for this API (WeCom's ticket limit)"
	return h, q.CredentialDeferToNextWindow(ctx, over)
}

// refund gives back the hourly count of a credential the claim did not take after all.
func (h hourlyCount) refund(ctx context.Context, q *dbsqlc.Queries, key string) error {
	r, ok := h.counted[key]
	if !ok {
		return nil
	}
	delete(h.counted, key)
	_, err := q.UpstreamCallsHourlyRefund(ctx, dbsqlc.UpstreamCallsHourlyRefundParams{
		Scope: r.Scope, Api: r.Api, WindowStart: r.WindowStart,
	})
	return err
}

// deref reads an optional text column, "" for NULL.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
