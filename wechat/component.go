package wechat

import (
	"context"
	"net/http"
)

// APIComponentToken is POST /cgi-bin/component/api_component_token, a third-party
// platform's (component's) own access token.
const APIComponentToken = "api_component_token"

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
