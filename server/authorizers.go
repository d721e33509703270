package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"wxhub/db"
	"wxhub/wechat"
)

// AuthorizationInput exchanges an authorization code for an authorizer's account.
type AuthorizationInput struct {
	ComponentAppID string `path:"component_appid" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"The component's appid." example:"wxcomponent000001"`
	Body           struct {
		AuthorizationCode string `json:"authorization_code" minLength:"1" maxLength:"512" doc:"The auth_code WeChat appended to the redirect_uri after the authorization (or the AuthorizationCode of an event)."`
	}
}

// AuthorizationOutput is the authorizer's account.
type AuthorizationOutput struct {
	Status int
	Body   AccountBody
}

func (s *Server) registerAuthorizers() {
	huma.Register(s.api, huma.Operation{
		OperationID: "create-component-authorization", Method: http.MethodPost, Path: "/v1/components/{component_appid}/authorizations",
		Summary: "Record an authorization from its code", Tags: []string{"Components"},
		Metadata: map[string]any{rolesKey: []string{RoleAdmin, RoleTenant}}, Errors: []int{401, 403, 404, 409, 422, 502, 503},
		Description: "Exchanges an authorization code (api_query_auth) for the authorizer's tokens and creates its account " +
			"(201), or brings back one authorized before (200): what the authorized event does, for a platform whose " +
			"redirect page receives the code first. The account's access token is then kept fresh with its refresh token. " +
			"A code wxhub exchanged or received with an event in the last hour (WeChat gives it to the event too) answers " +
			"200 with the account it is for, without asking WeChat. 502 when WeChat refuses the code, with its errcode (61009: used elsewhere " +
			"or unknown, 61010: expired).",
	}, func(ctx context.Context, in *AuthorizationInput) (*AuthorizationOutput, error) {
		comp, err := s.componentEndpoint(ctx, in.ComponentAppID)
		if err != nil {
			return nil, err
		}
		p, err := principal(ctx)
		if err != nil {
			return nil, err
		}
		if !p.mayAccess(comp.TenantID) {
			return nil, huma.Error404NotFound("no component with this appid")
		}
		a, created, err := s.authorize(ctx, comp, nil, "", in.Body.AuthorizationCode)
		if err != nil {
			return nil, err
		}
		names, err := s.tenantNames(ctx)
		if err != nil {
			return nil, s.internal(err)
		}
		s.audit(ctx, "account.authorize", a.AppID, a.TenantID, nil, map[string]any{"component": comp.AppID, "created": created})
		out := &AuthorizationOutput{Status: http.StatusOK, Body: accountBody(a, names[a.TenantID])}
		if created {
			out.Status = http.StatusCreated
		}
		return out, nil
	})
}

// componentEndpoint finds a component by its appid: 404 when there is none.
func (s *Server) componentEndpoint(ctx context.Context, appid string) (db.ComponentEndpoint, error) {
	comp, err := s.store.GetComponentEndpoint(ctx, appid)
	switch {
	case errors.Is(err, db.ErrNotFound):
		return db.ComponentEndpoint{}, huma.Error404NotFound("no component with this appid")
	case err != nil:
		return db.ComponentEndpoint{}, s.internal(err)
	}
	return comp, nil
}

// componentToken is a component's current access token for a call this node makes to
// WeChat on a push's or a request's behalf.
func (s *Server) componentToken(ctx context.Context, appid string) (string, error) {
	cred, err := s.cache.Get(ctx, appid, "access_token")
	if err == nil && !s.servable(cred, time.Now()) {
		cred, err = s.cache.Reload(ctx, appid, "access_token")
	}
	if err != nil && !errors.Is(err, db.ErrNotFound) {
		return "", s.internal(err)
	}
	if err != nil || !s.servable(cred, time.Now()) {
		return "", huma.ErrorWithHeaders(
			huma.Error503ServiceUnavailable("the component has no valid access token yet (it needs a component_verify_ticket from WeChat); try again"),
			http.Header{"Retry-After": {"10"}})
	}
	return cred.Value, nil
}

// authorize records an authorization of comp. An authorizer already live (active or
// disabled) keeps its tokens: only its context is read again (api_get_authorizer_info), as
// updateauthorized needs. Otherwise the code is exchanged (api_query_auth) and the account
// created or brought back with the refresh token and the access token WeChat answered.
// appid is the authorizer's appid when the event names it, "" for a bare code. push, when
// given, is recorded with what is stored.
//
// WeChat hands a code to the event and to the merchant's browser alike, and refuses its
// second exchange; so the code is locked cluster-wide while it is looked at, and recorded with
// what it bought. A bare code wxhub exchanged or received before (its event came first, or
// the platform asked twice) answers the authorizer it is for, without asking WeChat, however
// close together the two came.
func (s *Server) authorize(ctx context.Context, comp db.ComponentEndpoint, push *db.Push, appid, code string) (db.Account, bool, error) {
	var a db.Account
	var created bool
	err := s.store.WithAuthorizationCode(ctx, code, func() error {
		var err error
		a, created, err = s.authorizeLocked(ctx, comp, push, appid, code)
		return err
	})
	var se huma.StatusError
	if err != nil && !errors.As(err, &se) {
		return db.Account{}, false, s.internal(err)
	}
	return a, created, err
}

// authorizeLocked is authorize, holding the code's lock.
func (s *Server) authorizeLocked(ctx context.Context, comp db.ComponentEndpoint, push *db.Push, appid, code string) (db.Account, bool, error) {
	if appid == "" {
		a, err := s.store.AuthorizedByCode(ctx, comp, code)
		switch {
		case err == nil:
			return a, false, nil
		case !errors.Is(err, db.ErrNotFound):
			return db.Account{}, false, s.internal(err)
		}
	}
	token, err := s.componentToken(ctx, comp.AppID)
	if err != nil {
		return db.Account{}, false, err
	}
	if appid != "" {
		a, err := s.store.GetAccount(ctx, appid)
		switch {
		case err != nil && !errors.Is(err, db.ErrNotFound):
			return db.Account{}, false, s.internal(err)
		case err == nil && (a.Kind != "authorizer" || a.ComponentAccountID != comp.AccountID):
			return db.Account{}, false, huma.Error409Conflict(fmt.Sprintf("appid %s belongs to an account that is not an authorizer of %s", appid, comp.AppID))
		case err == nil && (a.Status == "active" || a.Status == "disabled"):
			info, err := s.cfg.WeChat.GetAuthorizerInfo(ctx, comp.AppID, token, appid)
			if err != nil {
				return db.Account{}, false, s.upstreamFailed(err, "the authorization of "+appid)
			}
			s.countCall(ctx, a, wechat.APIGetAuthorizerInfo)
			changed, err := s.store.UpdateAuthorizerContext(ctx, comp, push, a, code, db.AuthorizerContext{
				FuncInfo: info.Authorization.FuncInfo, WeChatInfo: info.BaseInfo})
			if err != nil {
				return db.Account{}, false, s.storeFailed(err)
			}
			s.log.Info("authorization updated", "component", comp.AppID, "appid", appid, "changed", changed)
			a, err = s.store.GetAccount(ctx, appid)
			if err != nil {
				return db.Account{}, false, s.internal(err)
			}
			return a, false, nil
		}
	}
	start := time.Now()
	x, err := s.exchangeCode(ctx, comp, token, appid, code)
	if err != nil {
		return db.Account{}, false, err
	}
	expiresAt := start.Add(x.token.ExpiresIn)
	g := db.Grant{
		AppID: x.auth.AuthorizerAppID, RefreshToken: x.token.RefreshToken,
		Token: db.Write{Value: x.token.Value, ExpiresAt: expiresAt, PreviousValidFor: s.cfg.Overlap,
			RefreshIn: time.Duration(float64(time.Until(expiresAt)) * (0.75 + 0.1*rand.Float64()))},
		Context: db.AuthorizerContext{FuncInfo: x.auth.FuncInfo, WeChatInfo: x.info},
		Code:    code,
	}
	a, created, err := s.store.Authorize(ctx, comp, push, g)
	if err != nil {
		return db.Account{}, false, s.storeFailed(err)
	}
	for _, api := range x.calls {
		s.countCall(ctx, a, api)
	}
	s.log.Info("authorized", "component", comp.AppID, "appid", a.AppID, "created", created)
	return a, created, nil
}

// codeUsed is WeChat's answer to an authorization code exchanged before.
const codeUsed = 61009

// exchanged is what an authorization code bought: the grant, the authorizer's first token,
// its base information (nil when WeChat did not answer for it: the worker reads it within a
// minute, since it was never read), and the WeChat calls made, for the quota ledger once
// the account exists.
type exchanged struct {
	auth  wechat.Authorization
	token wechat.AuthorizerToken
	info  json.RawMessage
	calls []string
}

// exchangeCode exchanges an authorization code for the authorizer's grant. When WeChat
// answers that the code was used and the event names its authorizer, a node exchanged it
// and failed before its commit, and WeChat sent the event again: the grant is rebuilt from
// WeChat's current state, the refresh token api_get_authorizer_info reports buying the
// token.
func (s *Server) exchangeCode(ctx context.Context, comp db.ComponentEndpoint, token, appid, code string) (exchanged, error) {
	x := exchanged{calls: []string{wechat.APIQueryAuth, wechat.APIGetAuthorizerInfo}}
	auth, tok, err := s.cfg.WeChat.QueryAuth(ctx, comp.AppID, token, code)
	var we *wechat.Error
	if errors.As(err, &we) && we.Code == codeUsed && appid != "" {
		info, err := s.cfg.WeChat.GetAuthorizerInfo(ctx, comp.AppID, token, appid)
		if err != nil {
			return exchanged{}, s.upstreamFailed(err, "the authorization of "+appid)
		}
		tok, err := s.cfg.WeChat.AuthorizerToken(ctx, comp.AppID, token, appid, info.Authorization.RefreshToken)
		if err != nil {
			return exchanged{}, s.upstreamFailed(err, "the token of "+appid)
		}
		s.log.Warn("authorization code used before; the authorization was rebuilt from WeChat's current state",
			"component", comp.AppID, "appid", appid)
		x.auth = wechat.Authorization{AuthorizerAppID: appid, FuncInfo: info.Authorization.FuncInfo}
		x.token, x.info = tok, info.BaseInfo
		x.calls = append(x.calls, wechat.APIAuthorizerToken)
		return x, nil
	}
	if err != nil {
		return exchanged{}, s.upstreamFailed(err, "the authorization code")
	}
	if appid != "" && auth.AuthorizerAppID != appid {
		return exchanged{}, huma.Error400BadRequest(fmt.Sprintf("the authorization code is %s's, not %s's", auth.AuthorizerAppID, appid))
	}
	x.auth, x.token = auth, tok
	info, err := s.cfg.WeChat.GetAuthorizerInfo(ctx, comp.AppID, token, auth.AuthorizerAppID)
	if err != nil {
		s.log.Warn("authorizer's base information not read", "component", comp.AppID, "appid", auth.AuthorizerAppID, "err", err)
		return x, nil
	}
	x.info = info.BaseInfo
	return x, nil
}

// upstreamFailed answers a WeChat call a request needed that failed: 502 with WeChat's
// errcode when WeChat refused, 503 when it could not be reached.
func (s *Server) upstreamFailed(err error, what string) error {
	var we *wechat.Error
	if errors.As(err, &we) {
		return &problem{Type: problemUpstreamRefused, Title: "WeChat refused", Status: http.StatusBadGateway,
			ErrCode: we.Code, Detail: fmt.Sprintf("WeChat refused %s: %s", what, we.Message)}
	}
	s.log.Warn("WeChat call failed", "what", what, "err", err)
	return huma.Error503ServiceUnavailable("WeChat could not be reached about " + what + "; try again")
}

// storeFailed maps what storing an authorization may fail with.
func (s *Server) storeFailed(err error) error {
	switch {
	case errors.Is(err, db.ErrReplayed):
		return rejectPush("the push was received before (same timestamp and nonce)")
	case errors.Is(err, db.ErrNotAuthorizer), errors.Is(err, db.ErrConflict):
		return huma.Error409Conflict(err.Error())
	}
	return s.internal(err)
}

// countCall counts a call this node made to WeChat for an account in the quota ledger.
func (s *Server) countCall(ctx context.Context, a db.Account, api string) {
	if err := s.store.RecordCall(ctx, a.TenantID, a.ID, api, 0); err != nil {
		s.log.Error("could not count a call in the quota ledger", "appid", a.AppID, "api", api, "err", err)
	}
}
