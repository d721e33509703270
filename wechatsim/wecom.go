package wechatsim

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// WeComPrefix is the base path of the WeCom (企业微信) endpoints: a client
// pointed at the simulator's URL plus WeComPrefix sees qyapi.weixin.qq.com.
const WeComPrefix = "/qyapi"

// WeCom paths served under WeComPrefix. The use endpoint is pathDomainIP,
// which WeCom serves too.
const (
	pathWeComToken       = "/cgi-bin/gettoken"
	pathWeComJSAPITicket = "/cgi-bin/get_jsapi_ticket"
	pathWeComAgentTicket = "/cgi-bin/ticket/get"
)

// WeCom's documented ticket limits and the simulator's window for them.
const (
	// DefaultWeComCorpTicketLimit is how many corp jsapi tickets a corp may
	// fetch per window.
	DefaultWeComCorpTicketLimit = 400
	// DefaultWeComAgentTicketLimit is how many agent_config tickets an app may
	// fetch per window.
	DefaultWeComAgentTicketLimit = 100
	// DefaultWeComWindow is the window of the ticket limits: WeCom counts
	// "per hour", which the simulator reads as the clock hour.
	DefaultWeComWindow = time.Hour
)

// Ticket kinds of WeCom, as counted in Counters.TicketsIssued and chosen by
// JSSDKCheck.Ticket.
const (
	// TicketWeComCorp is the corp's jsapi ticket (get_jsapi_ticket), for wx.config.
	TicketWeComCorp = "wecom_jsapi"
	// TicketAgentConfig is an app's ticket (ticket/get?type=agent_config), for wx.agentConfig.
	TicketAgentConfig = "agent_config"
)

// Error codes of WeCom that WeChat's endpoints do not answer.
const (
	// CodeMissingCorpSecret is WeCom's answer to a gettoken without corpsecret.
	CodeMissingCorpSecret = 41004
	// CodeWeComTicketLimit answers a ticket call past its hourly limit. WeCom
	// documents the limits but not their errcode; 45009 ("api freq out of
	// limit" in WeCom's error list) is the simulator's choice.
	CodeWeComTicketLimit = CodeQuotaExceeded
)

// WeComConfig holds the settings of the WeCom endpoints. Zero fields take the
// defaults, which are WeCom's documented values or the strictest reading of
// them. Token lifetime, overlap and survivors are Config's.
type WeComConfig struct {
	// SameToken makes gettoken answer the current token while it is valid,
	// with its remaining lifetime, as WeCom documents. False (the default)
	// issues a new token on every call and supersedes the previous one like a
	// classic WeChat token (Config.Overlap, Config.ClassicSurvivors): wxhub
	// must survive either, and rotation is the one that punishes a mistake.
	SameToken bool
	// ExpiredCode is the errcode of a token used after its natural expiry:
	// CodeInvalidAccessToken (40014, the default; WeCom may say it) or
	// CodeTokenExpired (42001). A superseded or unknown token always answers
	// 40014, WeCom's "invalid access_token".
	ExpiredCode int
	// CorpTicketLimit is how many get_jsapi_ticket calls a corp gets per
	// Window, all its apps together; zero means DefaultWeComCorpTicketLimit.
	CorpTicketLimit int
	// AgentTicketLimit is how many agent_config ticket calls an app gets per
	// Window; zero means DefaultWeComAgentTicketLimit.
	AgentTicketLimit int
	// Window is the span of the ticket limits, aligned on multiples of it
	// since the zero time (the clock hour by default); tests shorten it.
	Window time.Duration
}

func (c WeComConfig) withDefaults() WeComConfig {
	if c.ExpiredCode == 0 {
		c.ExpiredCode = CodeInvalidAccessToken
	}
	if c.CorpTicketLimit <= 0 {
		c.CorpTicketLimit = DefaultWeComCorpTicketLimit
	}
	if c.AgentTicketLimit <= 0 {
		c.AgentTicketLimit = DefaultWeComAgentTicketLimit
	}
	if c.Window <= 0 {
		c.Window = DefaultWeComWindow
	}
	return c
}

// WeComTokenAnswer is WeCom's success answer of gettoken: unlike WeChat's
// token answer it has the errcode envelope.
type WeComTokenAnswer struct {
	ErrCode     int    `json:"errcode"`
	ErrMsg      string `json:"errmsg"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

// corp is a WeCom corp: its apps and its jsapi ticket, which belongs to the
// corp whichever app's token fetched it. mu guards everything but id; it is
// never held while taking an account's mu.
type corp struct {
	id string

	mu            sync.Mutex
	agents        []*account      // the corp's apps, in creation order
	tickets       []*ticketRecord // live corp tickets, oldest first; the last is current
	ticketHistory []*ticketRecord // every remembered corp ticket, oldest first
	window        time.Time       // the limit window ticketCalls belongs to
	ticketCalls   int             // get_jsapi_ticket calls served in window
}

// wecomApp is the WeCom state of an account of kind wecom_app. corp and
// agentID are fixed at creation; the rest is guarded by the account's mu.
type wecomApp struct {
	corp    *corp
	agentID int64

	tokens        []*tokenRecord  // live tokens, oldest first; the last is current
	tickets       []*ticketRecord // live agent_config tickets, oldest first
	ticketHistory []*ticketRecord // every remembered agent_config ticket, oldest first
	window        time.Time       // the limit window ticketCalls belongs to
	ticketCalls   int             // agent_config calls served in window
}

// checkWeComIdentity refuses an account whose kind and WeCom identity
// disagree, before anything is stored.
func checkWeComIdentity(in Account) error {
	switch {
	case in.Kind == KindWeComApp && (in.CorpID == "" || in.AgentID <= 0):
		return fmt.Errorf("%w: a wecom_app needs corpid and a positive agentid", ErrInvalidAccount)
	case in.Kind != "" && in.Kind != KindWeComApp && (in.CorpID != "" || in.AgentID != 0):
		return fmt.Errorf("%w: corpid and agentid are for kind wecom_app only", ErrInvalidAccount)
	}
	return nil
}

// joinCorpLocked makes a a WeCom app of in.CorpID when in says it is one, or
// checks that in does not change the corp or agent of an app that already
// is. Callers hold a.mu.
func (s *Simulator) joinCorpLocked(wd *world, a *account, in Account) error {
	kind := a.kind
	if in.Kind != "" {
		kind = in.Kind
	}
	if a.wecom != nil {
		if kind != KindWeComApp || (in.CorpID != "" && in.CorpID != a.wecom.corp.id) ||
			(in.AgentID != 0 && in.AgentID != a.wecom.agentID) {
			return fmt.Errorf("%w: %s is agent %d of corp %s; its kind, corp and agent cannot change",
				ErrInvalidAccount, a.appid, a.wecom.agentID, a.wecom.corp.id)
		}
		return nil
	}
	if kind != KindWeComApp {
		if in.CorpID != "" || in.AgentID != 0 {
			return fmt.Errorf("%w: corpid and agentid are for kind wecom_app only", ErrInvalidAccount)
		}
		return nil
	}
	if in.CorpID == "" || in.AgentID <= 0 {
		return fmt.Errorf("%w: a wecom_app needs corpid and a positive agentid", ErrInvalidAccount)
	}
	v, _ := wd.corps.LoadOrStore(in.CorpID, &corp{id: in.CorpID})
	co := v.(*corp)
	co.mu.Lock()
	defer co.mu.Unlock()
	for _, other := range co.agents {
		if other.wecom.agentID == in.AgentID {
			return fmt.Errorf("%w: agent %d of corp %s is %s already", ErrInvalidAccount, in.AgentID, in.CorpID, other.appid)
		}
	}
	a.wecom = &wecomApp{corp: co, agentID: in.AgentID}
	co.agents = append(co.agents, a)
	return nil
}

// wecomState returns a's WeCom state, nil unless a is a WeCom app. The
// pointer, its corp and agentID never change once set; the rest of it is
// guarded by a.mu.
func (a *account) wecomState() *wecomApp {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.wecom
}

// corp returns the corp of corpID, or nil if no app of it exists.
func (wd *world) corp(corpID string) *corp {
	if corpID == "" {
		return nil
	}
	v, ok := wd.corps.Load(corpID)
	if !ok {
		return nil
	}
	return v.(*corp)
}

// agentWithSecret returns the app of co whose corpsecret is secret, or nil.
func (co *corp) agentWithSecret(secret string) *account {
	co.mu.Lock()
	agents := append([]*account(nil), co.agents...)
	co.mu.Unlock()
	for _, a := range agents {
		a.mu.Lock()
		ok := secretMatches(a.secret, secret)
		a.mu.Unlock()
		if ok {
			return a
		}
	}
	return nil
}

// serveWeCom serves the WeCom endpoints under WeComPrefix and reports whether
// r was one of them.
func (s *Simulator) serveWeCom(w http.ResponseWriter, r *http.Request) bool {
	path, ok := strings.CutPrefix(r.URL.Path, WeComPrefix)
	if !ok {
		return false
	}
	switch path {
	case pathWeComToken:
		s.handleWeComToken(w, r)
	case pathWeComJSAPITicket:
		s.handleWeComCorpTicket(w, r)
	case pathWeComAgentTicket:
		s.handleWeComAgentTicket(w, r)
	case pathDomainIP:
		c := s.begin(w, r, apiWeComDomainIP)
		if _, ok := s.useWeComToken(c, false); ok {
			c.succeed(DomainIPAnswer{IPList: apiDomainIPs})
		}
	default:
		return false
	}
	return true
}

// handleWeComToken serves GET gettoken?corpid&corpsecret. The app is the one
// of the corp whose secret matches: every app has its own secret and token.
// By default every call issues a new token and supersedes the previous one of
// that app like a classic token; under WeComConfig.SameToken the current
// token is answered while it is valid.
func (s *Simulator) handleWeComToken(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiWeComToken)
	q := r.URL.Query()
	corpID, secret := q.Get("corpid"), q.Get("corpsecret")
	co := c.wd.corp(corpID)
	var a *account
	if co != nil && secret != "" {
		a = co.agentWithSecret(secret)
	}
	appid := ""
	if a != nil {
		appid = a.appid
	}
	c.attribute(appid)
	if !c.requireMethod(http.MethodGet) {
		return
	}
	switch {
	case corpID == "":
		c.fail(CodeMissingAppID)
		return
	case secret == "":
		c.fail(CodeMissingCorpSecret)
		return
	case co == nil:
		c.fail(CodeInvalidAppID)
		return
	case a == nil:
		c.fail(CodeInvalidCredential)
		return
	}
	if c.injectFaults() {
		return
	}
	if c.quotaExhausted() {
		c.fail(CodeQuotaExceeded)
		return
	}

	now := s.now()
	a.mu.Lock()
	if !secretMatches(a.secret, secret) {
		// The secret changed since the app was picked.
		a.mu.Unlock()
		c.fail(CodeInvalidCredential)
		return
	}
	app := a.wecom
	var t *tokenRecord
	if n := len(app.tokens); s.cfg.WeCom.SameToken && n > 0 && app.tokens[n-1].live(now) {
		t = app.tokens[n-1]
	} else {
		app.tokens = retire(app.tokens, now, s.cfg.Overlap, s.cfg.ClassicSurvivors)
		t = s.issueLocked(c.wd, a, kindWeCom, now)
		app.tokens = append(app.tokens, t)
	}
	expiresIn := seconds(t.expiresAt.Sub(now))
	a.mu.Unlock()

	c.deliver(WeComTokenAnswer{ErrMsg: "ok", AccessToken: t.value, ExpiresIn: expiresIn})
}

// useWeComToken is useToken for WeCom: only WeCom tokens are known here (and
// only here), a superseded or unknown one answers 40014, and an expired one
// WeComConfig.ExpiredCode. With faults, the credential faults are injected
// before the token is judged. It answers the call itself unless ok.
func (s *Simulator) useWeComToken(c *call, faults bool) (rec *tokenRecord, ok bool) {
	tok := c.r.URL.Query().Get("access_token")
	if tok != "" {
		if rec = c.wd.tokens.get(tok); rec != nil && rec.kind != kindWeCom {
			rec = nil
		}
	}
	appid := ""
	if rec != nil {
		appid = rec.acct.appid
	}
	c.attribute(appid)
	if !c.requireMethod(http.MethodGet) {
		return nil, false
	}
	switch {
	case tok == "":
		c.counters().use(CodeMissingAccessToken)
		c.fail(CodeMissingAccessToken)
		return nil, false
	case rec == nil:
		c.counters().use(CodeInvalidAccessToken)
		c.fail(CodeInvalidAccessToken)
		return nil, false
	}
	if faults && c.injectFaults() {
		return nil, false
	}
	a := rec.acct
	a.mu.Lock()
	code := rec.status(s.now())
	a.mu.Unlock()
	switch code {
	case CodeInvalidCredential:
		code = CodeInvalidAccessToken
	case CodeTokenExpired:
		code = s.cfg.WeCom.ExpiredCode
	}
	a.stats.use(code)
	if code != 0 {
		c.fail(code)
		return nil, false
	}
	return rec, true
}

// handleWeComCorpTicket serves GET get_jsapi_ticket?access_token: the corp's
// jsapi ticket, fetched with any of its apps' tokens. Each call issues a new
// ticket and supersedes the corp's previous one like a classic token, so two
// apps of one corp that each keep "their" corp ticket kill each other's. At
// most WeComConfig.CorpTicketLimit calls per corp and window are served.
func (s *Simulator) handleWeComCorpTicket(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiWeComJSAPITicket)
	rec, ok := s.useWeComToken(c, true)
	if !ok {
		return
	}
	a := rec.acct
	co := a.wecomState().corp
	now := s.now()
	co.mu.Lock()
	if start := now.Truncate(s.cfg.WeCom.Window); !start.Equal(co.window) {
		co.window, co.ticketCalls = start, 0
	}
	if c.quotaExhausted() || co.ticketCalls >= s.cfg.WeCom.CorpTicketLimit {
		co.mu.Unlock()
		c.fail(CodeWeComTicketLimit)
		return
	}
	co.ticketCalls++
	t := s.issueWeComTicket(&co.tickets, &co.ticketHistory, now)
	co.mu.Unlock()
	a.stats.ticketIssued(TicketWeComCorp)

	c.deliver(TicketAnswer{ErrMsg: "ok", Ticket: t.value, ExpiresIn: seconds(s.cfg.TokenTTL)})
}

// handleWeComAgentTicket serves GET ticket/get?access_token&type=agent_config:
// the app's own ticket, rotating like the corp ticket. At most
// WeComConfig.AgentTicketLimit calls per app and window are served.
func (s *Simulator) handleWeComAgentTicket(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiWeComAgentTicket)
	rec, ok := s.useWeComToken(c, true)
	if !ok {
		return
	}
	if r.URL.Query().Get("type") != TicketAgentConfig {
		c.fail(CodeInvalidArgs)
		return
	}
	a := rec.acct
	now := s.now()
	a.mu.Lock()
	app := a.wecom
	if start := now.Truncate(s.cfg.WeCom.Window); !start.Equal(app.window) {
		app.window, app.ticketCalls = start, 0
	}
	if c.quotaExhausted() || app.ticketCalls >= s.cfg.WeCom.AgentTicketLimit {
		a.mu.Unlock()
		c.fail(CodeWeComTicketLimit)
		return
	}
	app.ticketCalls++
	t := s.issueWeComTicket(&app.tickets, &app.ticketHistory, now)
	a.mu.Unlock()
	a.stats.ticketIssued(TicketAgentConfig)

	c.deliver(TicketAnswer{ErrMsg: "ok", Ticket: t.value, ExpiresIn: seconds(s.cfg.TokenTTL)})
}

// issueWeComTicket appends a new ticket to a live chain, superseding the
// previous ones by the classic-token rules, and remembers it for JS-SDK
// checks until forgetAfter past its death. Callers hold the chain's lock.
func (s *Simulator) issueWeComTicket(chain, history *[]*ticketRecord, now time.Time) *ticketRecord {
	*chain = retire(*chain, now, s.cfg.Overlap, s.cfg.ClassicSurvivors)
	t := &ticketRecord{value: newSecretString(ticketBytes), typ: ticketJSAPI, life: newLife(now, s.cfg.TokenTTL)}
	*chain = append(*chain, t)
	h := append(*history, t)
	for len(h) > 0 && now.Sub(h[0].deadline) >= forgetAfter {
		h[0] = nil
		h = h[1:]
	}
	*history = h
	return t
}

// verifyWeComJSSDK judges a JS-SDK signature of a WeCom app: made with the
// corp's jsapi ticket (r.Ticket empty or "jsapi", for wx.config) or the app's
// agent_config ticket (for wx.agentConfig), live at instant now.
func (s *Simulator) verifyWeComJSSDK(a *account, r JSSDKCheck, now time.Time) (bool, string) {
	var history []*ticketRecord
	switch r.Ticket {
	case "", TicketJSAPI:
		co := a.wecomState().corp
		co.mu.Lock()
		defer co.mu.Unlock()
		history = co.ticketHistory
	case TicketAgentConfig:
		a.mu.Lock()
		defer a.mu.Unlock()
		history = a.wecom.ticketHistory
	default:
		return false, JSSDKReasonNoMatch
	}
	if len(history) == 0 {
		return false, JSSDKReasonNoTicket
	}
	for i := len(history) - 1; i >= 0; i-- {
		t := history[i]
		if jssdkSignature(t.value, r.NonceStr, r.Timestamp, r.URL) != r.Signature {
			continue
		}
		switch t.status(now) {
		case CodeOK:
			return true, ""
		case CodeInvalidCredential:
			return false, JSSDKReasonTicketSuperseded
		default:
			return false, JSSDKReasonTicketExpired
		}
	}
	return false, JSSDKReasonNoMatch
}

// WeComStats is what the simulator counts of a WeCom app's ticket limits in
// the current window.
type WeComStats struct {
	CorpID  string `json:"corpid"`
	AgentID int64  `json:"agentid"`
	// WindowStart is the start of the current limit window.
	WindowStart time.Time `json:"window_start"`
	// CorpTicketCalls counts the corp's get_jsapi_ticket calls served in the
	// window, by all its apps.
	CorpTicketCalls int `json:"corp_ticket_calls"`
	// AgentTicketCalls counts this app's agent_config calls served in the window.
	AgentTicketCalls int `json:"agent_ticket_calls"`
}

// wecomStats reads the window counters of a's WeCom state, nil for other
// kinds. It takes a.mu, then the corp's mu, never both at once.
func (s *Simulator) wecomStats(a *account, now time.Time) *WeComStats {
	start := now.Truncate(s.cfg.WeCom.Window)
	a.mu.Lock()
	app := a.wecom
	if app == nil {
		a.mu.Unlock()
		return nil
	}
	out := &WeComStats{CorpID: app.corp.id, AgentID: app.agentID, WindowStart: start}
	if app.window.Equal(start) {
		out.AgentTicketCalls = app.ticketCalls
	}
	co := app.corp
	a.mu.Unlock()
	co.mu.Lock()
	if co.window.Equal(start) {
		out.CorpTicketCalls = co.ticketCalls
	}
	co.mu.Unlock()
	return out
}
