package wechatsim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client drives a simulator over HTTP, for tests in other packages and for
// end-to-end tests against `wxhub sim`.
type Client struct {
	// BaseURL is the simulator's address, e.g. an httptest.Server's URL.
	BaseURL string
	// HTTP is the client to use; nil means http.DefaultClient.
	HTTP *http.Client
}

// AddAccount creates or updates an account (POST /sim/accounts).
func (c *Client) AddAccount(ctx context.Context, a Account) error {
	if err := c.do(ctx, http.MethodPost, "/sim/accounts", a, nil); err != nil {
		return fmt.Errorf("add account %s: %w", a.AppID, err)
	}
	return nil
}

// Stats reads the counters of appid, or of every account when appid is
// empty (GET /sim/stats).
func (c *Client) Stats(ctx context.Context, appid string) (Stats, error) {
	path := "/sim/stats"
	if appid != "" {
		path += "?appid=" + url.QueryEscape(appid)
	}
	var st Stats
	if err := c.do(ctx, http.MethodGet, path, nil, &st); err != nil {
		return Stats{}, fmt.Errorf("stats %s: %w", appid, err)
	}
	return st, nil
}

// SetFaults sets, or with f.Clear removes, the faults of f.AppID, or the
// global faults when f.AppID is empty (POST /sim/faults).
func (c *Client) SetFaults(ctx context.Context, f Faults) error {
	if err := c.do(ctx, http.MethodPost, "/sim/faults", f, nil); err != nil {
		return fmt.Errorf("set faults %s: %w", f.AppID, err)
	}
	return nil
}

// ClearFaults removes every fault (DELETE /sim/faults).
func (c *Client) ClearFaults(ctx context.Context) error {
	if err := c.do(ctx, http.MethodDelete, "/sim/faults", nil, nil); err != nil {
		return fmt.Errorf("clear faults: %w", err)
	}
	return nil
}

// Reset forgets all accounts, tokens, faults and counters (POST /sim/reset).
func (c *Client) Reset(ctx context.Context) error {
	if err := c.do(ctx, http.MethodPost, "/sim/reset", nil, nil); err != nil {
		return fmt.Errorf("reset: %w", err)
	}
	return nil
}

// VerifyJSSDK asks whether a JS-SDK signature was made with a jsapi ticket
// of r.AppID that is live right now (POST /sim/verify-jssdk). An invalid
// signature is not an error: valid is false and reason says why (one of the
// JSSDKReason constants). err is for transport failures and malformed checks.
func (c *Client) VerifyJSSDK(ctx context.Context, r JSSDKCheck) (valid bool, reason string, err error) {
	var v jssdkVerdict
	if err := c.do(ctx, http.MethodPost, "/sim/verify-jssdk", r, &v); err != nil {
		return false, "", fmt.Errorf("verify jssdk %s: %w", r.AppID, err)
	}
	return v.Valid, v.Reason, nil
}

// Use presents token to WeChat's cheap get_api_domain_ip call, the way an
// application server uses a token, and returns the errcode: 0 when the token
// works, 40001 when it is superseded or unknown, 42001 when it expired. err
// is only for transport failures and answers that are not WeChat's.
func (c *Client) Use(ctx context.Context, token string) (errcode int, err error) {
	var ans struct {
		ErrCode int      `json:"errcode"`
		IPList  []string `json:"ip_list"`
	}
	path := pathDomainIP + "?access_token=" + url.QueryEscape(token)
	if err := c.do(ctx, http.MethodGet, path, nil, &ans); err != nil {
		return 0, fmt.Errorf("use token: %w", err)
	}
	if ans.ErrCode == 0 && ans.IPList == nil {
		return 0, fmt.Errorf("use token: answer has neither errcode nor ip_list")
	}
	return ans.ErrCode, nil
}

// do sends one request with an optional JSON body and decodes a 2xx JSON
// answer into out (when not nil). Other statuses become errors carrying the
// simulator's message.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("status %d: %s", resp.StatusCode, simErrorMessage(b))
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, out)
}

// simErrorMessage extracts the message of a /sim/ error body.
func simErrorMessage(body []byte) string {
	var e simError
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(body))
}
