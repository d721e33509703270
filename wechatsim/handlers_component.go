package wechatsim

import (
	"net/http"
	"time"
)

// The third-party platform's WeChat paths.
const (
	pathComponentToken    = "/cgi-bin/component/api_component_token"
	pathCreatePreAuthCode = "/cgi-bin/component/api_create_preauthcode"
	pathQueryAuth         = "/cgi-bin/component/api_query_auth"
	pathAuthorizerToken   = "/cgi-bin/component/api_authorizer_token"
	pathGetAuthorizerInfo = "/cgi-bin/component/api_get_authorizer_info"
)

// ComponentTokenAnswer is WeChat's success answer of api_component_token.
type ComponentTokenAnswer struct {
	ComponentAccessToken string `json:"component_access_token"`
	ExpiresIn            int    `json:"expires_in"`
}

// componentTokenRequest is the JSON body of api_component_token.
type componentTokenRequest struct {
	ComponentAppID        string `json:"component_appid"`
	ComponentAppSecret    string `json:"component_appsecret"`
	ComponentVerifyTicket string `json:"component_verify_ticket"`
}

// handleComponentToken serves POST /cgi-bin/component/api_component_token.
// It needs the component's secret and a verify ticket pushed within
// TicketTTL (61005 for an older one, 61006 for one never pushed to this
// component). Like the classic token, every success issues a new token and
// the previous one dies after the overlap, with ClassicSurvivors superseded
// tokens alive at most.
func (s *Simulator) handleComponentToken(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiComponentToken)
	var req componentTokenRequest
	var decodeErr error
	if r.Method == http.MethodPost {
		decodeErr = decodeJSONBody(w, r, &req)
	}
	c.attribute(req.ComponentAppID)
	if !c.requireMethod(http.MethodPost) {
		return
	}
	switch {
	case decodeErr != nil:
		c.fail(CodeDataFormat)
		return
	case req.ComponentAppID == "":
		c.fail(CodeMissingAppID)
		return
	case req.ComponentAppSecret == "":
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
	code := 0
	switch {
	case a.kind != KindComponent || a.comp == nil:
		code = CodeInvalidComponent
	case !secretMatches(a.secret, req.ComponentAppSecret):
		code = CodeInvalidSecret
	case c.quotaExhausted():
		code = CodeQuotaExceeded
	default:
		code = a.comp.ticketStatusLocked(req.ComponentVerifyTicket, now, s.cfg.Component.TicketTTL)
	}
	if code != 0 {
		a.mu.Unlock()
		c.fail(code)
		return
	}
	cs := a.comp
	cs.tokens = retire(cs.tokens, now, s.cfg.Overlap, s.cfg.ClassicSurvivors)
	t := s.issueLocked(c.wd, a, kindComponent, now)
	cs.tokens = append(cs.tokens, t)
	a.mu.Unlock()

	c.deliver(ComponentTokenAnswer{ComponentAccessToken: t.value, ExpiresIn: seconds(s.cfg.TokenTTL)})
}

// componentBody is the component_appid every component API's JSON body
// carries; the request types embed it.
type componentBody struct {
	ComponentAppID string `json:"component_appid"`
}

func (b *componentBody) componentAppID() string { return b.ComponentAppID }

// useComponentToken checks the component_access_token query parameter of a
// component API, decodes the JSON body into body and checks that its
// component_appid names the token's component. It attributes the call to
// that component, counts the token check as a use, and with faults injects
// the credential faults (for the APIs that issue something). It answers the
// call itself unless ok.
func (c *call) useComponentToken(body interface{ componentAppID() string }, faults bool) (a *account, ok bool) {
	tok := c.r.URL.Query().Get("component_access_token")
	var rec *tokenRecord
	if tok != "" {
		rec = c.wd.tokens.get(tok)
	}
	var decodeErr error
	if c.r.Method == http.MethodPost {
		decodeErr = decodeJSONBody(c.w, c.r, body)
	}
	appid := ""
	if rec != nil {
		appid = rec.acct.appid
	}
	c.attribute(appid)
	if !c.requireMethod(http.MethodPost) {
		return nil, false
	}
	code := 0
	switch {
	case tok == "":
		code = CodeMissingAccessToken
	case rec == nil:
		code = CodeInvalidCredential
	case rec.kind != kindComponent:
		code = CodeNeedsComponentToken
	}
	if code != 0 {
		c.counters().use(code)
		c.fail(code)
		return nil, false
	}
	if faults && c.injectFaults() {
		return nil, false
	}
	a = rec.acct
	a.mu.Lock()
	code = rec.status(c.s.now())
	a.mu.Unlock()
	a.stats.use(code)
	switch {
	case code != 0:
	case decodeErr != nil:
		code = CodeDataFormat
	case body.componentAppID() == "":
		code = CodeMissingAppID
	case body.componentAppID() != a.appid:
		code = CodeInvalidAppID
	}
	if code != 0 {
		c.fail(code)
		return nil, false
	}
	return a, true
}

// PreAuthCodeAnswer is WeChat's success answer of api_create_preauthcode.
type PreAuthCodeAnswer struct {
	PreAuthCode string `json:"pre_auth_code"`
	ExpiresIn   int    `json:"expires_in"`
}

// handleCreatePreAuthCode serves POST
// /cgi-bin/component/api_create_preauthcode: a pre_auth_code valid for
// PreAuthCodeTTL, which POST /sim/component/authorization may name.
func (s *Simulator) handleCreatePreAuthCode(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiCreatePreAuthCode)
	var req componentBody
	a, ok := c.useComponentToken(&req, true)
	if !ok {
		return
	}
	if c.quotaExhausted() {
		c.fail(CodeQuotaExceeded)
		return
	}
	now := s.now()
	ttl := s.cfg.Component.PreAuthCodeTTL
	code := "preauthcode@@@" + newSecretString(ticketBytes)
	a.mu.Lock()
	cs := a.comp
	for k, exp := range cs.preAuthCodes {
		if !now.Before(exp) {
			delete(cs.preAuthCodes, k)
		}
	}
	cs.preAuthCodes[code] = now.Add(ttl)
	a.mu.Unlock()

	c.deliver(PreAuthCodeAnswer{PreAuthCode: code, ExpiresIn: seconds(ttl)})
}

// FuncInfo is one permission set granted to the component, as in
// authorization_info.func_info.
type FuncInfo struct {
	FuncscopeCategory struct {
		ID int `json:"id"`
	} `json:"funcscope_category"`
}

// funcInfos turns permission set ids into func_info.
func funcInfos(ids []int) []FuncInfo {
	out := make([]FuncInfo, len(ids))
	for i, id := range ids {
		out[i].FuncscopeCategory.ID = id
	}
	return out
}

// AuthorizationInfo is the authorization_info of api_query_auth (with the
// access token) and of api_get_authorizer_info (without it).
type AuthorizationInfo struct {
	AuthorizerAppID        string     `json:"authorizer_appid"`
	AuthorizerAccessToken  string     `json:"authorizer_access_token,omitempty"`
	ExpiresIn              int        `json:"expires_in,omitempty"`
	AuthorizerRefreshToken string     `json:"authorizer_refresh_token"`
	FuncInfo               []FuncInfo `json:"func_info"`
}

// QueryAuthAnswer is WeChat's success answer of api_query_auth.
type QueryAuthAnswer struct {
	AuthorizationInfo AuthorizationInfo `json:"authorization_info"`
}

// handleQueryAuth serves POST /cgi-bin/component/api_query_auth: an
// authorization code from an authorized or updateauthorized event, used
// once before it expires, becomes the authorizer's first access token and
// refresh token. A used or unknown code is 61009, an expired one 61010.
func (s *Simulator) handleQueryAuth(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiQueryAuth)
	var req struct {
		componentBody
		AuthorizationCode string `json:"authorization_code"`
	}
	a, ok := c.useComponentToken(&req, true)
	if !ok {
		return
	}
	now := s.now()
	a.mu.Lock()
	cs := a.comp
	grant := cs.codes[req.AuthorizationCode]
	var auth *authorizer
	if grant != nil {
		auth = cs.auths[grant.authorizer]
	}
	code := 0
	switch {
	case grant == nil || grant.used || auth == nil || !auth.active:
		code = CodeAuthCodeInvalid
	case !now.Before(grant.expiresAt):
		code = CodeAuthCodeExpired
	case c.quotaExhausted():
		code = CodeQuotaExceeded
	}
	if code != 0 {
		a.mu.Unlock()
		c.fail(code)
		return
	}
	grant.used = true
	if auth.refreshToken == "" || !s.cfg.Component.KeepRefreshToken {
		auth.refreshToken = newRefreshToken()
	}
	t := s.issueAuthorizerTokenLocked(c.wd, auth, now)
	info := AuthorizationInfo{
		AuthorizerAppID:        grant.authorizer,
		AuthorizerAccessToken:  t.value,
		ExpiresIn:              seconds(s.cfg.TokenTTL),
		AuthorizerRefreshToken: auth.refreshToken,
		FuncInfo:               funcInfos(auth.funcInfo),
	}
	a.mu.Unlock()

	c.deliver(QueryAuthAnswer{AuthorizationInfo: info})
}

// issueAuthorizerTokenLocked issues a new authorizer access token for auth,
// superseding the previous ones by the classic rules. Callers hold the
// component account's mu; it takes the authorizer account's.
func (s *Simulator) issueAuthorizerTokenLocked(wd *world, auth *authorizer, now time.Time) *tokenRecord {
	m := auth.acct
	m.mu.Lock()
	defer m.mu.Unlock()
	auth.tokens = retire(auth.tokens, now, s.cfg.Overlap, s.cfg.ClassicSurvivors)
	t := s.issueLocked(wd, m, kindAuthorizer, now)
	auth.tokens = append(auth.tokens, t)
	return t
}

// newRefreshToken makes an authorizer refresh token.
func newRefreshToken() string { return "refreshtoken@@@" + newSecretString(ticketBytes) }

// AuthorizerTokenAnswer is WeChat's success answer of api_authorizer_token.
type AuthorizerTokenAnswer struct {
	AuthorizerAccessToken  string `json:"authorizer_access_token"`
	ExpiresIn              int    `json:"expires_in"`
	AuthorizerRefreshToken string `json:"authorizer_refresh_token"`
}

// handleAuthorizerToken serves POST /cgi-bin/component/api_authorizer_token:
// the authorization's current refresh token buys a new authorizer access
// token (the previous one dies after the overlap) and, unless
// KeepRefreshToken, a new refresh token that replaces the old one at once.
// A revoked (or never made) authorization is 61003; any other refresh token
// 61023.
func (s *Simulator) handleAuthorizerToken(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiAuthorizerToken)
	var req struct {
		componentBody
		AuthorizerAppID        string `json:"authorizer_appid"`
		AuthorizerRefreshToken string `json:"authorizer_refresh_token"`
	}
	a, ok := c.useComponentToken(&req, true)
	if !ok {
		return
	}
	now := s.now()
	a.mu.Lock()
	auth := a.comp.auths[req.AuthorizerAppID]
	code := 0
	switch {
	case req.AuthorizerAppID == "":
		code = CodeMissingAppID
	case auth == nil || !auth.active || auth.refreshToken == "":
		code = CodeNotAuthorized
	case !secretMatches(auth.refreshToken, req.AuthorizerRefreshToken):
		code = CodeRefreshTokenInvalid
	case c.quotaExhausted():
		code = CodeQuotaExceeded
	}
	if code != 0 {
		a.mu.Unlock()
		c.fail(code)
		return
	}
	if !s.cfg.Component.KeepRefreshToken {
		auth.refreshToken = newRefreshToken()
	}
	t := s.issueAuthorizerTokenLocked(c.wd, auth, now)
	ans := AuthorizerTokenAnswer{
		AuthorizerAccessToken:  t.value,
		ExpiresIn:              seconds(s.cfg.TokenTTL),
		AuthorizerRefreshToken: auth.refreshToken,
	}
	a.mu.Unlock()

	c.deliver(ans)
}

// IDInfo is WeChat's {"id": n} shape of service_type_info and
// verify_type_info.
type IDInfo struct {
	ID int `json:"id"`
}

// AuthorizerInfo is the base information of an authorizer account, as
// api_get_authorizer_info answers it.
type AuthorizerInfo struct {
	NickName string `json:"nick_name"`
	HeadImg  string `json:"head_img"`
	// ServiceTypeInfo is 0 subscription account, 1 upgraded subscription
	// account, 2 service account (mini programs: 0).
	ServiceTypeInfo IDInfo `json:"service_type_info"`
	// VerifyTypeInfo is -1 unverified, 0 WeChat-verified, and other values
	// for other verifications.
	VerifyTypeInfo IDInfo `json:"verify_type_info"`
	UserName       string `json:"user_name"`
	PrincipalName  string `json:"principal_name"`
	Alias          string `json:"alias"`
	QrcodeURL      string `json:"qrcode_url"`
}

// AuthorizerInfoAnswer is WeChat's success answer of api_get_authorizer_info.
type AuthorizerInfoAnswer struct {
	AuthorizerInfo    AuthorizerInfo    `json:"authorizer_info"`
	AuthorizationInfo AuthorizationInfo `json:"authorization_info"`
}

// handleGetAuthorizerInfo serves POST
// /cgi-bin/component/api_get_authorizer_info: the authorizer's base
// information and what it granted. A revoked authorization is 61003.
func (s *Simulator) handleGetAuthorizerInfo(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiGetAuthorizerInfo)
	var req struct {
		componentBody
		AuthorizerAppID string `json:"authorizer_appid"`
	}
	a, ok := c.useComponentToken(&req, false)
	if !ok {
		return
	}
	if req.AuthorizerAppID == "" {
		c.fail(CodeMissingAppID)
		return
	}
	a.mu.Lock()
	auth := a.comp.auths[req.AuthorizerAppID]
	if auth == nil || !auth.active {
		a.mu.Unlock()
		c.fail(CodeNotAuthorized)
		return
	}
	ans := AuthorizerInfoAnswer{
		AuthorizerInfo: auth.info,
		AuthorizationInfo: AuthorizationInfo{
			AuthorizerAppID:        req.AuthorizerAppID,
			AuthorizerRefreshToken: auth.refreshToken,
			FuncInfo:               funcInfos(auth.funcInfo),
		},
	}
	a.mu.Unlock()

	c.succeed(ans)
}
