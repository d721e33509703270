package wechatsim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"wxhub/wechat/callback"
)

// The actions of Authorization: what a merchant does in WeChat's
// authorization pages, and the event each pushes.
const (
	// ActionAuthorize authorizes the component (again): InfoType authorized,
	// with an authorization code.
	ActionAuthorize = "authorize"
	// ActionUpdateAuthorize changes the granted permission sets of an
	// authorization: InfoType updateauthorized, with an authorization code.
	ActionUpdateAuthorize = "updateauthorize"
	// ActionRevoke withdraws the authorization: InfoType unauthorized. The
	// authorizer's access tokens die at once (40001), its refresh token and
	// unused authorization codes stop working (61003, 61009).
	ActionRevoke = "revoke"
)

// DefaultFuncInfo are the permission set ids an authorization grants when
// the test names none: message management (1) and mini program management
// (18), two of WeChat's ids.
var DefaultFuncInfo = []int{1, 18}

// Authorization is a merchant's action on a component, as posted to
// /sim/component/authorization.
type Authorization struct {
	// ComponentAppID is the component account.
	ComponentAppID string `json:"component_appid"`
	// AuthorizerAppID is the merchant's appid. An unknown appid becomes an
	// account of kind authorizer; an existing account of any kind but
	// component may authorize.
	AuthorizerAppID string `json:"authorizer_appid"`
	// Action is ActionAuthorize, ActionUpdateAuthorize or ActionRevoke.
	Action string `json:"action"`
	// FuncInfo are the permission set ids granted (authorize and
	// updateauthorize); empty keeps the current ones, or DefaultFuncInfo.
	FuncInfo []int `json:"func_info,omitempty"`
	// PreAuthCode, when given, must be a live pre_auth_code of the
	// component from api_create_preauthcode; it is used up and echoed in
	// the event. Without it the simulator makes one up for the event.
	PreAuthCode string `json:"pre_auth_code,omitempty"`
	// Info is the base information api_get_authorizer_info answers: text
	// fields left empty keep the current values (made-up ones at first),
	// the two type ids are taken as given.
	Info *AuthorizerInfo `json:"authorizer_info,omitempty"`
}

// The errors of Authorize, wrapped with the details.
var (
	// ErrInvalidAuthorization is a malformed Authorization: a missing appid,
	// an unknown action, an authorizer that is a component, a pre_auth_code
	// that is unknown or expired.
	ErrInvalidAuthorization = errors.New("wechatsim: invalid authorization")
	// ErrNotAuthorized is updateauthorize or revoke without an active
	// authorization.
	ErrNotAuthorized = errors.New("wechatsim: not authorized")
)

// Authorize performs a merchant's action on a component and pushes the
// event to the component's callback URL (POST
// /sim/component/authorization). The state changes before the push, so the
// receiver can call api_query_auth with the code at once, and whether or not
// the push is delivered. It returns what was pushed, the authorization code
// included.
func (s *Simulator) Authorize(ctx context.Context, in Authorization) (Push, error) {
	if in.ComponentAppID == "" || in.AuthorizerAppID == "" {
		return Push{}, fmt.Errorf("%w: component_appid and authorizer_appid are required", ErrInvalidAuthorization)
	}
	var infoType string
	switch in.Action {
	case ActionAuthorize:
		infoType = callback.InfoTypeAuthorized
	case ActionUpdateAuthorize:
		infoType = callback.InfoTypeUpdateAuthorized
	case ActionRevoke:
		infoType = callback.InfoTypeUnauthorized
	default:
		return Push{}, fmt.Errorf("%w: action %q (want %s, %s or %s)", ErrInvalidAuthorization,
			in.Action, ActionAuthorize, ActionUpdateAuthorize, ActionRevoke)
	}
	wd := s.world.Load()
	a := wd.account(in.ComponentAppID)
	if a == nil {
		return Push{}, fmt.Errorf("authorize %s: %w", in.ComponentAppID, ErrUnknownComponent)
	}
	var m *account
	if in.Action == ActionAuthorize {
		var err error
		if m, err = s.merchant(wd, in.AuthorizerAppID); err != nil {
			return Push{}, err
		}
	}

	now := s.now()
	p := Push{AppID: in.ComponentAppID, InfoType: infoType, CreateTime: now.Unix(), AuthorizerAppID: in.AuthorizerAppID}
	a.mu.Lock()
	if a.kind != KindComponent || a.comp == nil {
		a.mu.Unlock()
		return Push{}, fmt.Errorf("authorize %s: %w", in.ComponentAppID, ErrUnknownComponent)
	}
	cs := a.comp
	var err error
	if in.Action == ActionRevoke {
		err = s.revokeLocked(cs, in.AuthorizerAppID, now)
	} else {
		err = s.grantLocked(cs, m, in, now, &p)
	}
	if err != nil {
		a.mu.Unlock()
		return Push{}, err
	}
	target, ok := cs.targetLocked()
	a.mu.Unlock()

	s.deliverPush(ctx, a, target, ok, &p)
	return p, nil
}

// merchant returns the account of an authorizer appid, creating it with
// kind authorizer if needed; a component can't be an authorizer.
func (s *Simulator) merchant(wd *world, appid string) (*account, error) {
	fresh := &account{appid: appid, kind: KindAuthorizer, quotas: defaultQuotas, zone: s.cfg.QuotaZone}
	v, _ := wd.accounts.LoadOrStore(appid, fresh)
	m := v.(*account)
	m.mu.Lock()
	kind := m.kind
	m.mu.Unlock()
	if kind == KindComponent {
		return nil, fmt.Errorf("%w: %s is a component", ErrInvalidAuthorization, appid)
	}
	return m, nil
}

// grantLocked performs authorize and updateauthorize: the authorization
// becomes active with the granted permission sets and a new authorization
// code, recorded in p. Tokens already issued keep working. m is the
// authorizer's account, needed only by a first authorize. Callers hold the
// component account's mu.
func (s *Simulator) grantLocked(cs *componentState, m *account, in Authorization, now time.Time, p *Push) error {
	auth := cs.auths[in.AuthorizerAppID]
	if in.Action == ActionUpdateAuthorize && (auth == nil || !auth.active) {
		return fmt.Errorf("update authorization of %s by %s: %w", p.AppID, in.AuthorizerAppID, ErrNotAuthorized)
	}
	if in.PreAuthCode != "" {
		exp, ok := cs.preAuthCodes[in.PreAuthCode]
		if !ok || !now.Before(exp) {
			return fmt.Errorf("%w: pre_auth_code unknown or expired", ErrInvalidAuthorization)
		}
		delete(cs.preAuthCodes, in.PreAuthCode)
		p.PreAuthCode = in.PreAuthCode
	} else {
		p.PreAuthCode = "preauthcode@@@" + newSecretString(ticketBytes)
	}
	if auth == nil {
		auth = &authorizer{acct: m, funcInfo: DefaultFuncInfo, info: defaultAuthorizerInfo(in.AuthorizerAppID)}
		cs.auths[in.AuthorizerAppID] = auth
	}
	auth.active = true
	if len(in.FuncInfo) > 0 {
		auth.funcInfo = append([]int(nil), in.FuncInfo...)
	}
	if in.Info != nil {
		auth.info = mergeAuthorizerInfo(auth.info, *in.Info)
	}
	// Used codes answer 61009 whether remembered or not; expired ones are
	// remembered a while to answer 61010.
	for code, g := range cs.codes {
		if g.used || now.Sub(g.expiresAt) >= forgetAfter {
			delete(cs.codes, code)
		}
	}
	code := "queryauthcode@@@" + newSecretString(ticketBytes)
	exp := now.Add(s.cfg.Component.AuthCodeTTL)
	cs.codes[code] = &authCode{authorizer: in.AuthorizerAppID, expiresAt: exp}
	p.AuthorizationCode, p.AuthorizationCodeExpiredTime = code, exp.Unix()
	return nil
}

// revokeLocked withdraws an active authorization: its access tokens die at
// once, its refresh token and unused codes stop working. Callers hold the
// component account's mu; it takes the authorizer account's.
func (s *Simulator) revokeLocked(cs *componentState, authorizerAppID string, now time.Time) error {
	auth := cs.auths[authorizerAppID]
	if auth == nil || !auth.active {
		return fmt.Errorf("revoke authorization by %s: %w", authorizerAppID, ErrNotAuthorized)
	}
	auth.active = false
	auth.refreshToken = ""
	for code, g := range cs.codes {
		if g.authorizer == authorizerAppID {
			delete(cs.codes, code)
		}
	}
	m := auth.acct
	m.mu.Lock()
	for _, t := range auth.tokens {
		t.supersede(now, 0)
	}
	m.mu.Unlock()
	clear(auth.tokens)
	auth.tokens = auth.tokens[:0]
	return nil
}

// defaultAuthorizerInfo is the made-up base information of a new
// authorizer: a verified service account named after its appid.
func defaultAuthorizerInfo(appid string) AuthorizerInfo {
	return AuthorizerInfo{
		NickName:        "Merchant " + appid,
		HeadImg:         "http://wx.qlogo.cn/mmopen/" + appid + "/0",
		ServiceTypeInfo: IDInfo{ID: 2},
		VerifyTypeInfo:  IDInfo{ID: 0},
		UserName:        "gh_" + appid,
		PrincipalName:   "Company of " + appid,
		QrcodeURL:       "http://mmbiz.qpic.cn/mmbiz_jpg/" + appid + "/0",
	}
}

// mergeAuthorizerInfo overlays the non-empty text fields of in on cur, and
// its type ids (whose zero is a valid value) always.
func mergeAuthorizerInfo(cur, in AuthorizerInfo) AuthorizerInfo {
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&cur.NickName, in.NickName}, {&cur.HeadImg, in.HeadImg}, {&cur.UserName, in.UserName},
		{&cur.PrincipalName, in.PrincipalName}, {&cur.Alias, in.Alias}, {&cur.QrcodeURL, in.QrcodeURL},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
	cur.ServiceTypeInfo, cur.VerifyTypeInfo = in.ServiceTypeInfo, in.VerifyTypeInfo
	return cur
}

// componentTicketRequest is the body of POST /sim/component/ticket.
type componentTicketRequest struct {
	ComponentAppID string `json:"component_appid"`
}

// handleSimComponentTicket serves POST /sim/component/ticket
// {"component_appid"}: push a new verify ticket now and answer the Push.
func (s *Simulator) handleSimComponentTicket(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	var in componentTicketRequest
	if err := decodeJSONBody(w, r, &in); err != nil {
		writeSimError(w, http.StatusBadRequest, "wechatsim: ticket request must be a JSON object: "+err.Error())
		return
	}
	p, err := s.PushVerifyTicket(r.Context(), in.ComponentAppID)
	if err != nil {
		writeSimError(w, http.StatusNotFound, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// handleSimComponentAuthorization serves POST /sim/component/authorization
// with an Authorization: perform it, push the event and answer the Push
// (400 for a malformed request, 404 for an unknown component, 409 for
// updateauthorize or revoke without an authorization).
func (s *Simulator) handleSimComponentAuthorization(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	var in Authorization
	if err := decodeJSONBody(w, r, &in); err != nil {
		writeSimError(w, http.StatusBadRequest, "wechatsim: authorization must be a JSON object: "+err.Error())
		return
	}
	p, err := s.Authorize(r.Context(), in)
	switch {
	case errors.Is(err, ErrUnknownComponent):
		writeSimError(w, http.StatusNotFound, err.Error())
	case errors.Is(err, ErrNotAuthorized):
		writeSimError(w, http.StatusConflict, err.Error())
	case err != nil:
		writeSimError(w, http.StatusBadRequest, err.Error())
	default:
		writeJSON(w, http.StatusOK, p)
	}
}
