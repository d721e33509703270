package wechat

import (
	"context"
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
