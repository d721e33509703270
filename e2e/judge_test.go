package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/wechatsim"
)

// t0 is when the crafted campaigns begin.
var t0 = time.Date(2026, 12, 4, 8, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

// cleanHistory is a campaign that kept every promise: two accounts (classic wxa, stable
// wxb), one token each per cycle, one fault, uses that worked.
func cleanHistory() History {
	stats := func(atSec float64, tokensA, tokensB []time.Time, genTickets int64) wechatsim.Stats {
		return wechatsim.Stats{At: at(atSec), Accounts: map[string]wechatsim.AccountStats{
			"wxa": {Counters: wechatsim.Counters{TokensIssued: int64(len(tokensA)), TicketsIssued: map[string]int64{"jsapi": genTickets}}, TokenIssueTimes: tokensA},
			"wxb": {Counters: wechatsim.Counters{TokensIssued: int64(len(tokensB))}, TokenIssueTimes: tokensB},
		}}
	}
	return History{
		From: at(0), To: at(80), TokenTTL: 60 * time.Second, Overlap: 8 * time.Second,
		Accounts: []Account{{AppID: "wxa", TokenMode: "classic", Tickets: []string{"jsapi"}}, {AppID: "wxb", TokenMode: "stable"}},
		Faults: []FaultResult{{Fault: Fault{Name: "PostgreSQL stopped", PostgresDown: true},
			Start: at(20), Healed: at(24), Recovered: at(27), NodeDown: -1, Excused: map[string]bool{}}},
		Uses: []Use{
			{AppID: "wxa", Request: TokenRequest, Node: 0, Asked: at(1), Answered: at(1.01), Status: http.StatusOK,
				Generation: 3, ExpiresAt: at(6), Used: at(1.02), UseAnswered: at(1.03)},
			{AppID: "wxa", Request: TicketRequest, Node: 1, Asked: at(2), Answered: at(2.01), Status: http.StatusOK,
				Generation: 2, ExpiresAt: at(7), Held: true, Used: at(6.9), UseAnswered: at(6.91)},
		},
		Before:    stats(0, []time.Time{at(-30)}, []time.Time{at(-5)}, 4),
		After:     stats(100, []time.Time{at(-30), at(15), at(60)}, []time.Time{at(-5), at(47)}, 6),
		GenBefore: map[CredentialKey]int64{{"wxa", "access_token"}: 2, {"wxa", "jsapi_ticket"}: 4, {"wxb", "access_token"}: 7},
		GenAfter:  map[CredentialKey]int64{{"wxa", "access_token"}: 4, {"wxa", "jsapi_ticket"}: 6, {"wxb", "access_token"}: 8},
	}
}

func TestJudgeFailsEveryBrokenPromise(t *testing.T) {
	tests := []struct {
		name   string
		change func(h *History)
		want   string // a violation containing this; empty: none
	}{
		{"a campaign that kept its promises", func(*History) {}, ""},
		{"a held token rejected before its expires_at, during a fault", func(h *History) {
			h.Uses = append(h.Uses, Use{AppID: "wxa", Request: TokenRequest, Asked: at(20), Answered: at(20.01), Status: 200,
				Generation: 4, ExpiresAt: at(25), Held: true, Used: at(24.8), UseAnswered: at(24.81), ErrCode: 40001})
		}, "WeChat rejected it (errcode 40001)"},
		{"a token WeChat rejected only after the expires_at it came with", func(h *History) {
			h.Uses = append(h.Uses, Use{AppID: "wxa", Request: TokenRequest, Asked: at(30), Answered: at(30.01), Status: 200,
				Generation: 4, ExpiresAt: at(35), Held: true, Used: at(34.9), UseAnswered: at(36.4), ErrCode: 40001})
		}, ""},
		{"a JS-SDK config that does not verify", func(h *History) {
			h.Uses = append(h.Uses, Use{AppID: "wxa", Request: JSSDKRequest, Asked: at(30), Answered: at(30.01), Status: 200,
				Used: at(30.02), UseAnswered: at(30.03), ErrCode: -1, Reason: "made with a ticket that is no longer live"})
		}, "signature not valid"},
		{"an unexplained second token", func(h *History) {
			secondTokenOfB(h, 50)
		}, "two new tokens in one cycle: wxb"},
		{"a second token explained for that account", func(h *History) {
			secondTokenOfB(h, 50)
			killExcusing(h, "wxb")
		}, ""},
		{"a second token a fault explains for another account only", func(h *History) {
			secondTokenOfB(h, 50)
			killExcusing(h, "wxa")
		}, "two new tokens in one cycle: wxb"},
		{"a second token after the fault that explained it had ended", func(h *History) {
			secondTokenOfB(h, 70)
			killExcusing(h, "wxb")
		}, "two new tokens in one cycle: wxb"},
		{"more tokens than the schedule allows", func(h *History) {
			s := h.After.Accounts["wxa"]
			s.TokenIssueTimes = []time.Time{at(-30), at(1), at(32), at(63), at(94)}
			s.TokensIssued = 5
			h.After.Accounts["wxa"] = s
			h.GenAfter[CredentialKey{"wxa", "access_token"}] = 6
		}, "its schedule allows 3"},
		{"a 503 while PostgreSQL and WeChat were up", func(h *History) {
			h.Uses = append(h.Uses, Use{AppID: "wxb", Request: TokenRequest, Asked: at(30), Answered: at(35), Status: http.StatusServiceUnavailable})
		}, "1 requests answered 503"},
		{"a 503 to a request made while PostgreSQL was down", func(h *History) {
			h.Uses = append(h.Uses, Use{AppID: "wxb", Request: TokenRequest, Asked: at(23), Answered: at(28), Status: http.StatusServiceUnavailable})
		}, ""},
		{"a 503 after PostgreSQL was back, in the recovery", func(h *History) {
			h.Uses = append(h.Uses, Use{AppID: "wxb", Request: TokenRequest, Asked: at(25), Answered: at(26), Status: http.StatusServiceUnavailable})
		}, "1 requests answered 503"},
		{"a node unreachable outside its restart", func(h *History) {
			h.Faults = append(h.Faults, FaultResult{Fault: Fault{Name: "node 3 restarted"}, Start: at(40), Healed: at(41), Recovered: at(42), NodeDown: 2})
			h.Uses = append(h.Uses, Use{AppID: "wxb", Request: TokenRequest, Node: 1, Asked: at(40.5), Answered: at(40.6)})
		}, "1 requests found a node unreachable"},
		{"a node unreachable during its own restart", func(h *History) {
			h.Faults = append(h.Faults, FaultResult{Fault: Fault{Name: "node 3 restarted"}, Start: at(40), Healed: at(41), Recovered: at(42), NodeDown: 2})
			h.Uses = append(h.Uses, Use{AppID: "wxb", Request: TokenRequest, Node: 2, Asked: at(40.5), Answered: at(40.6)})
		}, ""},
		{"an answer the API does not document", func(h *History) {
			h.Uses = append(h.Uses, Use{AppID: "wxb", Request: TokenRequest, Asked: at(30), Answered: at(30.1), Status: 500, Odd: "500 internal error"})
		}, "unexpected answer: 500 internal error"},
		{"a value stored twice", func(h *History) {
			h.GenAfter[CredentialKey{"wxa", "access_token"}] = 5
		}, "wxa access_token: 3 generations stored but WeChat issued 2 values"},
		{"a ticket stored twice", func(h *History) {
			h.GenAfter[CredentialKey{"wxa", "jsapi_ticket"}] = 7
		}, "wxa jsapi_ticket: 3 generations stored but WeChat issued 2 values"},
		{"a call over the daily quota", func(h *History) {
			s := h.After.Accounts["wxb"]
			s.Errors = map[string]map[int]int64{"stable_token": {45009: 1}}
			h.After.Accounts["wxb"] = s
		}, "wxb: 1 calls to stable_token answered 45009"},
		{"a fault that did not bite", func(h *History) {
			h.Faults[0].RecoveryErr = errDidNotBite
		}, "the fault did not bite"},
		{"a credential that stopped refreshing", func(h *History) {
			h.Stale = []string{"wxa access_token still at generation 4"}
		}, "1 credentials did not refresh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := cleanHistory()
			tt.change(&h)
			v := Judge(h)
			if tt.want == "" {
				require.Empty(t, v.Violations)
				return
			}
			require.True(t, v.Failed())
			require.True(t, containsSubstring(v.Violations, tt.want), "want a violation with %q, got %q", tt.want, v.Violations)
		})
	}
}

// secondTokenOfB has WeChat issue wxb another token at the given second of the campaign
// (its scheduled one came at 47 s).
func secondTokenOfB(h *History, sec float64) {
	s := h.After.Accounts["wxb"]
	s.TokenIssueTimes = append(s.TokenIssueTimes, at(sec))
	s.TokensIssued++
	h.After.Accounts["wxb"] = s
}

// killExcusing adds a worker kill from 45 s to 49.5 s that explains a second token of appid.
func killExcusing(h *History, appid string) {
	h.Faults = append(h.Faults, FaultResult{Fault: Fault{Name: "kill -9"}, Start: at(45), Healed: at(47), Recovered: at(49.5),
		NodeDown: -1, Excused: map[string]bool{appid: true}})
}

func containsSubstring(ss []string, sub string) bool {
	for _, s := range ss {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestJudgeCountsOutcomes(t *testing.T) {
	v := Judge(cleanHistory())
	require.Equal(t, 2, v.Outcomes[Accepted])
	require.Equal(t, 1, v.Held)
	require.Equal(t, 3, v.TokensIssued, "tokens issued from the campaign's start until the end")
}
