package wechatsim

import (
	"net/http"
	"time"
)

// Ticket types accepted by getticket.
const (
	TicketJSAPI  = "jsapi"
	TicketWxCard = "wx_card"
)

// ticketType indexes the per-type ticket state of an account.
type ticketType int

const (
	ticketJSAPI ticketType = iota
	ticketWxCard
	numTicketTypes
)

var ticketTypeNames = [numTicketTypes]string{ticketJSAPI: TicketJSAPI, ticketWxCard: TicketWxCard}

// ticketTypeByName maps getticket's type parameter to a ticket type.
func ticketTypeByName(name string) (ticketType, bool) {
	for t, n := range ticketTypeNames {
		if n == name {
			return ticketType(t), true
		}
	}
	return 0, false
}

// TicketAnswer is WeChat's success answer of /cgi-bin/ticket/getticket.
type TicketAnswer struct {
	ErrCode   int    `json:"errcode"`
	ErrMsg    string `json:"errmsg"`
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"`
}

// ticketRecord is one issued ticket. Tickets are not in the token index:
// nothing accepts a ticket as an access token. Its life is guarded by the
// account's mu.
type ticketRecord struct {
	value string
	typ   ticketType
	life
}

// handleGetTicket serves GET /cgi-bin/ticket/getticket. Each successful call
// issues a new ticket of the requested type, valid for the token lifetime,
// and supersedes the previous ticket of that type by the rules of classic
// tokens (overlap, ClassicSurvivors). WeChat says nothing of how tickets
// overlap; treating them like the classic token they resemble is the
// simulator's assumption.
func (s *Simulator) handleGetTicket(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiGetTicket)
	rec, ok := c.useToken(http.MethodGet, true)
	if !ok {
		return
	}
	typ, ok := ticketTypeByName(r.URL.Query().Get("type"))
	if !ok {
		c.fail(CodeInvalidArgs)
		return
	}
	a := rec.acct
	now := s.now()
	a.mu.Lock()
	a.rollDay(now)
	if c.quotaExhausted() || a.overQuota(apiGetTicket) {
		a.mu.Unlock()
		c.fail(CodeQuotaExceeded)
		return
	}
	// Served calls count against the quota; see handleToken.
	a.used[apiGetTicket]++
	t := s.issueTicketLocked(c.wd, a, typ, now)
	a.mu.Unlock()
	a.stats.ticketIssued(ticketTypeNames[typ])

	c.deliver(TicketAnswer{
		ErrCode:   0,
		ErrMsg:    "ok",
		Ticket:    t.value,
		ExpiresIn: seconds(s.cfg.TokenTTL),
	})
}

// issueTicketLocked creates a ticket of type typ for a, superseding the
// previous ones of that type. Callers hold a.mu.
func (s *Simulator) issueTicketLocked(wd *world, a *account, typ ticketType, now time.Time) *ticketRecord {
	a.tickets[typ] = retire(a.tickets[typ], now, s.cfg.Overlap, s.cfg.ClassicSurvivors)
	t := &ticketRecord{value: newSecretString(ticketBytes), typ: typ, life: newLife(now, s.cfg.TokenTTL)}
	a.tickets[typ] = append(a.tickets[typ], t)
	a.ticketHistory = append(a.ticketHistory, t)
	a.everTicket[typ] = true
	a.forgetOld(wd, now)
	return t
}
