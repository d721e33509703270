package wechat

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// The third-party platform's APIs.
const (
	// APIComponentToken is POST /cgi-bin/component/api_component_token, a third-party
	// platform's (component's) own access token.
	APIComponentToken = "api_component_token"
	// APICreatePreAuthCode is POST /cgi-bin/component/api_create_preauthcode, the code an
	// authorization page is opened with.
	APICreatePreAuthCode = "api_create_preauthcode"
	// APIQueryAuth is POST /cgi-bin/component/api_query_auth, which exchanges the
	// authorization code of an authorization event for the authorizer's tokens.
	APIQueryAuth = "api_query_auth"
	// APIAuthorizerToken is POST /cgi-bin/component/api_authorizer_token, an authorizer's
	// access token bought with its refresh token.
	APIAuthorizerToken = "api_authorizer_token"
	// APIGetAuthorizerInfo is POST /cgi-bin/component/api_get_authorizer_info, an
	// authorizer's base information, what it granted, and its current refresh token.
	APIGetAuthorizerInfo = "api_get_authorizer_info"
)

// ComponentToken fetches a component's access token from
// POST /cgi-bin/component/api_component_token with the latest component_verify_ticket WeChat
// pushed to the platform. Every call issues a new token and the previous one dies after the
// overlap, like the classic token. A ticket WeChat no longer accepts answers 61005 or 61006.
func (c *Client) ComponentToken(ctx context.Context, componentAppID, secret, verifyTicket string) (Token, error) {
	body := struct {
		AppID        string `json:"component_appid"`
		Secret       string `json:"component_appsecret"`
		VerifyTicket string `json:"component_verify_ticket"`
	}{componentAppID, secret, verifyTicket}
	return c.call(ctx, request{
		api:     APIComponentToken,
		method:  http.MethodPost,
		path:    "cgi-bin/component/api_component_token",
		body:    body,
		secrets: []string{secret, verifyTicket},
		field:   "component_access_token",
	})
}

// CreatePreAuthCode asks for a pre-authorization code, which the page where a merchant
// authorizes the platform is opened with; each code serves one authorization and lives
// ExpiresIn (600 s in WeChat's examples).
func (c *Client) CreatePreAuthCode(ctx context.Context, componentAppID, componentToken string) (Token, error) {
	body := struct {
		AppID string `json:"component_appid"`
	}{componentAppID}
	return c.call(ctx, request{
		api:     APICreatePreAuthCode,
		method:  http.MethodPost,
		path:    "cgi-bin/component/api_create_preauthcode",
		query:   url.Values{"component_access_token": {componentToken}},
		body:    body,
		secrets: []string{componentToken},
		field:   "pre_auth_code",
	})
}

// AuthorizerToken is an authorizer's access token and the refresh token that buys the next
// one. WeChat may answer a new refresh token with every access token: the one answered is
// the one to keep.
type AuthorizerToken struct {
	Token
	RefreshToken string
}

// Authorization is what WeChat says an authorizer granted a component: the authorizer's
// appid, its current refresh token, and the granted function scopes as WeChat sent them
// (func_info, a JSON array).
type Authorization struct {
	AuthorizerAppID string
	RefreshToken    string
	FuncInfo        json.RawMessage
}

// authorizationInfo is the authorization_info object of api_query_auth and
// api_get_authorizer_info.
type authorizationInfo struct {
	AuthorizerAppID        string          `json:"authorizer_appid"`
	AuthorizerAccessToken  string          `json:"authorizer_access_token"`
	ExpiresIn              int64           `json:"expires_in"`
	AuthorizerRefreshToken string          `json:"authorizer_refresh_token"`
	FuncInfo               json.RawMessage `json:"func_info"`
}

func (i authorizationInfo) authorization() Authorization {
	return Authorization{AuthorizerAppID: i.AuthorizerAppID, RefreshToken: i.AuthorizerRefreshToken, FuncInfo: i.FuncInfo}
}

// QueryAuth exchanges the authorization code of an authorized or updateauthorized event for
// the authorizer's first access token and refresh token. A code serves once (61009 after
// that) and expires (61010).
func (c *Client) QueryAuth(ctx context.Context, componentAppID, componentToken, code string) (Authorization, AuthorizerToken, error) {
	body := struct {
		AppID string `json:"component_appid"`
		Code  string `json:"authorization_code"`
	}{componentAppID, code}
	rq := request{
		api:     APIQueryAuth,
		method:  http.MethodPost,
		path:    "cgi-bin/component/api_query_auth",
		query:   url.Values{"component_access_token": {componentToken}},
		body:    body,
		secrets: []string{componentToken, code},
		field:   "authorizer_access_token",
	}
	var a struct {
		Info authorizationInfo `json:"authorization_info"`
	}
	red, err := c.exchange(ctx, rq, &a)
	if err != nil {
		return Authorization{}, AuthorizerToken{}, err
	}
	tok, err := checkToken(rq, red, a.Info.AuthorizerAccessToken, a.Info.ExpiresIn)
	if err != nil {
		return Authorization{}, AuthorizerToken{}, err
	}
	if a.Info.AuthorizerAppID == "" || a.Info.AuthorizerRefreshToken == "" {
		return Authorization{}, AuthorizerToken{}, newFailure(rq.api, KindTransient, "malformed answer: no authorizer_appid or authorizer_refresh_token", nil, red)
	}
	return a.Info.authorization(), AuthorizerToken{Token: tok, RefreshToken: a.Info.AuthorizerRefreshToken}, nil
}

// AuthorizerToken buys an authorizer's access token with its refresh token. Every call
// issues a new access token (the previous one dies after the overlap) and may issue a new
// refresh token, which must be kept: WeChat answers 61023 to one it no longer takes.
func (c *Client) AuthorizerToken(ctx context.Context, componentAppID, componentToken, authorizerAppID, refreshToken string) (AuthorizerToken, error) {
	body := struct {
		AppID           string `json:"component_appid"`
		AuthorizerAppID string `json:"authorizer_appid"`
		RefreshToken    string `json:"authorizer_refresh_token"`
	}{componentAppID, authorizerAppID, refreshToken}
	rq := request{
		api:     APIAuthorizerToken,
		method:  http.MethodPost,
		path:    "cgi-bin/component/api_authorizer_token",
		query:   url.Values{"component_access_token": {componentToken}},
		body:    body,
		secrets: []string{componentToken, refreshToken},
		field:   "authorizer_access_token",
	}
	var a struct {
		AccessToken  string `json:"authorizer_access_token"`
		ExpiresIn    int64  `json:"expires_in"`
		RefreshToken string `json:"authorizer_refresh_token"`
	}
	red, err := c.exchange(ctx, rq, &a)
	if err != nil {
		return AuthorizerToken{}, err
	}
	tok, err := checkToken(rq, red, a.AccessToken, a.ExpiresIn)
	if err != nil {
		return AuthorizerToken{}, err
	}
	if a.RefreshToken == "" {
		// WeChat's documentation has the field in every answer; without it the stored
		// refresh token is the one to keep using.
		a.RefreshToken = refreshToken
	}
	return AuthorizerToken{Token: tok, RefreshToken: a.RefreshToken}, nil
}

// AuthorizerInfo is an authorizer's base information as api_get_authorizer_info answers
// it (authorizer_info, a JSON object) and its authorization, with its current refresh
// token.
type AuthorizerInfo struct {
	BaseInfo      json.RawMessage
	Authorization Authorization
}

// GetAuthorizerInfo reads an authorizer's base information and authorization. Its refresh
// token is WeChat's current one: the way back for an authorizer whose stored refresh token
// WeChat no longer takes (a crash lost the one an api_authorizer_token answered). A revoked
// authorization answers 61003.
func (c *Client) GetAuthorizerInfo(ctx context.Context, componentAppID, componentToken, authorizerAppID string) (AuthorizerInfo, error) {
	body := struct {
		AppID           string `json:"component_appid"`
		AuthorizerAppID string `json:"authorizer_appid"`
	}{componentAppID, authorizerAppID}
	rq := request{
		api:     APIGetAuthorizerInfo,
		method:  http.MethodPost,
		path:    "cgi-bin/component/api_get_authorizer_info",
		query:   url.Values{"component_access_token": {componentToken}},
		body:    body,
		secrets: []string{componentToken},
		field:   "authorizer_refresh_token",
	}
	var a struct {
		BaseInfo json.RawMessage   `json:"authorizer_info"`
		Info     authorizationInfo `json:"authorization_info"`
	}
	red, err := c.exchange(ctx, rq, &a)
	if err != nil {
		return AuthorizerInfo{}, err
	}
	if a.Info.AuthorizerRefreshToken == "" || len(a.BaseInfo) == 0 {
		return AuthorizerInfo{}, newFailure(rq.api, KindTransient, "malformed answer: no authorizer_info or authorizer_refresh_token", nil, red)
	}
	if a.Info.AuthorizerAppID == "" {
		a.Info.AuthorizerAppID = authorizerAppID
	}
	return AuthorizerInfo{BaseInfo: a.BaseInfo, Authorization: a.Info.authorization()}, nil
}
