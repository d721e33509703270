package wechatsim

import (
	"net/http"
)

// apiDomainIPs is what get_api_domain_ip answers: addresses of the shape WeChat
// returns. Nobody connects to them; the call exists to check a token cheaply.
var apiDomainIPs = []string{"101.89.47.18", "101.91.34.103", "101.226.212.27", "183.3.234.152"}

// DomainIPAnswer is WeChat's success answer of /cgi-bin/get_api_domain_ip.
type DomainIPAnswer struct {
	IPList []string `json:"ip_list"`
}

// handleDomainIP serves GET /cgi-bin/get_api_domain_ip, the "use" endpoint:
// tests call it with a token to learn what WeChat would say about that token
// at this instant (0, 40001, 41001 or 42001).
func (s *Simulator) handleDomainIP(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiDomainIP)
	if _, ok := c.useToken(http.MethodGet, false); !ok {
		return
	}
	c.succeed(DomainIPAnswer{IPList: apiDomainIPs})
}

// QuotaAnswer is WeChat's success answer of /cgi-bin/openapi/quota/get.
type QuotaAnswer struct {
	ErrCode int        `json:"errcode"`
	ErrMsg  string     `json:"errmsg"`
	Quota   QuotaState `json:"quota"`
}

// QuotaState is one API's daily quota for one appid.
type QuotaState struct {
	DailyLimit int `json:"daily_limit"`
	Used       int `json:"used"`
	Remain     int `json:"remain"`
}

// quotaPaths maps the cgi_path of quota/get to the APIs that have a quota.
var quotaPaths = map[string]api{
	pathToken:       apiToken,
	pathStableToken: apiStableToken,
	pathGetTicket:   apiGetTicket,
}

// handleQuotaGet serves POST /cgi-bin/openapi/quota/get: the authoritative
// limit and today's use of one API for the token's appid.
func (s *Simulator) handleQuotaGet(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiQuotaGet)
	rec, ok := c.useToken(http.MethodPost, false)
	if !ok {
		return
	}
	var req struct {
		CGIPath string `json:"cgi_path"`
	}
	if err := decodeJSONBody(w, r, &req); err != nil {
		c.fail(CodeDataFormat)
		return
	}
	x, known := quotaPaths[req.CGIPath]
	if !known {
		c.fail(CodeCGIPathNotFound)
		return
	}
	a := rec.acct
	a.mu.Lock()
	a.rollDay(s.now())
	q := QuotaState{DailyLimit: a.quotas[x], Used: a.used[x]}
	a.mu.Unlock()
	q.Remain = max(0, q.DailyLimit-q.Used)

	c.succeed(QuotaAnswer{ErrCode: 0, ErrMsg: "ok", Quota: q})
}

// handleClearQuota serves POST /cgi-bin/clear_quota?access_token=… with
// {"appid"}. The appid must be the token's own.
func (s *Simulator) handleClearQuota(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiClearQuota)
	rec, ok := c.useToken(http.MethodPost, false)
	if !ok {
		return
	}
	var req struct {
		AppID string `json:"appid"`
	}
	if err := decodeJSONBody(w, r, &req); err != nil {
		c.fail(CodeDataFormat)
		return
	}
	switch {
	case req.AppID == "":
		c.fail(CodeMissingAppID)
		return
	case req.AppID != rec.acct.appid:
		c.fail(CodeInvalidAppID)
		return
	}
	s.clearQuota(c, rec.acct)
}

// handleClearQuotaV2 serves POST /cgi-bin/clear_quota/v2 with appid and
// appsecret, given as query, form or JSON.
func (s *Simulator) handleClearQuotaV2(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiClearQuota)
	vals, err := formOrJSON(w, r)
	appid, secret := vals.Get("appid"), vals.Get("appsecret")
	c.attribute(appid)
	if !c.requireMethod(http.MethodPost) {
		return
	}
	switch {
	case err != nil:
		c.fail(CodeDataFormat)
		return
	case appid == "":
		c.fail(CodeMissingAppID)
		return
	case secret == "":
		c.fail(CodeMissingSecret)
		return
	case c.acct == nil:
		c.fail(CodeInvalidAppID)
		return
	}
	a := c.acct
	a.mu.Lock()
	good := secretMatches(a.secret, secret)
	a.mu.Unlock()
	if !good {
		c.fail(CodeInvalidSecret)
		return
	}
	s.clearQuota(c, a)
}

// clearQuota resets today's quota counters of a (token, stable_token,
// getticket), within ClearQuotaMonthlyLimit resets per quota month. The
// stable_token force limit is a separate rule and is not reset.
func (s *Simulator) clearQuota(c *call, a *account) {
	now := s.now()
	a.mu.Lock()
	a.rollMonth(now)
	if a.clears >= ClearQuotaMonthlyLimit {
		a.mu.Unlock()
		c.fail(CodeClearQuotaLimit)
		return
	}
	a.clears++
	a.rollDay(now)
	a.used = [numQuotaAPIs]int{}
	a.mu.Unlock()
	c.succeed(okEnvelope)
}
