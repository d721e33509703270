package e2e

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"wxhub/wechatsim"
)

// History is everything the judge looks at: what the application servers saw, the faults
// and their windows, and what WeChat (the simulator) and wxhub's database counted before
// and after. Judge is a pure function of it, so crafted histories test the judge itself.
type History struct {
	// From and To bound the fault injection; After.At ends the checks.
	From, To time.Time
	// TokenTTL and Overlap are the simulator's settings.
	TokenTTL, Overlap time.Duration
	Accounts          []Account
	Faults            []FaultResult
	Uses              []Use
	// Before and After are the simulator's counters when the campaign began and at the end.
	Before, After wechatsim.Stats
	// GenBefore and GenAfter are wxhub's generations per credential (appid and kind), read
	// after Before and before After, so every value they count was issued in between.
	GenBefore, GenAfter map[CredentialKey]int64
	// Stale lists the credentials that did not refresh after the campaign.
	Stale []string
}

// CredentialKey names one credential of one account.
type CredentialKey struct{ AppID, Kind string }

// window is a span of time; a zero end means "until now".
type window struct{ from, to time.Time }

func (w window) contains(t time.Time) bool {
	return !t.Before(w.from) && (w.to.IsZero() || t.Before(w.to))
}

// overlaps reports whether [from, to] meets the window.
func (w window) overlaps(from, to time.Time) bool {
	return !to.Before(w.from) && (w.to.IsZero() || from.Before(w.to))
}

func within(ws []window, t time.Time) bool {
	return slices.ContainsFunc(ws, func(w window) bool { return w.contains(t) })
}

// Verdict is the campaign's outcome: the numbers of the final table and the violations.
type Verdict struct {
	// Outcomes counts the application servers' requests by outcome.
	Outcomes map[Outcome]int
	// Held counts uses made late, at a random moment before the expires_at wxhub gave.
	Held int
	// Unavailable503 counts 503s while PostgreSQL and WeChat were up; Unreachable those to a
	// node that was not being restarted.
	Unavailable503, Unreachable int
	// TokensIssued counts new access tokens in the campaign, ScheduledCycles the refresh
	// cycles its length allows (per account, by the schedule), Excused the second tokens
	// within a cycle that a fault explains for that very account.
	TokensIssued    int
	ScheduledCycles float64
	Excused         int
	TokenCalls      int64
	Violations      []string
}

// Failed reports whether any promise was broken.
func (v Verdict) Failed() bool { return len(v.Violations) > 0 }

func (v *Verdict) violate(format string, args ...any) {
	v.Violations = append(v.Violations, fmt.Sprintf(format, args...))
}

// minCycle is the shortest time between two scheduled refreshes of an account's token:
// classic tokens are refreshed at 75 to 85% of their lifetime, stable tokens at the start of
// WeChat's rotation window (the last overlap of their life) or just after.
func (h History) minCycle(a Account) time.Duration {
	if a.TokenMode == "classic" {
		return h.TokenTTL * 3 / 4
	}
	return h.TokenTTL - h.Overlap
}

// Judge compares what the application servers and WeChat saw with wxhub's promises:
//   - a credential WeChat rejected while wxhub still promised it (answered before the
//     expires_at wxhub gave), whatever fault was running;
//   - a 503 from a request that did not overlap an outage of PostgreSQL or WeChat; a node
//     unreachable outside its own restart; any other unexpected answer;
//   - a second new token for an account within half a lifetime, or more new tokens than its
//     schedule allows, unless a fault explains it for that account at that time;
//   - more generations stored than values WeChat issued (a value stored twice);
//   - a 45009, a fault that did not recover or did not bite, a credential that stopped
//     refreshing.
func Judge(h History) Verdict {
	v := Verdict{Outcomes: map[Outcome]int{}}
	var outages []window
	restartOf := map[int][]window{}
	var down503, unreachable []string // samples, for the post-mortem
	for _, r := range h.Faults {
		if r.PostgresDown || r.WeChatDown {
			outages = append(outages, window{r.Start, r.Healed})
		}
		if r.NodeDown >= 0 {
			restartOf[r.NodeDown] = append(restartOf[r.NodeDown], window{r.Start, r.end()})
		}
	}
	for _, u := range h.Uses {
		o := u.Outcome()
		v.Outcomes[o]++
		if u.Held {
			v.Held++
		}
		switch o {
		case Rejected:
			v.violate("%s: %s handed out %s generation %d of %s until %s; WeChat rejected it (%s) at %s%s (last fault: %s)",
				u.Asked.Format("15:04:05.000"), nodeName(u.Node), u.Request, u.Generation, u.AppID,
				u.ExpiresAt.Format("15:04:05.000"), u.rejection(), u.UseAnswered.Format("15:04:05.000"), heldNote(u),
				lastFaultBefore(h.Faults, u.UseAnswered))
		case Unavailable:
			if !slices.ContainsFunc(outages, func(w window) bool { return w.overlaps(u.Asked, u.Answered) }) {
				v.Unavailable503++
				down503 = sample(down503, u, h.Faults)
			}
			if u.Odd != "" {
				v.violate("%s", u.Odd)
			}
		case Unreachable:
			if !slices.ContainsFunc(restartOf[u.Node], func(w window) bool { return w.overlaps(u.Asked, u.Answered) }) {
				v.Unreachable++
				unreachable = sample(unreachable, u, h.Faults)
			}
		case OtherStatus:
			v.violate("unexpected answer: %s", u.Odd)
		}
	}
	if v.Unavailable503 > 0 {
		v.violate("%d requests answered 503 while PostgreSQL and WeChat were up, e.g. %s", v.Unavailable503, strings.Join(down503, "; "))
	}
	if v.Unreachable > 0 {
		v.violate("%d requests found a node unreachable outside its restart, e.g. %s", v.Unreachable, strings.Join(unreachable, "; "))
	}
	h.judgeTokens(&v)
	h.judgeGenerations(&v)
	for _, r := range h.Faults {
		if r.RecoveryErr != nil {
			v.violate("%s: %v", r.Name, r.RecoveryErr)
		}
	}
	if len(h.Stale) > 0 {
		v.violate("%d credentials did not refresh after the campaign, e.g. %s",
			len(h.Stale), strings.Join(h.Stale[:min(3, len(h.Stale))], "; "))
	}
	return v
}

// excused reports whether a fault explains a new token of appid at t.
func (h History) excused(appid string, t time.Time) bool {
	return slices.ContainsFunc(h.Faults, func(r FaultResult) bool {
		return r.Excused[appid] && (window{r.Start, r.end().Add(time.Second)}).contains(t)
	})
}

// judgeTokens counts each account's new tokens against its schedule.
func (h History) judgeTokens(v *Verdict) {
	span := h.After.At.Sub(h.From)
	for _, a := range h.Accounts {
		s, ok := h.After.Accounts[a.AppID]
		if !ok {
			v.violate("the simulator has no stats for %s", a.AppID)
			continue
		}
		was := h.Before.Accounts[a.AppID]
		v.TokenCalls += s.Calls[wechatsim.APIToken] + s.Calls[wechatsim.APIStableToken] -
			was.Calls[wechatsim.APIToken] - was.Calls[wechatsim.APIStableToken]
		cycle := h.minCycle(a)
		v.ScheduledCycles += float64(span) / float64(cycle) / float64(len(h.Accounts))
		var issued, excused int
		for k, t := range s.TokenIssueTimes {
			if t.Before(h.From) || !t.Before(h.After.At) {
				continue
			}
			issued++
			if k == 0 || t.Sub(s.TokenIssueTimes[k-1]) >= h.TokenTTL/2 {
				continue
			}
			if h.excused(a.AppID, t) {
				excused++
				continue
			}
			v.violate("two new tokens in one cycle: %s (%s) at %s and %s, no fault explains it for this account",
				a.AppID, a.TokenMode, s.TokenIssueTimes[k-1].Format("15:04:05.000"), t.Format("15:04:05.000"))
		}
		v.TokensIssued += issued
		v.Excused += excused
		if allowed := int(span/cycle) + 1 + excused; issued > allowed {
			v.violate("%s (%s): %d new tokens in %s, its schedule allows %d (%d explained by faults)",
				a.AppID, a.TokenMode, issued, span.Round(time.Second), allowed, excused)
		}
		for api, codes := range s.Errors {
			if n := codes[wechatsim.CodeQuotaExceeded] - was.Errors[api][wechatsim.CodeQuotaExceeded]; n > 0 {
				v.violate("%s: %d calls to %s answered 45009", a.AppID, n, api)
			}
		}
	}
}

// judgeGenerations checks that wxhub stored each value WeChat issued at most once: the
// generations a credential advanced by are at most the values WeChat issued for it.
func (h History) judgeGenerations(v *Verdict) {
	for _, a := range h.Accounts {
		now, was := h.After.Accounts[a.AppID], h.Before.Accounts[a.AppID]
		issued := map[string]int64{
			"access_token": now.TokensIssued - was.TokensIssued,
			"jsapi_ticket": now.TicketsIssued[wechatsim.TicketJSAPI] - was.TicketsIssued[wechatsim.TicketJSAPI],
		}
		for kind, n := range issued {
			k := CredentialKey{a.AppID, kind}
			before, ok := h.GenBefore[k]
			if !ok {
				continue
			}
			if stored := h.GenAfter[k] - before; stored > n {
				v.violate("%s %s: %d generations stored but WeChat issued %d values: a value was stored twice", a.AppID, kind, stored, n)
			}
		}
	}
}

// sample adds a description of u to samples, up to five.
func sample(samples []string, u Use, faults []FaultResult) []string {
	if len(samples) >= 5 {
		return samples
	}
	return append(samples, fmt.Sprintf("%s for %s asked of %s at %s, answered at %s (last fault: %s)", u.Request, u.AppID,
		nodeName(u.Node), u.Asked.Format("15:04:05.000"), u.Answered.Format("15:04:05.000"), lastFaultBefore(faults, u.Asked)))
}

// lastFaultBefore names the fault injected last before t.
func lastFaultBefore(faults []FaultResult, t time.Time) string {
	name := "none"
	for _, r := range faults {
		if r.Start.Before(t) {
			name = r.Name
		}
	}
	return name
}

func heldNote(u Use) string {
	if u.Held {
		return fmt.Sprintf(", a held use sent %.1f s before expires_at", u.ExpiresAt.Sub(u.Used).Seconds())
	}
	return ""
}

func nodeName(i int) string { return fmt.Sprintf("node%d", i+1) }
