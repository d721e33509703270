package wechat_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/wechat"
)

const (
	testComponentAppID = "wxcomponent0000001"
	testAuthorizer     = "wxauthorizer000001"
	testRefreshToken   = "refreshtoken@@@-DO-NOT-LOG"
	testFuncInfo       = `[{"funcscope_category":{"id":1}},{"funcscope_category":{"id":15}}]`
)

// TestAuthorizerCallsSendDocumentedRequests checks each third-party platform call against
// the request WeChat documents (POST, the component token in the query, a JSON body) and the
// answer as documented, the refresh token included.
func TestAuthorizerCallsSendDocumentedRequests(t *testing.T) {
	type result struct {
		token wechat.AuthorizerToken
		auth  wechat.Authorization
		info  json.RawMessage
	}
	tests := []struct {
		name     string
		call     func(c *wechat.Client) (result, error)
		answer   string
		wantPath string
		wantBody string
		want     result
	}{
		{
			name: "api_query_auth",
			call: func(c *wechat.Client) (result, error) {
				a, tok, err := c.QueryAuth(context.Background(), testComponentAppID, testAccessToken, "queryauthcode@@@")
				return result{token: tok, auth: a}, err
			},
			answer: `{"authorization_info":{"authorizer_appid":"` + testAuthorizer + `","authorizer_access_token":"AT-authorizer",` +
				`"expires_in":7200,"authorizer_refresh_token":"` + testRefreshToken + `","func_info":` + testFuncInfo + `}}`,
			wantPath: "/cgi-bin/component/api_query_auth",
			wantBody: `{"component_appid":"` + testComponentAppID + `","authorization_code":"queryauthcode@@@"}`,
			want: result{
				token: wechat.AuthorizerToken{Token: wechat.Token{Value: "AT-authorizer", ExpiresIn: 7200 * time.Second}, RefreshToken: testRefreshToken},
				auth:  wechat.Authorization{AuthorizerAppID: testAuthorizer, RefreshToken: testRefreshToken, FuncInfo: json.RawMessage(testFuncInfo)},
			},
		},
		{
			name: "api_authorizer_token with a new refresh token",
			call: func(c *wechat.Client) (result, error) {
				tok, err := c.AuthorizerToken(context.Background(), testComponentAppID, testAccessToken, testAuthorizer, testRefreshToken)
				return result{token: tok}, err
			},
			answer:   `{"authorizer_access_token":"AT-2","expires_in":7200,"authorizer_refresh_token":"refreshtoken-2"}`,
			wantPath: "/cgi-bin/component/api_authorizer_token",
			wantBody: `{"component_appid":"` + testComponentAppID + `","authorizer_appid":"` + testAuthorizer +
				`","authorizer_refresh_token":"` + testRefreshToken + `"}`,
			want: result{token: wechat.AuthorizerToken{Token: wechat.Token{Value: "AT-2", ExpiresIn: 7200 * time.Second}, RefreshToken: "refreshtoken-2"}},
		},
		{
			name: "api_authorizer_token answering no refresh token keeps the one sent",
			call: func(c *wechat.Client) (result, error) {
				tok, err := c.AuthorizerToken(context.Background(), testComponentAppID, testAccessToken, testAuthorizer, testRefreshToken)
				return result{token: tok}, err
			},
			answer:   `{"authorizer_access_token":"AT-3","expires_in":7200}`,
			wantPath: "/cgi-bin/component/api_authorizer_token",
			wantBody: `{"component_appid":"` + testComponentAppID + `","authorizer_appid":"` + testAuthorizer +
				`","authorizer_refresh_token":"` + testRefreshToken + `"}`,
			want: result{token: wechat.AuthorizerToken{Token: wechat.Token{Value: "AT-3", ExpiresIn: 7200 * time.Second}, RefreshToken: testRefreshToken}},
		},
		{
			name: "api_get_authorizer_info",
			call: func(c *wechat.Client) (result, error) {
				i, err := c.GetAuthorizerInfo(context.Background(), testComponentAppID, testAccessToken, testAuthorizer)
				return result{auth: i.Authorization, info: i.BaseInfo}, err
			},
			answer: `{"authorizer_info":{"nick_name":"Shop","service_type_info":{"id":2}},"authorization_info":{"authorizer_appid":"` +
				testAuthorizer + `","authorizer_refresh_token":"` + testRefreshToken + `","func_info":` + testFuncInfo + `}}`,
			wantPath: "/cgi-bin/component/api_get_authorizer_info",
			wantBody: `{"component_appid":"` + testComponentAppID + `","authorizer_appid":"` + testAuthorizer + `"}`,
			want: result{
				auth: wechat.Authorization{AuthorizerAppID: testAuthorizer, RefreshToken: testRefreshToken, FuncInfo: json.RawMessage(testFuncInfo)},
				info: json.RawMessage(`{"nick_name":"Shop","service_type_info":{"id":2}}`),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, seen := recorder(t, "application/json", tt.answer)
			got, err := tt.call(wechat.New(serve(t, h).URL, nil))
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			r := <-seen
			require.Equal(t, http.MethodPost, r.method)
			require.Equal(t, tt.wantPath, r.path)
			require.Equal(t, url.Values{"component_access_token": {testAccessToken}}, r.query)
			require.Equal(t, "application/json", r.contentType)
			require.JSONEq(t, tt.wantBody, string(r.body))
		})
	}
}

// TestAuthorizerCallFailuresNeverRevealTheirSecrets: WeChat's errmsg may quote what it
// was sent; the component token, the refresh token and the authorization code are
// scrubbed from the error, and the errcode is kept for classification.
func TestAuthorizerCallFailuresNeverRevealTheirSecrets(t *testing.T) {
	tests := []struct {
		name string
		call func(c *wechat.Client) error
		code int
		sent string // the secret besides the component token the call sends
	}{
		{"stale refresh token", func(c *wechat.Client) error {
			_, err := c.AuthorizerToken(context.Background(), testComponentAppID, testAccessToken, testAuthorizer, testRefreshToken)
			return err
		}, 61023, testRefreshToken},
		{"used authorization code", func(c *wechat.Client) error {
			_, _, err := c.QueryAuth(context.Background(), testComponentAppID, testAccessToken, "queryauthcode@@@")
			return err
		}, 61009, "queryauthcode@@@"},
		{"revoked authorization", func(c *wechat.Client) error {
			_, err := c.GetAuthorizerInfo(context.Background(), testComponentAppID, testAccessToken, testAuthorizer)
			return err
		}, 61003, testAccessToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := json.Marshal(map[string]any{"errcode": tt.code,
				"errmsg": "refused " + tt.sent + " with " + testAccessToken})
			require.NoError(t, err)
			h, _ := recorder(t, "application/json", string(body))
			err = tt.call(wechat.New(serve(t, h).URL, nil))
			require.Error(t, err)
			require.NotContains(t, err.Error(), tt.sent)
			require.NotContains(t, err.Error(), testAccessToken)
			require.Contains(t, err.Error(), "<redacted>")
			var we *wechat.Error
			require.ErrorAs(t, err, &we)
			require.Equal(t, tt.code, we.Code)
		})
	}
}
