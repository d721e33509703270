package wechat_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"wxhub/wechat"
)

// sameOnEveryAPI is a row whose meaning doesn't depend on the API.
func sameOnEveryAPI(k wechat.Kind) map[string]wechat.Kind {
	return map[string]wechat.Kind{wechat.APIStableToken: k, wechat.APIToken: k, wechat.APIGetTicket: k,
		wechat.APIWeComToken: k, wechat.APIWeComJSAPITicket: k, wechat.APIWeComAgentTicket: k, wechat.APIComponentToken: k}
}

// TestErrorCodesAreClassifiedPerAPI covers every row of docs/wechat.md's error
// table, answered by each credential API, plus the codes this package adds.
func TestErrorCodesAreClassifiedPerAPI(t *testing.T) {
	tests := []struct {
		code int
		msg  string
		want map[string]wechat.Kind
	}{
		// docs/wechat.md's table, row by row.
		{-1, "system error", sameOnEveryAPI(wechat.KindTransient)},
		{40001, "invalid credential, access_token is invalid or not latest", map[string]wechat.Kind{
			wechat.APIStableToken:      wechat.KindConfiguration, // the secret is the credential being checked
			wechat.APIToken:            wechat.KindConfiguration,
			wechat.APIGetTicket:        wechat.KindTokenInvalid,  // the access token is
			wechat.APIWeComToken:       wechat.KindConfiguration, // WeCom's wrong corpsecret
			wechat.APIWeComJSAPITicket: wechat.KindTokenInvalid,
			wechat.APIWeComAgentTicket: wechat.KindTokenInvalid,
			wechat.APIComponentToken:   wechat.KindConfiguration, // the component_appsecret is
		}},
		{40002, "invalid grant_type", sameOnEveryAPI(wechat.KindBug)},
		{40013, "invalid appid", sameOnEveryAPI(wechat.KindConfiguration)},
		{41002, "appid missing", sameOnEveryAPI(wechat.KindConfiguration)},
		{40014, "invalid access_token", sameOnEveryAPI(wechat.KindTokenInvalid)},
		{42001, "access_token expired", sameOnEveryAPI(wechat.KindTokenInvalid)},
		{40125, "invalid appsecret", sameOnEveryAPI(wechat.KindConfiguration)},
		{41004, "appsecret missing", sameOnEveryAPI(wechat.KindConfiguration)},
		{40164, "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist", sameOnEveryAPI(wechat.KindConfiguration)},
		{61004, "access clientip is not registered", sameOnEveryAPI(wechat.KindConfiguration)},
		{40243, "AppSecret已被冻结，请登录小程序平台解冻后再次调用", sameOnEveryAPI(wechat.KindConfiguration)},
		{45009, "reach max api daily quota limit", sameOnEveryAPI(wechat.KindQuota)},
		{45011, "api minute-quota reach limit", sameOnEveryAPI(wechat.KindTransient)},
		{45033, "api concurrent out of limit", sameOnEveryAPI(wechat.KindTransient)},
		{48001, "api unauthorized", sameOnEveryAPI(wechat.KindConfiguration)},
		{61005, "component ticket is expired", sameOnEveryAPI(wechat.KindWaitForPush)},
		{61006, "component ticket is invalid", sameOnEveryAPI(wechat.KindWaitForPush)},
		{89503, "此次调用需要管理员确认，请耐心等候", sameOnEveryAPI(wechat.KindConfiguration)},
		// The third-party platform's codes (docs/wechat.md, the simulator's component flow).
		{61003, "component is not authorized by this account", sameOnEveryAPI(wechat.KindRevoked)},
		{61023, "refresh_token is invalid", sameOnEveryAPI(wechat.KindRevoked)},
		{61011, "invalid component", sameOnEveryAPI(wechat.KindConfiguration)},
		{61024, "must use api(api_component_token) to get token for component acct", sameOnEveryAPI(wechat.KindConfiguration)},
		{61014, "must use component token for component api", sameOnEveryAPI(wechat.KindBug)},
		{61015, "must use biz account token for not component api", sameOnEveryAPI(wechat.KindBug)},
		// Our own request is wrong: retrying sends the same request.
		{40097, "invalid args", sameOnEveryAPI(wechat.KindBug)},
		{41001, "access_token missing", sameOnEveryAPI(wechat.KindBug)},
		{43001, "require GET method", sameOnEveryAPI(wechat.KindBug)},
		{43002, "require POST method", sameOnEveryAPI(wechat.KindBug)},
		{47001, "data format error", sameOnEveryAPI(wechat.KindBug)},
		// Codes we don't know: retried with backoff (see classifyCode).
		{40003, "invalid openid", sameOnEveryAPI(wechat.KindTransient)},
		{99999, "something new", sameOnEveryAPI(wechat.KindTransient)},
		{-2, "", sameOnEveryAPI(wechat.KindTransient)},
	}
	for _, tt := range tests {
		for _, ac := range apiCases {
			t.Run(fmt.Sprintf("%d/%s", tt.code, ac.api), func(t *testing.T) {
				body := fmt.Sprintf(`{"errcode":%d,"errmsg":%q}`, tt.code, tt.msg+" rid: 6579a2b3-1a2b3c4d-5e6f7a8b")
				c := wechat.New(serve(t, answer(http.StatusOK, "text/plain", body)).URL, nil)

				tok, err := ac.call(context.Background(), c)
				require.Zero(t, tok)
				var we *wechat.Error
				require.ErrorAs(t, err, &we)
				require.Equal(t, wechat.Error{API: ac.api, Code: tt.code, Message: tt.msg + " rid: 6579a2b3-1a2b3c4d-5e6f7a8b"}, *we)
				require.Equal(t, tt.want[ac.api], wechat.Classify(err))
			})
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want wechat.Kind
	}{
		{"nil is not a failure", nil, 0},
		{"wrapped quota answer", fmt.Errorf("refresh wx1: %w", &wechat.Error{API: wechat.APIToken, Code: 45009}), wechat.KindQuota},
		{"40001 fetching a stable token", &wechat.Error{API: wechat.APIStableToken, Code: 40001}, wechat.KindConfiguration},
		{"40001 fetching a classic token", &wechat.Error{API: wechat.APIToken, Code: 40001}, wechat.KindConfiguration},
		{"40001 fetching a ticket", fmt.Errorf("ticket: %w", &wechat.Error{API: wechat.APIGetTicket, Code: 40001}), wechat.KindTokenInvalid},
		{"40001 reported by an app server using the token", &wechat.Error{API: "get_api_domain_ip", Code: 40001}, wechat.KindTokenInvalid},
		{"context deadline exceeded", context.DeadlineExceeded, wechat.KindTransient},
		{"wrapped context deadline exceeded", fmt.Errorf("refresh: %w", context.DeadlineExceeded), wechat.KindTransient},
		{"context cancelled", context.Canceled, wechat.KindTransient},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, wechat.KindTransient},
		{"DNS failure", &net.DNSError{Err: "no such host", Name: "api.weixin.qq.com", IsNotFound: true}, wechat.KindTransient},
		{"an error from elsewhere", errors.New("boom"), wechat.KindTransient},
		{"typed nil *Error", (*wechat.Error)(nil), wechat.KindTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, wechat.Classify(tt.err))
		})
	}
}

func TestKindString(t *testing.T) {
	tests := []struct {
		kind wechat.Kind
		want string
	}{
		{wechat.KindTransient, "transient"},
		{wechat.KindConfiguration, "configuration"},
		{wechat.KindQuota, "quota"},
		{wechat.KindTokenInvalid, "token_invalid"},
		{wechat.KindRevoked, "revoked"},
		{wechat.KindWaitForPush, "wait_for_push"},
		{wechat.KindBug, "bug"},
		{0, "Kind(0)"},
		{99, "Kind(99)"},
		{-1, "Kind(-1)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			require.Equal(t, tt.want, tt.kind.String())
		})
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		err  wechat.Error
		want string
	}{
		{wechat.Error{API: wechat.APIStableToken, Code: 40125, Message: "invalid appsecret"}, "wechat stable_token: errcode 40125: invalid appsecret"},
		{wechat.Error{API: wechat.APIGetTicket, Code: 42001, Message: "access_token expired"}, "wechat getticket: errcode 42001: access_token expired"},
		{wechat.Error{API: wechat.APIToken, Code: -1}, "wechat token: errcode -1"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			require.EqualError(t, &tt.err, tt.want)
		})
	}
}
