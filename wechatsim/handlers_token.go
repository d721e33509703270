package wechatsim

import (
	"net/http"
	"time"
)

// TokenAnswer is WeChat's success answer of /cgi-bin/token and
// /cgi-bin/stable_token. It has no errcode field.
type TokenAnswer struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

const grantClientCredential = "client_credential"

// handleToken serves GET /cgi-bin/token, the classic token: every successful
// call issues a new token. The previous one dies at min(its own expiry,
// now+overlap), and superseded tokens beyond Config.ClassicSurvivors die at
// once.
func (s *Simulator) handleToken(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiToken)
	q := r.URL.Query()
	appid, secret := q.Get("appid"), q.Get("secret")
	c.attribute(appid)
	if !c.requireMethod(http.MethodGet) {
		return
	}
	switch {
	case q.Get("grant_type") != grantClientCredential:
		c.fail(CodeInvalidGrantType)
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
	if c.injectFaults() {
		return
	}

	a := c.acct
	now := s.now()
	a.mu.Lock()
	if a.kind == KindComponent {
		a.mu.Unlock()
		c.fail(CodeUseComponentTokenAPI)
		return
	}
	if !secretMatches(a.secret, secret) {
		a.mu.Unlock()
		c.fail(CodeInvalidSecret)
		return
	}
	a.rollDay(now)
	if c.quotaExhausted() || a.overQuota(apiToken) {
		a.mu.Unlock()
		c.fail(CodeQuotaExceeded)
		return
	}
	// Served calls count against the quota here; refused ones only under
	// Config.CountRefusedCalls (see call.fail).
	a.used[apiToken]++
	a.classic = retire(a.classic, now, s.cfg.Overlap, s.cfg.ClassicSurvivors)
	t := s.issueLocked(c.wd, a, kindClassic, now)
	a.classic = append(a.classic, t)
	a.mu.Unlock()

	c.deliver(TokenAnswer{AccessToken: t.value, ExpiresIn: seconds(s.cfg.TokenTTL)})
}

// stableRequest is the JSON body of /cgi-bin/stable_token.
type stableRequest struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

// handleStableToken serves POST /cgi-bin/stable_token. Stable tokens live in
// state of their own: nothing here touches classic tokens, and the classic
// handler never touches stable ones.
func (s *Simulator) handleStableToken(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiStableToken)
	var req stableRequest
	var decodeErr error
	if r.Method == http.MethodPost {
		decodeErr = decodeJSONBody(w, r, &req)
	}
	c.attribute(req.AppID)
	if !c.requireMethod(http.MethodPost) {
		return
	}
	switch {
	case decodeErr != nil:
		c.fail(CodeDataFormat)
		return
	case req.GrantType != grantClientCredential:
		c.fail(CodeInvalidGrantType)
		return
	case req.AppID == "":
		c.fail(CodeMissingAppID)
		return
	case req.Secret == "":
		c.fail(CodeMissingSecret)
		return
	case c.acct == nil:
		c.fail(CodeInvalidAppID)
		return
	}
	if c.injectFaults() {
		return
	}

	a := c.acct
	now := s.now()
	a.mu.Lock()
	if a.kind == KindComponent {
		// Third-party platforms have their own token API.
		a.mu.Unlock()
		c.fail(CodeUseComponentTokenAPI)
		return
	}
	if !secretMatches(a.secret, req.Secret) {
		a.mu.Unlock()
		// stable_token answers a wrong secret with 40001, not 40125.
		c.fail(CodeInvalidCredential)
		return
	}
	a.rollDay(now)
	if c.quotaExhausted() || a.overQuota(apiStableToken) {
		a.mu.Unlock()
		c.fail(CodeQuotaExceeded)
		return
	}
	var t *tokenRecord
	if req.ForceRefresh {
		var ok bool
		if t, ok = s.forceStableLocked(c.wd, a, now); !ok {
			a.mu.Unlock()
			c.fail(CodeQuotaExceeded)
			return
		}
	} else {
		t = s.normalStableLocked(c.wd, a, now)
	}
	// Served calls count against the quota; see handleToken.
	a.used[apiStableToken]++
	expiresIn := seconds(t.expiresAt.Sub(now))
	a.mu.Unlock()

	c.deliver(TokenAnswer{AccessToken: t.value, ExpiresIn: expiresIn})
}

// normalStableLocked is stable_token without force: the current token while
// more than the overlap of its life remains, otherwise a new one. The old
// token is not superseded; it works until its own expiry, which is what makes
// normal mode safe to retry. Callers hold a.mu.
func (s *Simulator) normalStableLocked(wd *world, a *account, now time.Time) *tokenRecord {
	if n := len(a.stable); n > 0 {
		// The current stable token is never superseded (a force replaces the
		// whole list), so its deadline is its natural expiry.
		if cur := a.stable[n-1]; cur.expiresAt.Sub(now) > s.cfg.Overlap {
			return cur
		}
	}
	t := s.issueLocked(wd, a, kindStable, now)
	a.stable = append(liveOnly(a.stable, now), t)
	return t
}

// forceStableLocked is stable_token with force_refresh. It reports false when
// the daily force limit is used up (45009, nothing issued). A force sooner
// than ForceMinInterval after the previous force call does not refresh: it
// answers what normal mode would and does not count toward the limit, but it
// restarts the spacing, so hammering force never gets through. A refresh
// kills the older stable tokens at once, or after the overlap under
// Config.ForceGrace. Callers hold a.mu and have called rollDay.
func (s *Simulator) forceStableLocked(wd *world, a *account, now time.Time) (*tokenRecord, bool) {
	if s.cfg.ForceDailyLimit > 0 && a.forcesToday >= s.cfg.ForceDailyLimit {
		return nil, false
	}
	prev := a.lastForce
	a.lastForce = now
	if !prev.IsZero() && now.Sub(prev) < s.cfg.ForceMinInterval {
		return s.normalStableLocked(wd, a, now), true
	}
	var overlap time.Duration
	if s.cfg.ForceGrace {
		overlap = s.cfg.Overlap
	}
	for _, old := range a.stable {
		old.supersede(now, overlap)
	}
	t := s.issueLocked(wd, a, kindStable, now)
	clear(a.stable)
	a.stable = append(a.stable[:0], t)
	a.forcesToday++
	a.stats.forcedRefresh()
	return t, true
}
