package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"wxhub/db/dbsqlc"
)

// ErrFenced means a write found its claim taken over or a newer generation than the one its
// claim read: another worker claimed or refreshed the credential meanwhile, and this write
// changed nothing.
var ErrFenced = errors.New("credential claimed or changed by another worker since it was claimed")

// CodeQuotaGuard is the error code stored for a credential parked by wxhub's own daily quota
// guard, as opposed to WeChat's 45009: requests from app servers may still spend the
// reserve the guard keeps.
const CodeQuotaGuard = -1004

// ErrClaimLost means the claim's lease was taken over by another worker; recording its
// outcome changed nothing.
var ErrClaimLost = errors.New("claim no longer held")

// Due describes a due credential before it is claimed, so the caller can say which WeChat
// API refreshes it and what that API's daily limit is.
type Due struct {
	AccountID   int64
	AppID       string
	CorpID      string // a WeCom app's corp, "" for other kinds
	AccountKind string
	Kind        string
	TokenMode   string
	DailyLimits map[string]int
	Requested   bool // an app server reported the current value rejected
}

// Plan is the caller's answer for a due credential: the API that refreshes it (the quota
// ledger's key), how many calls of it may be made today, and whether every call issues a new
// value that kills the previous one after the overlap (classic tokens, tickets).
type Plan struct {
	API        string
	DailyLimit int
	Rotates    bool
	// HourlyScope and HourlyLimit, when HourlyLimit is positive, count the call in the
	// hourly ledger too (WeCom's tickets): at most HourlyLimit calls of API per window for
	// the scope (corp:<corp_id> or account:<id>). A scope appears in at most one
	// credential's plan of a claim round; a second one waits for the next round.
	HourlyScope string
	HourlyLimit int
}

// ClaimRequest says how many credentials to claim and for how long.
type ClaimRequest struct {
	Worker string                  // recorded as claimed_by, for operators
	Max    int                     // at most this many claims
	Lease  time.Duration           // how long the claim holds before another worker may take it
	Plan   func(Due) (Plan, error) // which API and limit apply; an error postpones the credential
	// Postpone is how long a credential the plan rejects waits before it is looked at again.
	Postpone time.Duration
	// OrphanHold is how long after replace_not_before a rotating credential waits when a
	// value WeChat issued may never have reached wxhub: the overlap and a margin. Fetching
	// sooner could kill the stored value while API nodes still promise it.
	OrphanHold time.Duration
	// CallBound is the longest a worker's call may still reach WeChat after its lease ran
	// out: its call timeout and a margin for clocks. A rotating credential whose claim did
	// not finish is not fetched again before that, so no call of the lapsed claim can land
	// after the new one and kill the value it stores.
	CallBound time.Duration
	// HourlyWindow is the window of the hourly ledger [1h]: the clock hour in service,
	// shorter in tests.
	HourlyWindow time.Duration
}

// Claim is a credential leased to one worker, with what refreshing it needs, decrypted.
type Claim struct {
	AccountID   int64
	TenantID    int64
	AppID       string
	AccountKind string
	Kind        string
	TokenMode   string
	API         string
	ClaimSeq    int64
	Generation  int64
	Secret      string
	Current     string     // the stored value, "" before the first fetch
	ExpiresAt   *time.Time // of the stored value
	// AccessToken is the token the call is made with: for tickets the account's access
	// token, for an authorizer's access token its component's.
	AccessToken string
	// TokenAccountID is the account whose access token AccessToken is.
	TokenAccountID int64
	// ComponentAppID is, for an authorizer, the appid of the component it authorized.
	ComponentAppID string
	// VerifyTicket is, for a component's access token, the latest component_verify_ticket
	// WeChat pushed, "" when none is younger than VerifyTicketLifetime.
	VerifyTicket string
	// TokenGeneration is the generation of AccessToken, to ask for a compare-and-refresh
	// when WeChat rejects it.
	TokenGeneration int64
	Requested       bool
	Attempts        int
	// ClaimedAt is when the worker began the claim, by its clock: the lease started at or
	// after it (the database's time at the start of the claiming transaction), however long
	// the claim took to come back. A worker that checks how late it is against it is never
	// later than it believes.
	ClaimedAt time.Time
	// QuotaDay is the quota day (China time) on which the claim counted its call to API.
	QuotaDay time.Time
	// CorpID is a WeCom app's corp, "" for other kinds.
	CorpID string
	// HourlyScope, when set, is the hourly ledger's scope the claim counted its call in, in
	// the window starting at HourlyWindow.
	HourlyScope  string
	HourlyWindow time.Time
	// OpenErr is set when a secret or value did not decrypt; the claim then cannot be
	// refreshed and the caller records the failure.
	OpenErr error
}

// ClaimResult is what one claim round did.
type ClaimResult struct {
	Claims []Claim
	// OverQuota lists the appids whose due credential was parked until the next quota day
	// because its API has no calls left today.
	OverQuota []string
	// OverHourly lists the appids whose due credential was parked until the hourly ledger's
	// next window because its scope has no calls left in this one.
	OverHourly []string
}

// ClaimDue claims due credentials in one transaction: it locks due rows (skipping those other
// workers hold), takes each account's transaction-level advisory lock, and for at most one
// credential per account with nothing else in flight counts the upstream call in the quota
// ledger and leases the credential. Counting happens before the call is made, so a crash
// never under-counts.
func (s *Store) ClaimDue(ctx context.Context, req ClaimRequest) (ClaimResult, error) {
	began := time.Now()
	var result ClaimResult
	var hourlyCounted map[string]dbsqlc.UpstreamCallsHourlyCountRow
	var picked []dbsqlc.CredentialLockDueRow
	var claimed []dbsqlc.CredentialClaimRow
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The claim's statements join sets passed as arrays. A cached generic plan guesses 10
		// elements per array and joins them with nested loops, quadratic in the claim's size
		// (2,048 credentials took 1.5 s); a plan made for the arrays at hand hashes them.
		if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_custom_plan"); err != nil {
			return err
		}
		q := s.q.WithTx(tx)
		due, err := q.CredentialLockDue(ctx, dbsqlc.CredentialLockDueParams{Max: int32(req.Max)})
		if err != nil || len(due) == 0 {
			return err
		}
		// One credential per account per round: the rest stay due for the next round.
		seen := map[int64]bool{}
		var ids []int64
		var parked dbsqlc.CredentialUnscheduleParams
		for _, d := range due {
			if d.AccountStatus != "active" && d.AccountStatus != "failing" {
				parked.AccountIds = append(parked.AccountIds, d.AccountID)
				parked.Kinds = append(parked.Kinds, d.Kind)
				continue
			}
			if !seen[d.AccountID] {
				seen[d.AccountID] = true
				ids = append(ids, d.AccountID)
			}
		}
		if len(parked.AccountIds) > 0 {
			if err := q.CredentialUnschedule(ctx, parked); err != nil {
				return err
			}
		}
		locked, err := q.AccountTryLock(ctx, ids)
		if err != nil {
			return err
		}
		isLocked := map[int64]bool{}
		for _, id := range locked {
			isLocked[id] = true
		}
		var in dbsqlc.CredentialClaimParams
		var postpone dbsqlc.CredentialPostponeParams
		hold := dbsqlc.CredentialHoldParams{HoldSeconds: req.OrphanHold.Seconds(), CallSeconds: req.CallBound.Seconds()}
		byKey := map[string]dbsqlc.CredentialLockDueRow{}
		plans := map[string]Plan{}
		var order []string // planned credentials, oldest due first
		for _, d := range due {
			if !isLocked[d.AccountID] {
				continue
			}
			isLocked[d.AccountID] = false
			var limits map[string]int
			if err := json.Unmarshal(d.DailyLimits, &limits); err != nil {
				return fmt.Errorf("account %s: daily limits: %w", d.Appid, err)
			}
			plan, err := req.Plan(Due{AccountID: d.AccountID, AppID: d.Appid, CorpID: deref(d.CorpID), AccountKind: d.AccountKind, Kind: d.Kind,
				TokenMode: d.TokenMode, DailyLimits: limits, Requested: d.RefreshRequestedAt != nil})
			if err != nil {
				// Left due, it would stand at the head of every claim and starve the rest.
				postpone.AccountIds = append(postpone.AccountIds, d.AccountID)
				postpone.Kinds = append(postpone.Kinds, d.Kind)
				postpone.Message = err.Error()
				continue
			}
			if plan.Rotates {
				hold.AccountIds = append(hold.AccountIds, d.AccountID)
				hold.Kinds = append(hold.Kinds, d.Kind)
			}
			key := claimKey(d.AccountID, d.Kind)
			byKey[key], plans[key] = d, plan
			order = append(order, key)
		}
		if len(postpone.AccountIds) > 0 {
			postpone.PostponeSeconds = req.Postpone.Seconds()
			if err := q.CredentialPostpone(ctx, postpone); err != nil {
				return err
			}
		}
		held := map[string]bool{}
		if len(hold.AccountIds) > 0 {
			rows, err := q.CredentialHold(ctx, hold)
			if err != nil {
				return err
			}
			for _, r := range rows {
				held[claimKey(r.AccountID, r.Kind)] = r.Held
			}
		}
		hourly, err := countHourly(ctx, q, req, order, held, byKey, plans)
		if err != nil {
			return err
		}
		result.OverHourly, hourlyCounted = hourly.over, hourly.counted
		for _, key := range order {
			if held[key] || hourly.refused[key] {
				continue
			}
			d, plan := byKey[key], plans[key]
			in.AccountIds = append(in.AccountIds, d.AccountID)
			in.Kinds = append(in.Kinds, d.Kind)
			in.Apis = append(in.Apis, plan.API)
			in.DailyLimits = append(in.DailyLimits, int32(plan.DailyLimit))
		}
		if len(in.AccountIds) == 0 {
			return nil
		}
		in.Worker = req.Worker
		in.LeaseSeconds = req.Lease.Seconds()
		claimed, err = q.CredentialClaim(ctx, in)
		if err != nil {
			return err
		}
		var overIDs []int64
		var overKinds []string
		for _, c := range claimed {
			key := claimKey(c.AccountID, c.Kind)
			d := byKey[key]
			if !c.Claimed {
				// Not called after all: the hourly count is given back.
				if err := hourly.refund(ctx, q, key); err != nil {
					return err
				}
			}
			switch {
			case c.Claimed:
				picked = append(picked, d)
			case !c.Busy:
				overIDs = append(overIDs, c.AccountID)
				overKinds = append(overKinds, c.Kind)
				result.OverQuota = append(result.OverQuota, d.Appid)
			}
		}
		if len(overIDs) == 0 {
			return nil
		}
		return q.CredentialDeferToNextQuotaDay(ctx, dbsqlc.CredentialDeferToNextQuotaDayParams{
			AccountIds: overIDs, Kinds: overKinds, JitterSeconds: 600, ErrorCode: CodeQuotaGuard,
			Message: "wxhub's daily quota guard: no calls left today for this API (limit minus reserve)",
		})
	})
	if err != nil {
		return ClaimResult{}, fmt.Errorf("claim due credentials: %w", err)
	}
	seqs := map[string]dbsqlc.CredentialClaimRow{}
	for _, c := range claimed {
		seqs[claimKey(c.AccountID, c.Kind)] = c
	}
	for _, d := range picked {
		c := seqs[claimKey(d.AccountID, d.Kind)]
		cl := s.toClaim(d, c)
		cl.ClaimedAt = began
		if h, ok := hourlyCounted[claimKey(d.AccountID, d.Kind)]; ok {
			cl.HourlyScope, cl.HourlyWindow = h.Scope, h.WindowStart
		}
		result.Claims = append(result.Claims, cl)
	}
	return result, nil
}

func claimKey(accountID int64, kind string) string { return fmt.Sprintf("%d/%s", accountID, kind) }

func (s *Store) toClaim(d dbsqlc.CredentialLockDueRow, c dbsqlc.CredentialClaimRow) Claim {
	cl := Claim{
		CorpID:    deref(d.CorpID),
		AccountID: d.AccountID, TenantID: d.TenantID, AppID: d.Appid, AccountKind: d.AccountKind,
		Kind: d.Kind, TokenMode: d.TokenMode, API: c.Api, ClaimSeq: c.ClaimSeq,
		Generation: d.Generation, ExpiresAt: d.ExpiresAt, Requested: d.RefreshRequestedAt != nil,
		Attempts: int(d.Attempts),
	}
	if c.QuotaDay != nil {
		cl.QuotaDay = *c.QuotaDay
	}
	var err error
	if cl.Secret, err = s.open(d.SecretKeyID, d.SecretCiphertext, secretAD(d.Appid)); err != nil {
		cl.OpenErr = fmt.Errorf("secret of account %s: %w", d.Appid, err)
		return cl
	}
	if cl.Current, err = s.open(d.ValueKeyID, d.ValueCiphertext, valueAD(d.AccountID, d.Kind)); err != nil {
		cl.OpenErr = fmt.Errorf("%s of account %s: %w", d.Kind, d.Appid, err)
		return cl
	}
	cl.ComponentAppID = deref(d.ComponentAppid)
	if d.TokenGeneration != nil {
		cl.TokenGeneration = *d.TokenGeneration
	}
	if d.TokenAccountID != nil {
		cl.TokenAccountID = *d.TokenAccountID
	}
	if d.TokenExpiresAt != nil && time.Now().Before(*d.TokenExpiresAt) {
		dependency, into := deref(d.TokenKind), &cl.AccessToken
		if dependency == "verify_ticket" {
			into = &cl.VerifyTicket
		}
		if *into, err = s.open(d.TokenKeyID, d.TokenCiphertext, valueAD(cl.TokenAccountID, dependency)); err != nil {
			cl.OpenErr = fmt.Errorf("%s of account %d (for %s): %w", dependency, cl.TokenAccountID, d.Appid, err)
		}
	}
	return cl
}

// Write is a newly fetched value for a claimed credential.
type Write struct {
	Value string
	// ExpiresAt is when WeChat stops accepting the value: the start of the call plus the
	// expires_in WeChat answered. It is absolute, so a write that reaches the database late
	// does not stretch it.
	ExpiresAt time.Time
	// RefreshIn is when the next refresh is due, from now.
	RefreshIn time.Duration
	// PreviousValidFor is how long WeChat keeps accepting the value being replaced (its
	// own expiry caps it): the overlap for APIs that rotate on every call.
	PreviousValidFor time.Duration
	// RefreshToken, when set, is the authorizer refresh token WeChat answered with the
	// value: it replaces the account's stored one in the same statement.
	RefreshToken string
}

// WriteCredential stores one new value for a claimed credential: WriteCredentials with a
// batch of one. ErrFenced if the claim was taken over or the generation changed.
func (s *Store) WriteCredential(ctx context.Context, c Claim, w Write) (generation int64, replayed bool, err error) {
	out, err := s.WriteCredentials(ctx, []ClaimWrite{{Claim: c, Write: w}})
	if err != nil {
		return 0, false, err
	}
	if out[0].Err != nil {
		return 0, false, fmt.Errorf("write %s of %s: %w", c.Kind, c.AppID, out[0].Err)
	}
	return out[0].Generation, out[0].Replayed, nil
}

// ClaimWrite is a newly fetched value and the claim it was fetched under.
type ClaimWrite struct {
	Claim Claim
	Write Write
}

// WriteOutcome is what became of one value of a batch.
type WriteOutcome struct {
	// Generation is the credential's generation holding the value.
	Generation int64
	// Replayed is set when an earlier attempt had stored the value and its answer was lost.
	Replayed bool
	// Err is ErrFenced when the claim was taken over or the generation changed: nothing was
	// stored for this credential.
	Err error
}

// WriteCredentials stores new values for claimed credentials in one statement: for each, the
// value, its expiry, generation+1, the previous value while it is valid, the next refresh
// time, and NOTIFYs to API nodes, each row fenced on its own claim (no later claim took it
// over) and on the generation that claim read. The outcomes come in the order of writes. An
// error means the statement failed and nothing of the batch is known to be stored: a retry
// recognises what was (Replayed). This is the only place a refreshed credential value is
// written; the values WeChat hands over unasked are stored where they arrive: a pushed
// component_verify_ticket (StoreVerifyTicket) and the token of an authorization (Authorize).
func (s *Store) WriteCredentials(ctx context.Context, writes []ClaimWrite) ([]WriteOutcome, error) {
	var p dbsqlc.CredentialWriteFencedParams
	for _, cw := range writes {
		c, w := cw.Claim, cw.Write
		keyID, ciphertext, err := s.ring.Seal([]byte(w.Value), valueAD(c.AccountID, c.Kind))
		if err != nil {
			return nil, fmt.Errorf("write %s of %s: %w", c.Kind, c.AppID, err)
		}
		p.AccountIds = append(p.AccountIds, c.AccountID)
		p.Kinds = append(p.Kinds, c.Kind)
		p.ClaimSeqs = append(p.ClaimSeqs, c.ClaimSeq)
		p.Generations = append(p.Generations, c.Generation)
		p.ValueCiphertexts = append(p.ValueCiphertexts, ciphertext)
		p.ValueKeyIds = append(p.ValueKeyIds, keyID)
		p.ValueFingerprints = append(p.ValueFingerprints, Fingerprint(w.Value))
		p.ExpiresAts = append(p.ExpiresAts, w.ExpiresAt)
		p.RefreshInSeconds = append(p.RefreshInSeconds, w.RefreshIn.Seconds())
		p.PreviousValidSeconds = append(p.PreviousValidSeconds, w.PreviousValidFor.Seconds())
		var secretKeyID string
		var secret []byte
		if w.RefreshToken != "" {
			if secretKeyID, secret, err = s.ring.Seal([]byte(w.RefreshToken), secretAD(c.AppID)); err != nil {
				return nil, fmt.Errorf("write refresh token of %s: %w", c.AppID, err)
			}
		}
		p.SecretCiphertexts = append(p.SecretCiphertexts, secret)
		p.SecretKeyIds = append(p.SecretKeyIds, secretKeyID)
	}
	rows, err := s.q.CredentialWriteFenced(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("write %d credentials: %w", len(writes), err)
	}
	stored := make(map[string]dbsqlc.CredentialWriteFencedRow, len(rows))
	for _, r := range rows {
		stored[writeKey(r.AccountID, r.Kind, r.ClaimSeq)] = r
	}
	out := make([]WriteOutcome, len(writes))
	for i, cw := range writes {
		r, ok := stored[writeKey(cw.Claim.AccountID, cw.Claim.Kind, cw.Claim.ClaimSeq)]
		if !ok {
			out[i].Err = ErrFenced
			continue
		}
		out[i] = WriteOutcome{Generation: r.Generation, Replayed: r.Replayed}
	}
	return out, nil
}

func writeKey(accountID int64, kind string, claimSeq int64) string {
	return fmt.Sprintf("%d/%s/%d", accountID, kind, claimSeq)
}

// Reschedule ends a claim that produced no new value and sets the next refresh.
func (s *Store) Reschedule(ctx context.Context, c Claim, refreshIn time.Duration) error {
	n, err := s.q.CredentialReschedule(ctx, dbsqlc.CredentialRescheduleParams{
		AccountID: c.AccountID, Kind: c.Kind, ClaimSeq: c.ClaimSeq, RefreshInSeconds: refreshIn.Seconds(),
	})
	if err == nil && n == 0 {
		err = ErrClaimLost
	}
	if err != nil {
		return fmt.Errorf("reschedule %s of %s: %w", c.Kind, c.AppID, err)
	}
	return nil
}

// Failure is the outcome of a failed refresh.
type Failure struct {
	Code    int
	Message string // never a secret
	RetryIn time.Duration
	// AccountStatus, when set, is the account's new status ("failing" for a configuration
	// error WeChat reported) with Reason saying why.
	AccountStatus string
	Reason        string
	// OrphanHold is set when the call got no answer from WeChat, so a new value may have
	// been issued and lost, for a credential whose every fetch kills the previous value: no
	// fetch happens before replace_not_before plus OrphanHold (see ClaimRequest.OrphanHold).
	OrphanHold time.Duration
	// NotCalled is set when the claim ended before calling WeChat: the call its claim counted
	// in the quota ledger is given back.
	NotCalled bool
}

// RecordFailure ends a failed claim: it keeps the current value, stores the error and sets
// the retry, updates the account's status when the failure says so, and gives back the
// counted call of a claim that made none.
func (s *Store) RecordFailure(ctx context.Context, c Claim, f Failure) error {
	var lost bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		q := s.q.WithTx(tx)
		n, err := q.CredentialRecordFailure(ctx, dbsqlc.CredentialRecordFailureParams{
			AccountID: c.AccountID, Kind: c.Kind, ClaimSeq: c.ClaimSeq,
			RetryInSeconds: f.RetryIn.Seconds(), ErrorCode: int32(f.Code), ErrorMessage: f.Message,
			Uncertain: f.OrphanHold > 0, HoldSeconds: f.OrphanHold.Seconds(),
		})
		if err != nil {
			return err
		}
		lost = n == 0
		// The count this claim made for a call it never made is given back even when a later
		// claim took the credential over: that claim counted its own call.
		if f.NotCalled {
			if _, err := q.UpstreamCallsRefund(ctx, dbsqlc.UpstreamCallsRefundParams{
				AccountID: c.AccountID, Api: c.API, Day: c.QuotaDay,
			}); err != nil {
				return err
			}
			if c.HourlyScope != "" {
				if _, err := q.UpstreamCallsHourlyRefund(ctx, dbsqlc.UpstreamCallsHourlyRefundParams{
					Scope: c.HourlyScope, Api: c.API, WindowStart: c.HourlyWindow,
				}); err != nil {
					return err
				}
			}
		}
		if lost || f.AccountStatus == "" {
			return nil
		}
		if err := q.AccountSetStatus(ctx, dbsqlc.AccountSetStatusParams{ID: c.AccountID, Status: f.AccountStatus, StatusReason: f.Reason}); err != nil {
			return err
		}
		// API nodes answer requests for a failing account at once, from what they cached.
		return q.AccountNotify(ctx, c.AccountID)
	})
	if err == nil && lost {
		err = ErrClaimLost
	}
	if err != nil {
		return fmt.Errorf("record failure of %s of %s: %w", c.Kind, c.AppID, err)
	}
	return nil
}

// RequestRefresh makes a credential due now if generation is still its current one, no
// refresh is in flight (compare and refresh) and no request came within minInterval, and
// tells the API nodes, which stop promising a rotating value past the overlap from now. The
// fetch still waits for the holds that protect values nodes may promise (CredentialHold).
// It reports whether it did.
func (s *Store) RequestRefresh(ctx context.Context, accountID int64, kind string, generation int64, minInterval time.Duration) (bool, error) {
	return s.requestRefresh(ctx, accountID, kind, generation, minInterval, false)
}

// ReportDead is RequestRefresh for a value WeChat rejected: every older value is dead as
// well, so nothing holds the fetch back.
func (s *Store) ReportDead(ctx context.Context, accountID int64, kind string, generation int64, minInterval time.Duration) (bool, error) {
	return s.requestRefresh(ctx, accountID, kind, generation, minInterval, true)
}

func (s *Store) requestRefresh(ctx context.Context, accountID int64, kind string, generation int64, minInterval time.Duration, dead bool) (bool, error) {
	n, err := s.q.CredentialRequestRefresh(ctx, dbsqlc.CredentialRequestRefreshParams{AccountID: accountID, Kind: kind,
		Generation: generation, MinIntervalSeconds: minInterval.Seconds(), Dead: dead})
	if err != nil {
		return false, fmt.Errorf("request refresh of %s of account %d: %w", kind, accountID, err)
	}
	return n > 0, nil
}

// CountDue returns how many credentials of refreshable accounts are due: the backlog.
func (s *Store) CountDue(ctx context.Context) (int64, error) {
	n, err := s.q.CredentialCountDue(ctx)
	if err != nil {
		return 0, fmt.Errorf("count due credentials: %w", err)
	}
	return n, nil
}

// PruneQuotaLedger deletes the quota ledger's days more than keepDays before the current
// quota day, and the hourly ledger's windows older than keepDays, and returns how many rows
// went.
func (s *Store) PruneQuotaLedger(ctx context.Context, keepDays int) (int64, error) {
	n, err := s.q.UpstreamCallsPrune(ctx, int32(keepDays))
	if err != nil {
		return 0, fmt.Errorf("prune the quota ledger: %w", err)
	}
	h, err := s.q.UpstreamCallsHourlyPrune(ctx, int32(keepDays*24))
	if err != nil {
		return n, fmt.Errorf("prune the hourly ledger: %w", err)
	}
	return n + h, nil
}

// RecordCall counts in the quota ledger a call to api made outside a claim's own count (see
// UpstreamCallsRecord); dailyLimit is recorded when the day's row is new.
func (s *Store) RecordCall(ctx context.Context, tenantID, accountID int64, api string, dailyLimit int) error {
	if err := s.q.UpstreamCallsRecord(ctx, dbsqlc.UpstreamCallsRecordParams{
		TenantID: tenantID, AccountID: accountID, Api: api, DailyLimit: int32(dailyLimit)}); err != nil {
		return fmt.Errorf("count a call to %s of account %d: %w", api, accountID, err)
	}
	return nil
}
