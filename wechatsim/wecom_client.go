package wechatsim

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// UseWeCom presents a WeCom token to WeCom's get_api_domain_ip under
// WeComPrefix and returns the errcode: 0 when the token works, 40014 when it
// is superseded or unknown, and for an expired one WeComConfig.ExpiredCode.
// err is only for transport failures and answers that are not WeCom's.
func (c *Client) UseWeCom(ctx context.Context, token string) (errcode int, err error) {
	var ans struct {
		ErrCode int      `json:"errcode"`
		IPList  []string `json:"ip_list"`
	}
	path := WeComPrefix + pathDomainIP + "?access_token=" + url.QueryEscape(token)
	if err := c.do(ctx, http.MethodGet, path, nil, &ans); err != nil {
		return 0, fmt.Errorf("use wecom token: %w", err)
	}
	if ans.ErrCode == 0 && ans.IPList == nil {
		return 0, errors.New("use wecom token: answer has neither errcode nor ip_list")
	}
	return ans.ErrCode, nil
}
