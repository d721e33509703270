package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"wxhub/db"
)

// Metrics path classes of the third-party platform's endpoints.
const (
	classComponentToken  = "component_token"
	classQueryAuth       = "query_auth"
	classAuthorizerToken = "authorizer_token"
	classComponentProxy  = "component_proxy"
)

// componentTokenRequest is the body of POST /cgi-bin/component/api_component_token.
type componentTokenRequest struct {
	AppID        string `json:"component_appid"`
	Secret       string `json:"component_appsecret"`
	VerifyTicket string `json:"component_verify_ticket"`
}

// wxComponentToken is WeChat's api_component_token answer.
type wxComponentToken struct {
	ComponentAccessToken string `json:"component_access_token"`
	ExpiresIn            int64  `json:"expires_in"`
}

// serveComponentToken answers POST /cgi-bin/component/api_component_token with the token
// wxhub keeps for the component. The caller proves itself with the component_appsecret (or
// a wxhub API key in its place); the verify ticket it sends is not needed and not checked:
// WeChat pushes the tickets to wxhub, so an app moved behind wxhub has none of its own.
func (g *Gateway) serveComponentToken(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodPost {
		return wxErr(wxRequirePOST, "")
	}
	var req componentTokenRequest
	if err := readWeChatJSON(r, &req); err != nil {
		return err
	}
	switch {
	case req.AppID == "":
		return wxErr(wxMissingAppID, "")
	case req.Secret == "":
		return wxErr(wxMissingSecret, "")
	}
	ctx, kind, err := g.authenticate(r, req.AppID, req.Secret, wxInvalidSecret)
	if err != nil {
		return err
	}
	if kind != "component" {
		return wxErr(wxInvalidComponent, "a "+kind+" account is not a third-party platform")
	}
	cred, err := g.s.credential(ctx, req.AppID, "access_token", 0)
	if err != nil {
		return g.wxFromAPI(err, "")
	}
	h := handedFor(cred)
	h.component = true
	g.remember(ctx, cred.Value, h)
	writeWeChat(w, wxComponentToken{ComponentAccessToken: cred.Value, ExpiresIn: g.expiresIn(cred)})
	return nil
}

// readWeChatJSON decodes a request body as WeChat does: anything but a JSON object within
// maxBodyBytes is 47001.
func readWeChatJSON(r *http.Request, v any) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes))
	if err != nil || json.Unmarshal(body, v) != nil {
		return wxErr(wxDataFormat, "")
	}
	return nil
}

// componentCaller is caller for the component endpoints: the token in component_access_token
// must be a component's token a gateway node handed out; an account's token there is
// WeChat's 61014.
func (g *Gateway) componentCaller(r *http.Request) (context.Context, handedToken, error) {
	ctx, h, err := g.handedBy(r, componentTokenParam)
	if err == nil && !h.component {
		return nil, handedToken{}, wxErr(wxNeedsComponentToken, "")
	}
	return ctx, h, err
}

// componentRequest authenticates a POST to a component endpoint the gateway answers and
// decodes its body, whose component_appid must name the token's component, as WeChat checks.
func (g *Gateway) componentRequest(r *http.Request, body interface{ componentAppID() string }) (context.Context, handedToken, error) {
	if r.Method != http.MethodPost {
		return nil, handedToken{}, wxErr(wxRequirePOST, "")
	}
	ctx, h, err := g.componentCaller(r)
	if err != nil {
		return nil, handedToken{}, err
	}
	if err := readWeChatJSON(r, body); err != nil {
		return nil, handedToken{}, err
	}
	switch body.componentAppID() {
	case "":
		return nil, handedToken{}, wxErr(wxMissingAppID, "")
	case h.appid:
		return ctx, h, nil
	}
	return nil, handedToken{}, wxErr(wxInvalidAppID, "component_appid is not the token's component")
}

type componentBody struct {
	ComponentAppID string `json:"component_appid"`
}

func (b *componentBody) componentAppID() string { return b.ComponentAppID }

// wxAuthorizationInfo is authorization_info in WeChat's api_query_auth answer.
type wxAuthorizationInfo struct {
	AuthorizerAppID        string          `json:"authorizer_appid"`
	AuthorizerAccessToken  string          `json:"authorizer_access_token"`
	ExpiresIn              int64           `json:"expires_in"`
	AuthorizerRefreshToken string          `json:"authorizer_refresh_token"`
	FuncInfo               json.RawMessage `json:"func_info"`
}

// serveQueryAuth answers POST /cgi-bin/component/api_query_auth. The code is exchanged by
// wxhub, as POST /v1/components/{component_appid}/authorizations does, and the answer is the
// authorizer wxhub keeps: its current token and refresh token. A code whose authorized event
// reached wxhub first is answered from what that event stored, where WeChat itself would
// answer 61009 to the second exchange.
func (g *Gateway) serveQueryAuth(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		componentBody
		AuthorizationCode string `json:"authorization_code"`
	}
	ctx, h, err := g.componentRequest(r, &req)
	if err != nil {
		return err
	}
	if req.AuthorizationCode == "" {
		return wxErr(wxCodeInvalid, "")
	}
	comp, err := g.s.componentEndpoint(ctx, h.appid)
	if err != nil {
		return g.wxFromAPI(err, "")
	}
	a, created, err := g.s.authorize(ctx, comp, nil, "", req.AuthorizationCode)
	if err != nil {
		return g.wxFromAPI(err, "")
	}
	if a.Status == "unauthorized" {
		// The code's authorization was withdrawn since: WeChat refuses such a code.
		return wxErr(wxCodeInvalid, "the authorization was withdrawn")
	}
	g.s.audit(ctx, "account.authorize", a.AppID, a.TenantID, nil, map[string]any{"component": comp.AppID, "created": created, "via": "gateway"})
	secret, err := g.s.store.GetAccountSecret(ctx, a.AppID)
	if err != nil {
		return fmt.Errorf("gateway: refresh token of %s: %w", a.AppID, err)
	}
	cred, err := g.authorizerToken(ctx, a.AppID)
	if err != nil {
		return err
	}
	var granted struct {
		FuncInfo json.RawMessage `json:"func_info"`
	}
	if err := json.Unmarshal(a.AuthorizationInfo, &granted); err != nil || len(granted.FuncInfo) == 0 {
		granted.FuncInfo = json.RawMessage("[]")
	}
	writeWeChat(w, struct {
		AuthorizationInfo wxAuthorizationInfo `json:"authorization_info"`
	}{wxAuthorizationInfo{AuthorizerAppID: a.AppID, AuthorizerAccessToken: cred.Value, ExpiresIn: g.expiresIn(cred),
		AuthorizerRefreshToken: secret.Secret, FuncInfo: granted.FuncInfo}})
	return nil
}

// wxAuthorizerToken is WeChat's api_authorizer_token answer.
type wxAuthorizerToken struct {
	AuthorizerAccessToken  string `json:"authorizer_access_token"`
	ExpiresIn              int64  `json:"expires_in"`
	AuthorizerRefreshToken string `json:"authorizer_refresh_token"`
}

// serveAuthorizerToken answers POST /cgi-bin/component/api_authorizer_token with the
// authorizer's token wxhub keeps, never a new one from WeChat: every app of the platform gets
// the same token, so none kills another's. The refresh token the caller sends is not
// checked (wxhub's workers rotate it, so an app's copy goes stale); the answer carries the
// current one, which keeps working should the app go back to calling WeChat itself.
func (g *Gateway) serveAuthorizerToken(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		componentBody
		AuthorizerAppID string `json:"authorizer_appid"`
		RefreshToken    string `json:"authorizer_refresh_token"`
	}
	ctx, h, err := g.componentRequest(r, &req)
	if err != nil {
		return err
	}
	if req.AuthorizerAppID == "" {
		return wxErr(wxMissingAppID, "")
	}
	// One read gives both whose the appid is and its refresh token (an authorizer's secret).
	a, err := g.s.store.GetAccountSecret(ctx, req.AuthorizerAppID)
	switch {
	case errors.Is(err, db.ErrNotFound):
		return wxErr(wxNotAuthorized, "")
	case err != nil:
		return fmt.Errorf("gateway: authorizer %s: %w", req.AuthorizerAppID, err)
	case a.Kind != "authorizer" || a.ComponentAccountID != h.accountID || a.Status == "unauthorized":
		return wxErr(wxNotAuthorized, "")
	}
	cred, err := g.authorizerToken(ctx, a.AppID)
	if err != nil {
		return err
	}
	writeWeChat(w, wxAuthorizerToken{AuthorizerAccessToken: cred.Value, ExpiresIn: g.expiresIn(cred), AuthorizerRefreshToken: a.Secret})
	return nil
}

// authorizerToken reads an authorizer's current access token, remembered as handed out.
func (g *Gateway) authorizerToken(ctx context.Context, appid string) (db.CachedCredential, error) {
	cred, err := g.s.credential(ctx, appid, "access_token", 0)
	if err != nil {
		return db.CachedCredential{}, g.wxFromAPI(err, "")
	}
	g.remember(ctx, cred.Value, handedFor(cred))
	return cred, nil
}
