package wechatsim

import (
	"maps"
	"slices"
	"sync"
	"time"
)

// Stats is what the simulator saw, as GET /sim/stats returns it. Tests in
// other packages decode it to assert on what wxhub did upstream.
type Stats struct {
	// At is the simulator clock when the stats were taken.
	At time.Time `json:"at"`
	// Accounts has one entry per appid (only the requested one when filtered).
	Accounts map[string]AccountStats `json:"accounts"`
	// Totals covers every account and the unattributed calls, filtered or not.
	Totals Totals `json:"totals"`
}

// Counters are the counts kept per appid and in total.
//
// A call is counted under its API whatever the answer, including refusals for
// quota, bad secrets and injected faults. Quota (see AccountStats.QuotaUsed)
// is a different number: by default only served calls count against it.
//
// A "use" is any request that presents an access token for checking:
// get_api_domain_ip, getticket, quota_get and clear_quota, and the component
// APIs with their component_access_token. It is accepted when the token was
// live at that instant and rejected otherwise, with the errcode given (40001,
// 41001 or 42001; 61014 or 61015 for a token of the wrong kind).
type Counters struct {
	// Calls counts requests per API name (APIToken …); every name is present.
	Calls map[string]int64 `json:"calls"`
	// Errors counts answers with a non-zero errcode, per API name and errcode.
	Errors map[string]map[int]int64 `json:"errors"`
	// Dropped counts connections closed by the drop fault.
	Dropped int64 `json:"dropped"`
	// AnswersLost counts calls that issued a credential whose answer the
	// reset-after-issue fault then withheld; those credentials are live.
	AnswersLost int64 `json:"answers_lost"`
	// TokensIssued counts new access tokens; a stable_token call that returns
	// the current token issues nothing.
	TokensIssued int64 `json:"tokens_issued"`
	// TokensIssuedByKind splits TokensIssued into TokenKindClassic and TokenKindStable.
	TokensIssuedByKind map[string]int64 `json:"tokens_issued_by_kind"`
	// TicketsIssued counts tickets per type (jsapi, wx_card, and WeCom's
	// TicketWeComCorp and TicketAgentConfig, counted for the app whose token
	// fetched them).
	TicketsIssued map[string]int64 `json:"tickets_issued"`
	// ForcedRefreshes counts stable_token forces that did refresh.
	ForcedRefreshes int64 `json:"forced_refreshes"`
	// UsesAccepted counts uses with a live token.
	UsesAccepted int64 `json:"uses_accepted"`
	// UsesRejected counts failed uses per errcode.
	UsesRejected map[int]int64 `json:"uses_rejected"`
	// JSSDKAccepted counts JS-SDK signatures that /sim/verify-jssdk found
	// made with a live jsapi ticket.
	JSSDKAccepted int64 `json:"jssdk_accepted"`
	// JSSDKRejected counts the signatures it refused, for any reason.
	JSSDKRejected int64 `json:"jssdk_rejected"`
	// Pushes counts a component's pushes to its callback URL per InfoType
	// (component_verify_ticket, authorized, updateauthorized, unauthorized),
	// delivered or not.
	Pushes map[string]int64 `json:"pushes"`
	// PushFailures counts the pushes not answered with HTTP 200 and the
	// plain text "success", including those that got no answer at all.
	PushFailures int64 `json:"push_failures"`
}

// AccountStats is what the simulator saw for one appid.
type AccountStats struct {
	// Kind is the account's kind (KindOfficialAccount …).
	Kind string `json:"kind"`
	Counters
	// TokenIssueTimes lists when each new token (either kind) was issued,
	// oldest first, so a test can check that no refresh cycle issued two.
	TokenIssueTimes []time.Time `json:"token_issue_times"`
	// QuotaUsed is today's (quota day) count of calls per API with a quota:
	// the served ones, and the refused ones under Config.CountRefusedCalls;
	// clear_quota resets it.
	QuotaUsed map[string]int `json:"quota_used"`
	// WeCom is set for a wecom_app: its identity and its ticket limits' use.
	WeCom *WeComStats `json:"wecom,omitempty"`
}

// Totals sums the counters of every account plus the unattributed calls.
type Totals struct {
	// Accounts is the number of accounts.
	Accounts int `json:"accounts"`
	Counters
	// Unattributed counts calls that named no known appid: unknown or missing
	// appids and unknown or missing tokens. They are included in the totals.
	Unattributed Counters `json:"unattributed"`
}

// Stats returns the counters of appid, or of every account when appid is
// empty. Totals always cover everything.
func (s *Simulator) Stats(appid string) Stats {
	wd := s.world.Load()
	now := s.now()
	out := Stats{At: now, Accounts: map[string]AccountStats{}}
	out.Totals.Counters = newCounters()
	wd.accounts.Range(func(k, v any) bool {
		a := v.(*account)
		out.Totals.Accounts++
		snap := a.snapshot(now)
		snap.WeCom = s.wecomStats(a, now)
		out.Totals.add(snap.Counters)
		if appid == "" || appid == k.(string) {
			out.Accounts[k.(string)] = snap
		}
		return true
	})
	out.Totals.Unattributed, _ = wd.orphan.snapshot()
	out.Totals.add(out.Totals.Unattributed)
	return out
}

// snapshot copies an account's counters and today's quota use.
func (a *account) snapshot(now time.Time) AccountStats {
	a.mu.Lock()
	kind := a.kind
	used := a.used
	if calendarDay(now, a.zone) != a.day {
		used = [numQuotaAPIs]int{}
	}
	a.mu.Unlock()

	counts, times := a.stats.snapshot()
	out := AccountStats{Kind: kind, Counters: counts, TokenIssueTimes: times, QuotaUsed: make(map[string]int, numQuotaAPIs)}
	for x := api(0); x < api(numQuotaAPIs); x++ {
		out.QuotaUsed[x.String()] = used[x]
	}
	return out
}

func newCounters() Counters {
	c := Counters{
		Calls:              make(map[string]int64, numAPIs),
		Errors:             map[string]map[int]int64{},
		TokensIssuedByKind: make(map[string]int64, numTokenKinds),
		TicketsIssued:      map[string]int64{},
		UsesRejected:       map[int]int64{},
		Pushes:             map[string]int64{},
	}
	for _, name := range apiNames {
		c.Calls[name] = 0
	}
	for _, name := range tokenKindNames {
		c.TokensIssuedByKind[name] = 0
	}
	return c
}

// add accumulates o into t.
func (t *Totals) add(o Counters) {
	for k, v := range o.Calls {
		t.Calls[k] += v
	}
	for name, codes := range o.Errors {
		m := t.Errors[name]
		if m == nil {
			m = map[int]int64{}
			t.Errors[name] = m
		}
		for code, n := range codes {
			m[code] += n
		}
	}
	t.Dropped += o.Dropped
	t.AnswersLost += o.AnswersLost
	t.TokensIssued += o.TokensIssued
	for k, v := range o.TokensIssuedByKind {
		t.TokensIssuedByKind[k] += v
	}
	for k, v := range o.TicketsIssued {
		t.TicketsIssued[k] += v
	}
	t.ForcedRefreshes += o.ForcedRefreshes
	t.UsesAccepted += o.UsesAccepted
	for k, v := range o.UsesRejected {
		t.UsesRejected[k] += v
	}
	t.JSSDKAccepted += o.JSSDKAccepted
	t.JSSDKRejected += o.JSSDKRejected
	for k, v := range o.Pushes {
		t.Pushes[k] += v
	}
	t.PushFailures += o.PushFailures
}

// counters is the mutable form of Counters. It has its own lock, never held
// while taking another, so it can be updated with or without account.mu.
type counters struct {
	mu           sync.Mutex
	calls        [numAPIs]int64
	errors       [numAPIs]map[int]int64
	dropped      int64
	answersLost  int64
	tokens       [numTokenKinds]int64
	tokenTimes   []time.Time
	tickets      map[string]int64
	forced       int64
	usesAccepted int64
	usesRejected map[int]int64
	jssdkOK      int64
	jssdkBad     int64
	pushes       map[string]int64
	pushFailures int64
}

func (c *counters) call(x api) {
	c.mu.Lock()
	c.calls[x]++
	c.mu.Unlock()
}

func (c *counters) failed(x api, code int) {
	c.mu.Lock()
	if c.errors[x] == nil {
		c.errors[x] = map[int]int64{}
	}
	c.errors[x][code]++
	c.mu.Unlock()
}

func (c *counters) drop() {
	c.mu.Lock()
	c.dropped++
	c.mu.Unlock()
}

func (c *counters) answerLost() {
	c.mu.Lock()
	c.answersLost++
	c.mu.Unlock()
}

// jssdk counts one signature verification.
func (c *counters) jssdk(valid bool) {
	c.mu.Lock()
	if valid {
		c.jssdkOK++
	} else {
		c.jssdkBad++
	}
	c.mu.Unlock()
}

func (c *counters) tokenIssued(k tokenKind, at time.Time) {
	c.mu.Lock()
	c.tokens[k]++
	c.tokenTimes = append(c.tokenTimes, at)
	c.mu.Unlock()
}

func (c *counters) ticketIssued(typ string) {
	c.mu.Lock()
	if c.tickets == nil {
		c.tickets = map[string]int64{}
	}
	c.tickets[typ]++
	c.mu.Unlock()
}

func (c *counters) forcedRefresh() {
	c.mu.Lock()
	c.forced++
	c.mu.Unlock()
}

// pushed counts one push of infoType to a component's callback URL.
func (c *counters) pushed(infoType string, delivered bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pushes == nil {
		c.pushes = map[string]int64{}
	}
	c.pushes[infoType]++
	if !delivered {
		c.pushFailures++
	}
}

// use counts one token check; code 0 is an accepted use.
func (c *counters) use(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if code == 0 {
		c.usesAccepted++
		return
	}
	if c.usesRejected == nil {
		c.usesRejected = map[int]int64{}
	}
	c.usesRejected[code]++
}

// snapshot copies the counters and the token issue times under one lock, so
// TokensIssued always equals len(times).
func (c *counters) snapshot() (Counters, []time.Time) {
	out := newCounters()
	c.mu.Lock()
	defer c.mu.Unlock()
	for x := api(0); x < numAPIs; x++ {
		out.Calls[x.String()] = c.calls[x]
		if len(c.errors[x]) > 0 {
			out.Errors[x.String()] = maps.Clone(c.errors[x])
		}
	}
	out.Dropped = c.dropped
	out.AnswersLost = c.answersLost
	for k := tokenKind(0); k < numTokenKinds; k++ {
		out.TokensIssued += c.tokens[k]
		out.TokensIssuedByKind[tokenKindNames[k]] = c.tokens[k]
	}
	for k, v := range c.tickets {
		out.TicketsIssued[k] = v
	}
	out.ForcedRefreshes = c.forced
	out.UsesAccepted = c.usesAccepted
	for k, v := range c.usesRejected {
		out.UsesRejected[k] = v
	}
	out.JSSDKAccepted = c.jssdkOK
	out.JSSDKRejected = c.jssdkBad
	maps.Copy(out.Pushes, c.pushes)
	out.PushFailures = c.pushFailures
	times := slices.Clone(c.tokenTimes)
	if times == nil {
		times = []time.Time{}
	}
	return out, times
}
