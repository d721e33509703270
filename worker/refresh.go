package worker

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"wxhub/db"
	"wxhub/wechat"
)

// Error codes wxhub stores for failures that are not WeChat's answers.
const (
	codeNetwork       = -1000 // no usable answer: connection, timeout, HTTP status, bad body
	codeUndecryptable = -1001 // the secret or value does not decrypt with the key ring
	codeNoToken       = -1002 // a ticket is due but the account has no valid access token
	codeLateClaim     = -1003 // the call could end too late in the claim; nothing was called
	// db.CodeQuotaGuard (-1004): parked by wxhub's own daily quota guard
	codeNoVerifyTicket = -1006 // a component's token is due but WeChat pushed no usable verify ticket
)

var (
	errNoAccessToken  = errors.New("no valid access token to make the call with (the account's for a ticket, the component's for an authorizer's token)")
	errLateClaim      = errors.New("too late in the claim to call WeChat safely; not called")
	errNoWeComClient  = errors.New("no WeCom base URL configured (--wecom-base-url); not called")
	errNoVerifyTicket = errors.New("no component_verify_ticket from WeChat in the last 12 hours: check that WeChat's authorization event URL points at wxhub's callback endpoint")
)

// orphanMargin is added to the overlap before a rotating credential whose last fetch got no
// answer is fetched again: the API nodes stop promising the stored value at the end of the
// overlap, and the clocks of nodes and workers may differ a little.
const orphanMargin = time.Second

// refresh fetches a new value for one claimed credential and stores it, or records why not.
// ctx is not the caller's: nothing that started a WeChat call may be cancelled by shutdown.
func (w *Worker) refresh(ctx context.Context, c db.Claim) {
	r, err := refresherFor(c.AccountKind, c.Kind, c.TokenMode)
	if err != nil {
		w.fail(ctx, c, err)
		return
	}
	if c.OpenErr != nil {
		w.fail(ctx, c, c.OpenErr)
		return
	}
	if r.needsAccessToken && c.AccessToken == "" {
		w.fail(ctx, c, errNoAccessToken)
		return
	}
	if r.needsVerifyTicket && c.VerifyTicket == "" {
		w.fail(ctx, c, errNoVerifyTicket)
		return
	}
	// A worker that takes an unfinished claim of a rotating credential over waits until the
	// overlap has passed since replace_not_before, and until the lapsed lease's end plus the
	// call timeout (CredentialHold), so a call that surely ends before both cannot reach
	// WeChat after the new holder's call and kill what it stores. That bound holds only for
	// calls started inside the lease: once it has run out another worker may already have
	// taken over and fetched. ClaimedAt is at or before the lease's start, so a worker that
	// was slow to get its claim back, or paused between claiming and calling, does not call.
	if r.rotates && (time.Since(c.ClaimedAt)+w.cfg.CallTimeout >= w.cfg.Overlap || time.Since(c.ClaimedAt) >= w.cfg.Lease) {
		w.fail(ctx, c, errLateClaim)
		return
	}
	client := w.wechat
	if r.wecom {
		client = w.cfg.WeCom
	}
	if client == nil {
		w.fail(ctx, c, errNoWeComClient)
		return
	}
	callCtx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	start := time.Now()
	w.metrics.calling.Inc()
	tok, err := r.fetch(callCtx, w, client, c)
	w.metrics.calling.Dec()
	cancel()
	result := "ok"
	if err != nil {
		result = "error"
	}
	w.metrics.upstream.WithLabelValues(r.api, result).Observe(time.Since(start).Seconds())
	if err != nil {
		w.failCall(ctx, c, r, err)
		return
	}
	// WeChat counted the lifetime from its answer; the time the answer took to arrive is
	// already gone, so the expiry is counted from the start of the call rather than trusting
	// the value to live longer.
	expiresAt := start.Add(tok.ExpiresIn)

	if !r.rotates && tok.Value == c.Current {
		// stable_token returned the value already stored: the call came before WeChat's
		// rotation window. Not a refresh; try again inside the window.
		if err := w.store.Reschedule(ctx, c, w.stableRefreshIn(time.Until(expiresAt))); err != nil {
			w.log.Warn("reschedule failed", "appid", c.AppID, "credential", c.Kind, "err", err)
		}
		w.metrics.refreshes.WithLabelValues(c.Kind, "unchanged").Inc()
		return
	}
	w.write(c, r, tok, expiresAt, start)
}

// countExtraCall counts a call a refresher makes beyond the one its claim counted.
func (w *Worker) countExtraCall(ctx context.Context, c db.Claim, api string) {
	if err := w.store.RecordCall(ctx, c.TenantID, c.AccountID, api, 0); err != nil {
		w.log.Error("could not count a call in the quota ledger", "appid", c.AppID, "api", api, "err", err)
	}
}

// write stores a fetched value. If the database is unreachable it keeps trying while the
// value is inside its overlap window, because until then the value it replaces still works;
// after that it gives up and the claim's lease lets the next claim fetch again.
func (w *Worker) write(c db.Claim, r refresher, tok fetched, expiresAt, start time.Time) {
	deadline := start.Add(w.cfg.Overlap)
	fraction := 0.75 + 0.1*rand.Float64()
	for attempt := 1; ; attempt++ {
		lifetime := time.Until(expiresAt)
		wr := db.Write{Value: tok.Value, ExpiresAt: expiresAt, PreviousValidFor: w.cfg.Overlap, RefreshToken: tok.refreshToken}
		if r.rotates {
			wr.RefreshIn = time.Duration(float64(lifetime) * fraction)
		} else {
			wr.RefreshIn = w.stableRefreshIn(lifetime)
			// A stable token replaced in the window stays valid until its own expiry.
			wr.PreviousValidFor = 24 * time.Hour
		}
		generation, replayed, err := w.writer.write(c, wr)
		if err == nil && replayed {
			// An earlier attempt was committed but its answer was lost with the connection.
			w.metrics.refreshes.WithLabelValues(c.Kind, "refreshed").Inc()
			w.log.Info("an earlier attempt had stored the value; its answer was lost", "appid", c.AppID,
				"credential", c.Kind, "attempts", attempt)
			return
		}
		if err == nil {
			w.metrics.refreshes.WithLabelValues(c.Kind, "refreshed").Inc()
			w.log.Debug("refreshed", "appid", c.AppID, "credential", c.Kind, "generation", generation,
				"expires_in", lifetime.Round(time.Second), "refresh_in", wr.RefreshIn.Round(time.Second))
			return
		}
		if errors.Is(err, db.ErrFenced) {
			// This worker was paused past its lease and another claim has taken over. That
			// claim found this one unfinished and treats its value as a possible orphan, so
			// discarding the value is all that is left to do.
			w.metrics.refreshes.WithLabelValues(c.Kind, "fenced").Inc()
			w.log.Warn("the claim was taken over by another worker; value discarded", "appid", c.AppID, "credential", c.Kind)
			return
		}
		if errors.Is(err, errWriterStopped) || time.Now().After(deadline) {
			w.metrics.refreshes.WithLabelValues(c.Kind, "write_failed").Inc()
			w.log.Error("could not store the fetched value within the overlap; the next claim fetches again",
				"appid", c.AppID, "credential", c.Kind, "attempts", attempt, "err", err)
			return
		}
		wait := backoff(100*time.Millisecond, 2*time.Second, attempt)
		w.metrics.retries.Inc()
		w.log.Warn("storing the fetched value failed; retrying", "appid", c.AppID, "credential", c.Kind,
			"attempt", attempt, "retry_in", wait, "err", err)
		time.Sleep(wait)
	}
}

// stableRefreshIn schedules a stable token: calls before WeChat's rotation window (the last
// Overlap of the token's life) return the same token, so the refresh is due at the start of
// the window, with jitter inside its first fifth.
func (w *Worker) stableRefreshIn(lifetime time.Duration) time.Duration {
	overlap := w.cfg.Overlap
	if lifetime <= overlap {
		// Already inside the window (or a lifetime shorter than the window): rotate soon.
		return max(time.Second, time.Duration(float64(lifetime)*0.2*rand.Float64()))
	}
	return lifetime - overlap + time.Duration(0.2*float64(overlap)*rand.Float64())
}

// failCall records a failed WeChat call. A call without an answer from WeChat (a lost
// connection, a timeout, an answer that is not WeChat's) may still have issued a value, and
// for a credential whose every fetch kills the previous value that value is an orphan that
// makes the next fetch kill the stored one at once: the failure holds the next fetch until
// the API nodes have stopped promising the stored value.
func (w *Worker) failCall(ctx context.Context, c db.Claim, r refresher, err error) {
	var we *wechat.Error
	if r.rotates && !errors.As(err, &we) {
		w.recordFailure(ctx, c, err, w.cfg.Overlap+orphanMargin, false)
		return
	}
	w.recordFailure(ctx, c, err, 0, false)
}

// fail records a refresh that failed before any request to WeChat left this worker: the
// call its claim counted in the quota ledger is given back, so the ledger counts calls
// WeChat saw, not claims.
func (w *Worker) fail(ctx context.Context, c db.Claim, err error) {
	w.recordFailure(ctx, c, err, 0, true)
}

// recordFailure records a failed refresh: the current value stays in service, and the retry
// time depends on what kind of failure WeChat reported. A failure that may have reached
// WeChat (notCalled false), a network error included, stays counted.
func (w *Worker) recordFailure(ctx context.Context, c db.Claim, err error, orphanHold time.Duration, notCalled bool) {
	f := db.Failure{Code: codeNetwork, Message: err.Error(), OrphanHold: orphanHold, NotCalled: notCalled}
	var we *wechat.Error
	if errors.As(err, &we) {
		f.Code, f.Message = we.Code, we.Message
	}
	var outcome string
	switch {
	case c.OpenErr != nil:
		outcome = "undecryptable"
		f.Code, f.RetryIn = codeUndecryptable, jitter(w.cfg.ConfigRetry)
		f.AccountStatus, f.Reason = "failing", "stored secret or value does not decrypt with WXHUB_KEYS"
	case errors.Is(err, errNoAccessToken):
		outcome = "no_token"
		f.Code, f.RetryIn = codeNoToken, w.transientRetry(c)
	case errors.Is(err, errLateClaim):
		outcome = "late_claim"
		f.Code, f.RetryIn = codeLateClaim, 0
	case errors.Is(err, errNoVerifyTicket):
		// The next ticket WeChat pushes wakes a dead token at once (db.StoreVerifyTicket);
		// a live one keeps serving and is tried again after ConfigRetry.
		outcome = "no_verify_ticket"
		f.Code, f.RetryIn = codeNoVerifyTicket, jitter(w.cfg.ConfigRetry)
		f.AccountStatus, f.Reason = "failing", err.Error()
	default:
		kind := wechat.Classify(err)
		outcome = kind.String()
		switch kind {
		case wechat.KindTokenInvalid:
			// The access token the ticket was fetched with is dead (killed outside wxhub):
			// compare and refresh it, then the ticket follows.
			if _, err := w.store.ReportDead(ctx, c.TokenAccountID, "access_token", c.TokenGeneration, time.Minute); err != nil {
				w.log.Error("could not request an access token refresh", "appid", c.AppID, "err", err)
			}
			f.RetryIn = w.transientRetry(c)
		case wechat.KindQuota:
			f.RetryIn = untilNextQuotaDay(time.Now()) + jitter(time.Minute)
			if c.HourlyScope != "" {
				// WeCom's ticket limits are hourly: wait for the window after the counted one.
				f.RetryIn = time.Until(c.HourlyWindow.Add(w.cfg.HourlyWindow)) + jitter(min(time.Minute, w.cfg.HourlyWindow/10))
			}
		case wechat.KindRevoked:
			f.RetryIn = jitter(w.cfg.ConfigRetry)
			f.AccountStatus, f.Reason = "failing", err.Error()
			if c.AccountKind == "authorizer" {
				// WeChat says the account withdrew its authorization, whether or not the
				// unauthorized event has arrived: refreshing stops and nothing is served.
				f.AccountStatus = "unauthorized"
			}
		case wechat.KindConfiguration, wechat.KindBug:
			f.RetryIn = jitter(w.cfg.ConfigRetry)
			f.AccountStatus, f.Reason = "failing", err.Error()
		default:
			f.RetryIn = w.transientRetry(c)
		}
	}
	w.metrics.refreshes.WithLabelValues(c.Kind, outcome).Inc()
	w.log.Warn("refresh failed", "appid", c.AppID, "credential", c.Kind, "kind", outcome,
		"code", f.Code, "err", err, "retry_in", f.RetryIn.Round(time.Millisecond))
	switch recErr := w.store.RecordFailure(ctx, c, f); {
	case errors.Is(recErr, db.ErrClaimLost):
		// This worker was paused past its lease and another one has taken the credential over.
		w.log.Warn("failure not recorded: the claim was taken over", "appid", c.AppID, "credential", c.Kind)
	case recErr != nil:
		w.log.Error("could not record the failure; the claim's lease will expire", "appid", c.AppID, "credential", c.Kind, "err", recErr)
	}
}

// transientRetry is the wait after a transient failure: exponential backoff, but never more
// than a quarter of the time the stored value has left, so that near its expiry several
// retries still fit before it dies, and short once it has died.
func (w *Worker) transientRetry(c db.Claim) time.Duration {
	d := backoff(w.cfg.RetryBase, w.cfg.RetryMax, c.Attempts+1)
	if c.ExpiresAt == nil {
		return d
	}
	if left := time.Until(*c.ExpiresAt); left > 0 {
		return min(d, max(left/4, 50*time.Millisecond))
	}
	// The value has expired and app servers are waiting for one: keep retrying at least every
	// half minute, which a day-long outage still pays for within the quota guard.
	return min(d, jitter(30*time.Second))
}

// backoff is exponential with jitter: between half and all of base·2^(attempt-1), capped.
func backoff(base, maxWait time.Duration, attempt int) time.Duration {
	d := base
	for i := 1; i < attempt && d < maxWait; i++ {
		d *= 2
	}
	return jitter(min(d, maxWait))
}

// jitter spreads d over [d/2, d] so workers that failed together retry apart.
func jitter(d time.Duration) time.Duration {
	return d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// chinaTime is the zone WeChat's daily quotas follow.
var chinaTime = time.FixedZone("UTC+8", 8*60*60)

// untilNextQuotaDay is the time left until midnight in China, when WeChat's counters reset.
func untilNextQuotaDay(now time.Time) time.Duration {
	local := now.In(chinaTime)
	midnight := time.Date(local.Year(), local.Month(), local.Day()+1, 0, 0, 0, 0, chinaTime)
	return midnight.Sub(now)
}
