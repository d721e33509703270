package wechat

import (
	"context"
	"net/http"
	"net/url"
)

// WeCom (企业微信) serves its credential APIs at a base URL of its own,
// https://qyapi.weixin.qq.com, so a Client for them is made with New and that
// base URL. Its answers carry the errcode envelope on success too, which the
// shared answer decoding accepts.

// WeComToken fetches an app's access token from GET /cgi-bin/gettoken. Every
// app of a corp has its own corpsecret and its own token. WeCom documents
// that a valid token is returned again until it expires; wxhub does not
// count on it and treats every call as one that may kill the previous token
// after the overlap, like a classic WeChat token.
func (c *Client) WeComToken(ctx context.Context, corpID, secret string) (Token, error) {
	return c.call(ctx, request{
		api:     APIWeComToken,
		method:  http.MethodGet,
		path:    "cgi-bin/gettoken",
		query:   url.Values{"corpid": {corpID}, "corpsecret": {secret}},
		secrets: []string{secret},
		field:   "access_token",
	})
}

// WeComJSAPITicket fetches the corp's jsapi ticket (for wx.config) from
// GET /cgi-bin/get_jsapi_ticket with an access token of any of its apps. It
// is the corp's, whichever app fetches it: at most 400 calls per corp and hour.
func (c *Client) WeComJSAPITicket(ctx context.Context, accessToken string) (Token, error) {
	return c.call(ctx, request{
		api:     APIWeComJSAPITicket,
		method:  http.MethodGet,
		path:    "cgi-bin/get_jsapi_ticket",
		query:   url.Values{"access_token": {accessToken}},
		secrets: []string{accessToken},
		field:   "ticket",
	})
}

// WeComAgentTicket fetches an app's own ticket (for wx.agentConfig) from
// GET /cgi-bin/ticket/get?type=agent_config: at most 100 calls per app and hour.
func (c *Client) WeComAgentTicket(ctx context.Context, accessToken string) (Token, error) {
	return c.call(ctx, request{
		api:     APIWeComAgentTicket,
		method:  http.MethodGet,
		path:    "cgi-bin/ticket/get",
		query:   url.Values{"access_token": {accessToken}, "type": {"agent_config"}},
		secrets: []string{accessToken},
		field:   "ticket",
	})
}
