package wechatsim

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/wechat/callback"
)

func TestTicketPusherPushesEncryptedTicketsEveryInterval(t *testing.T) {
	tb, rc := componentSetup(t, Config{Component: ComponentConfig{TicketInterval: 100 * time.Millisecond}})

	seen := map[string]bool{}
	var last string
	for range 3 {
		ev := rc.next(t)
		require.Equal(t, callback.InfoTypeVerifyTicket, ev.InfoType)
		require.Equal(t, tb.clock.Now().Unix(), ev.CreateTime)
		require.False(t, seen[ev.ComponentVerifyTicket], "every push brings a new ticket")
		seen[ev.ComponentVerifyTicket] = true
		last = ev.ComponentVerifyTicket
	}
	rc.requireClean(t)

	ans := tb.componentToken(t, last)
	require.Zero(t, ans.ErrCode, ans.ErrMsg)
	require.Equal(t, 7200, ans.ExpiresIn)

	tb.sim.Close()
	st := tb.stats(t, compApp)
	require.GreaterOrEqual(t, st.Pushes[callback.InfoTypeVerifyTicket], int64(3))
	require.Zero(t, st.PushFailures)
}

func TestTicketPusherStartsWhenTheCallbackURLIsSet(t *testing.T) {
	rc := newReceiver(t)
	tb := setup(t, Config{Component: ComponentConfig{TicketInterval: time.Hour}})
	t.Cleanup(tb.sim.Close)
	require.NoError(t, tb.client.AddAccount(t.Context(), Account{AppID: compApp, Secret: compSecret, Kind: KindComponent}))
	require.NoError(t, tb.client.AddAccount(t.Context(), Account{
		AppID: compApp, Kind: KindComponent, CallbackToken: compToken, EncodingAESKey: compKey, CallbackURL: rc.srv.URL,
	}))
	ev := rc.next(t)
	require.Equal(t, callback.InfoTypeVerifyTicket, ev.InfoType, "the first push comes at once, not after the interval")
	rc.requireClean(t)
}

func TestResetStopsTheTicketPushers(t *testing.T) {
	tb, rc := componentSetup(t, Config{Component: ComponentConfig{TicketInterval: 20 * time.Millisecond}})
	rc.next(t)
	tb.sim.Reset()
	for len(rc.events) > 0 {
		<-rc.events
	}
	time.Sleep(150 * time.Millisecond)
	require.Empty(t, rc.events, "no push after Reset")
}

func TestPushedTicketAndCodeWorkBeforeThePushIsAnswered(t *testing.T) {
	tb, rc := componentSetup(t, Config{})
	var ctoken string
	var codes []int
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.hook = func(ev callback.Event) {
		switch ev.InfoType {
		case callback.InfoTypeVerifyTicket:
			ans := tb.componentToken(t, ev.ComponentVerifyTicket)
			ctoken = ans.ComponentAccessToken
			codes = append(codes, ans.ErrCode)
		case callback.InfoTypeAuthorized:
			codes = append(codes, tb.queryAuth(t, ctoken, ev.AuthorizationCode).ErrCode)
		}
	}
	rc.mu.Unlock()
	tb.pushTicket(t)
	tb.authorize(t, Authorization{AuthorizerAppID: merchantA, Action: ActionAuthorize})
	rc.mu.Lock()
	require.Equal(t, []int{0, 0}, codes, "the receiver called the APIs while its push was waiting for the answer")
	require.Empty(t, rc.defects)
}

func TestPushesCountRepliesOtherThanSuccessAsFailures(t *testing.T) {
	for _, tc := range []struct {
		name      string
		status    int
		reply     string
		delivered bool
	}{
		{"success", http.StatusOK, "success", true},
		{"upper case", http.StatusOK, "SUCCESS", false},
		{"trailing newline", http.StatusOK, "success\n", false},
		{"empty", http.StatusOK, "", false},
		{"XML", http.StatusOK, "<xml></xml>", false},
		{"HTTP 500", http.StatusInternalServerError, "success", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb, rc := componentSetup(t, Config{})
			rc.set(tc.status, tc.reply)
			p, err := tb.client.PushVerifyTicket(t.Context(), compApp)
			require.NoError(t, err)
			require.Equal(t, tc.delivered, p.Delivered, p.Reply)
			ev := rc.next(t)
			require.Equal(t, p.ComponentVerifyTicket, ev.ComponentVerifyTicket)

			st := tb.stats(t, compApp)
			require.Equal(t, int64(1), st.Pushes[callback.InfoTypeVerifyTicket])
			if tc.delivered {
				require.Zero(t, st.PushFailures)
			} else {
				require.Equal(t, int64(1), st.PushFailures)
			}
			ans := tb.componentToken(t, p.ComponentVerifyTicket)
			require.Zero(t, ans.ErrCode, "an issued ticket is valid whether or not its push was acknowledged")
		})
	}
}

func TestPushToAnUnreachableCallbackIsAFailure(t *testing.T) {
	tb, rc := componentSetup(t, Config{})
	rc.srv.Close()
	p, err := tb.client.PushVerifyTicket(t.Context(), compApp)
	require.NoError(t, err)
	require.False(t, p.Delivered)
	require.Contains(t, p.Reply, "no answer")
	require.Equal(t, int64(1), tb.stats(t, compApp).PushFailures)
}

func TestPushesUseTheCurrentEncodingAESKey(t *testing.T) {
	tb, rc := componentSetup(t, Config{})
	const newKey = "Zm9yIHRlc3RzIG9ubHk6IHRoZSBjdXJyZW50IGtleSE"
	oldK, err := callback.ParseKey(compKey)
	require.NoError(t, err)
	newK, err := callback.ParseKey(newKey)
	require.NoError(t, err)

	require.NoError(t, tb.client.AddAccount(t.Context(), Account{AppID: compApp, Kind: KindComponent, EncodingAESKey: newKey}))
	rc.setKeys(oldK)
	tb.pushTicket(t)
	rc.mu.Lock()
	require.Len(t, rc.defects, 1, "a push under the new key does not open with the old one")
	rc.defects = nil
	rc.mu.Unlock()

	rc.setKeys(newK, oldK)
	tb.pushTicket(t)
	require.Equal(t, callback.InfoTypeVerifyTicket, rc.next(t).InfoType)
	rc.requireClean(t)
}

func TestComponentTokenNeedsAPushedTicket(t *testing.T) {
	tb, _ := componentSetup(t, Config{})
	require.NoError(t, tb.sim.AddAccount(Account{AppID: "wx_other_component", Secret: "s", Kind: KindComponent,
		CallbackToken: compToken, EncodingAESKey: compKey}))
	other, err := tb.sim.PushVerifyTicket(t.Context(), "wx_other_component")
	require.NoError(t, err)

	require.Equal(t, CodeTicketInvalid, tb.componentToken(t, "ticket@@@never-pushed").ErrCode, "nothing pushed yet")
	old := tb.pushTicket(t)
	tb.clock.Add(10 * time.Minute)
	latest := tb.pushTicket(t)

	require.Zero(t, tb.componentToken(t, latest).ErrCode)
	require.Zero(t, tb.componentToken(t, old).ErrCode, "an earlier ticket is valid for its own 12 hours")
	require.Equal(t, CodeTicketInvalid, tb.componentToken(t, other.ComponentVerifyTicket).ErrCode, "another component's ticket")
	require.Equal(t, CodeTicketInvalid, tb.componentToken(t, "").ErrCode)

	tb.clock.Add(12*time.Hour - 10*time.Minute)
	require.Equal(t, CodeTicketExpired, tb.componentToken(t, old).ErrCode, "12 hours after its push")
	require.Zero(t, tb.componentToken(t, latest).ErrCode, "the latest still has 10 minutes")
	tb.clock.Add(10 * time.Minute)
	require.Equal(t, CodeTicketExpired, tb.componentToken(t, latest).ErrCode)

	st := tb.stats(t, compApp)
	require.Equal(t, int64(3), st.TokensIssuedByKind[TokenKindComponent])
	require.Equal(t, map[int]int64{CodeTicketInvalid: 3, CodeTicketExpired: 2}, st.Errors[APIComponentToken])
}

func TestComponentTokenRefusesBadRequests(t *testing.T) {
	tb, _ := componentSetup(t, Config{})
	ticket := tb.pushTicket(t)
	body := func(appid, secret string) map[string]string {
		return map[string]string{"component_appid": appid, "component_appsecret": secret, "component_verify_ticket": ticket}
	}
	for _, tc := range []struct {
		name   string
		method string
		body   any
		code   int
	}{
		{"GET", http.MethodGet, nil, CodeRequirePOST},
		{"not JSON", http.MethodPost, "component_appid=" + compApp, CodeDataFormat},
		{"no appid", http.MethodPost, body("", compSecret), CodeMissingAppID},
		{"no secret", http.MethodPost, body(compApp, ""), CodeMissingSecret},
		{"unknown appid", http.MethodPost, body("wx_nobody", compSecret), CodeInvalidAppID},
		{"wrong secret", http.MethodPost, body(compApp, "wrong"), CodeInvalidSecret},
		{"an official account", http.MethodPost, body(appA, secretA), CodeInvalidComponent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ans := tb.compMethod(t, tc.method, pathComponentToken, "", tc.body)
			require.Equal(t, tc.code, ans.ErrCode, ans.ErrMsg)
			require.Empty(t, ans.ComponentAccessToken)
		})
	}
	require.Zero(t, tb.stats(t, compApp).TokensIssued)
}

func TestComponentTokenRotatesWithOverlap(t *testing.T) {
	tb, _ := componentSetup(t, Config{})
	first := tb.mustComponentToken(t)
	tb.clock.Add(time.Minute)
	second := tb.mustComponentToken(t)
	require.NotEqual(t, first, second)

	require.Zero(t, tb.preAuthCode(t, first).ErrCode, "the superseded token works during the overlap")
	tb.clock.Add(DefaultOverlap)
	require.Equal(t, CodeInvalidCredential, tb.preAuthCode(t, first).ErrCode, "dead after the overlap")
	require.Zero(t, tb.preAuthCode(t, second).ErrCode)

	third := tb.mustComponentToken(t)
	fourth := tb.mustComponentToken(t)
	require.Equal(t, CodeInvalidCredential, tb.preAuthCode(t, second).ErrCode, "a third token inside the overlap kills the first at once")
	require.Zero(t, tb.preAuthCode(t, third).ErrCode)
	require.Zero(t, tb.preAuthCode(t, fourth).ErrCode)

	tb.clock.Add(DefaultTokenTTL)
	require.Equal(t, CodeTokenExpired, tb.preAuthCode(t, fourth).ErrCode)
}

func TestTokenAPIsRefuseComponentAppIDs(t *testing.T) {
	tb, _ := componentSetup(t, Config{})
	require.Equal(t, CodeUseComponentTokenAPI, tb.token(t, compApp, compSecret).ErrCode)
	require.Equal(t, CodeUseComponentTokenAPI, tb.stable(t, compApp, compSecret, false).ErrCode)
	require.Equal(t, CodeUseComponentTokenAPI, tb.stable(t, compApp, compSecret, true).ErrCode)
	require.Zero(t, tb.stats(t, compApp).TokensIssued)
}

func TestComponentTokenIsOnlyForComponentAPIs(t *testing.T) {
	tb, _ := componentSetup(t, Config{})
	ctoken := tb.mustComponentToken(t)
	require.Equal(t, CodeNeedsAccountToken, tb.use(t, ctoken), "get_api_domain_ip")
	require.Equal(t, CodeNeedsAccountToken, tb.ticket(t, ctoken, TicketJSAPI).ErrCode)
	classic := tb.mustToken(t, appA, secretA)
	require.Equal(t, CodeNeedsComponentToken, tb.preAuthCode(t, classic).ErrCode)
}

func TestComponentAPIsCheckTheirToken(t *testing.T) {
	tb, _ := componentSetup(t, Config{})
	expired, info := tb.authorized(t, merchantA)
	tb.clock.Add(DefaultTokenTTL)
	ctoken := tb.mustComponentToken(t)

	for _, path := range []string{pathCreatePreAuthCode, pathQueryAuth, pathAuthorizerToken, pathGetAuthorizerInfo} {
		t.Run(path, func(t *testing.T) {
			body := map[string]string{"component_appid": compApp, "authorizer_appid": merchantA}
			for _, tc := range []struct {
				name   string
				method string
				token  string
				body   any
				code   int
			}{
				{"no token", http.MethodPost, "", body, CodeMissingAccessToken},
				{"forged token", http.MethodPost, "forged", body, CodeInvalidCredential},
				{"an authorizer token", http.MethodPost, info.AuthorizerAccessToken, body, CodeNeedsComponentToken},
				{"expired token", http.MethodPost, expired, body, CodeTokenExpired},
				{"GET", http.MethodGet, ctoken, nil, CodeRequirePOST},
				{"not JSON", http.MethodPost, ctoken, "{", CodeDataFormat},
				{"no component_appid", http.MethodPost, ctoken, map[string]string{"authorizer_appid": merchantA}, CodeMissingAppID},
				{"another component_appid", http.MethodPost, ctoken, map[string]string{"component_appid": appA}, CodeInvalidAppID},
			} {
				ans := tb.compMethod(t, tc.method, path, tc.token, tc.body)
				require.Equal(t, tc.code, ans.ErrCode, "%s: %s", tc.name, ans.ErrMsg)
			}
		})
	}
}

func TestPreAuthCodeLivesSixHundredSecondsAndIsUsedOnce(t *testing.T) {
	tb, rc := componentSetup(t, Config{})
	ctoken := tb.mustComponentToken(t)
	require.Equal(t, callback.InfoTypeVerifyTicket, rc.next(t).InfoType)
	ans := tb.preAuthCode(t, ctoken)
	require.Zero(t, ans.ErrCode, ans.ErrMsg)
	require.Equal(t, 600, ans.ExpiresIn)
	require.NotEmpty(t, ans.PreAuthCode)

	p := tb.authorize(t, Authorization{AuthorizerAppID: merchantA, Action: ActionAuthorize, PreAuthCode: ans.PreAuthCode})
	require.Equal(t, ans.PreAuthCode, p.PreAuthCode)
	require.Equal(t, ans.PreAuthCode, rc.next(t).PreAuthCode)
	_, err := tb.client.Authorize(t.Context(), Authorization{ComponentAppID: compApp, AuthorizerAppID: merchantB, Action: ActionAuthorize, PreAuthCode: ans.PreAuthCode})
	require.ErrorContains(t, err, "pre_auth_code", "used up")

	late := tb.preAuthCode(t, ctoken).PreAuthCode
	tb.clock.Add(600 * time.Second)
	_, err = tb.client.Authorize(t.Context(), Authorization{ComponentAppID: compApp, AuthorizerAppID: merchantB, Action: ActionAuthorize, PreAuthCode: late})
	require.ErrorContains(t, err, "pre_auth_code", "expired")
}

func TestAuthorizationCodeBecomesAuthorizerTokens(t *testing.T) {
	tb, rc := componentSetup(t, Config{})
	ctoken := tb.mustComponentToken(t)
	rc.next(t)

	p := tb.authorize(t, Authorization{AuthorizerAppID: merchantA, Action: ActionAuthorize, FuncInfo: []int{1, 15}})
	require.True(t, p.Delivered, p.Reply)
	ev := rc.next(t)
	rc.requireClean(t)
	require.Equal(t, callback.Event{
		AppID: compApp, CreateTime: tb.clock.Now().Unix(), InfoType: callback.InfoTypeAuthorized,
		AuthorizerAppID: merchantA, AuthorizationCode: p.AuthorizationCode,
		AuthorizationCodeExpiredTime: tb.clock.Now().Add(time.Hour).Unix(), PreAuthCode: p.PreAuthCode,
	}, ev)

	ans := tb.queryAuth(t, ctoken, ev.AuthorizationCode)
	require.Zero(t, ans.ErrCode, ans.ErrMsg)
	info := ans.AuthorizationInfo
	require.Equal(t, merchantA, info.AuthorizerAppID)
	require.NotEmpty(t, info.AuthorizerAccessToken)
	require.NotEmpty(t, info.AuthorizerRefreshToken)
	require.Equal(t, 7200, info.ExpiresIn)
	require.Equal(t, funcInfos([]int{1, 15}), info.FuncInfo)
	require.Contains(t, string(ans.Raw["authorization_info"]), `"func_info":[{"funcscope_category":{"id":1}},{"funcscope_category":{"id":15}}]`)

	require.Zero(t, tb.use(t, info.AuthorizerAccessToken), "get_api_domain_ip accepts the authorizer token")
	require.Equal(t, CodeAuthCodeInvalid, tb.queryAuth(t, ctoken, ev.AuthorizationCode).ErrCode, "a code works once")
	require.Equal(t, CodeAuthCodeInvalid, tb.queryAuth(t, ctoken, "queryauthcode@@@forged").ErrCode)

	late := tb.authorize(t, Authorization{AuthorizerAppID: merchantB, Action: ActionAuthorize})
	tb.clock.Add(time.Hour)
	ctoken = tb.mustComponentToken(t)
	require.Equal(t, CodeAuthCodeExpired, tb.queryAuth(t, ctoken, late.AuthorizationCode).ErrCode)

	merchant := tb.stats(t, merchantA)
	require.Equal(t, KindAuthorizer, merchant.Kind, "an unknown authorizer becomes an account")
	require.Equal(t, int64(1), merchant.TokensIssuedByKind[TokenKindAuthorizer])
	require.Equal(t, int64(1), merchant.UsesAccepted)
	comp := tb.stats(t, compApp)
	require.Equal(t, int64(2), comp.Pushes[callback.InfoTypeAuthorized])
	require.Equal(t, int64(4), comp.Calls[APIQueryAuth])
	require.Equal(t, map[int]int64{CodeAuthCodeInvalid: 2, CodeAuthCodeExpired: 1}, comp.Errors[APIQueryAuth])
}

func TestAuthorizerTokenRotatesTheRefreshToken(t *testing.T) {
	tb, _ := componentSetup(t, Config{})
	ctoken, info := tb.authorized(t, merchantA)

	tb.clock.Add(time.Minute)
	ans := tb.authorizerToken(t, ctoken, merchantA, info.AuthorizerRefreshToken)
	require.Zero(t, ans.ErrCode, ans.ErrMsg)
	require.Equal(t, 7200, ans.ExpiresIn)
	require.NotEqual(t, info.AuthorizerAccessToken, ans.AuthorizerAccessToken)
	require.NotEqual(t, info.AuthorizerRefreshToken, ans.AuthorizerRefreshToken, "a new refresh token")

	require.Equal(t, CodeRefreshTokenInvalid, tb.authorizerToken(t, ctoken, merchantA, info.AuthorizerRefreshToken).ErrCode,
		"after rotation only the newest refresh token works")
	require.Equal(t, CodeRefreshTokenInvalid, tb.authorizerToken(t, ctoken, merchantA, "").ErrCode)
	require.Equal(t, CodeNotAuthorized, tb.authorizerToken(t, ctoken, merchantB, ans.AuthorizerRefreshToken).ErrCode,
		"an account that never authorized")
	require.Equal(t, CodeMissingAppID, tb.authorizerToken(t, ctoken, "", ans.AuthorizerRefreshToken).ErrCode)

	require.Zero(t, tb.use(t, info.AuthorizerAccessToken), "the old access token works during the overlap")
	require.Zero(t, tb.use(t, ans.AuthorizerAccessToken))
	tb.clock.Add(DefaultOverlap)
	require.Equal(t, CodeInvalidCredential, tb.use(t, info.AuthorizerAccessToken), "and dies after it")
	require.Zero(t, tb.use(t, ans.AuthorizerAccessToken))

	next := tb.authorizerToken(t, ctoken, merchantA, ans.AuthorizerRefreshToken)
	require.Zero(t, next.ErrCode, next.ErrMsg)
	tb.clock.Add(DefaultTokenTTL)
	require.Equal(t, CodeTokenExpired, tb.use(t, next.AuthorizerAccessToken))

	merchant := tb.stats(t, merchantA)
	require.Equal(t, int64(3), merchant.TokensIssuedByKind[TokenKindAuthorizer])
	require.Equal(t, map[int]int64{CodeInvalidCredential: 1, CodeTokenExpired: 1}, merchant.UsesRejected)
}

func TestKeepRefreshTokenAnswersTheSameRefreshToken(t *testing.T) {
	tb, _ := componentSetup(t, Config{Component: ComponentConfig{KeepRefreshToken: true}})
	ctoken, info := tb.authorized(t, merchantA)
	for range 3 {
		ans := tb.authorizerToken(t, ctoken, merchantA, info.AuthorizerRefreshToken)
		require.Zero(t, ans.ErrCode, ans.ErrMsg)
		require.Equal(t, info.AuthorizerRefreshToken, ans.AuthorizerRefreshToken)
	}
}

func TestLostAuthorizerTokenAnswerLosesTheMerchant(t *testing.T) {
	tb, _ := componentSetup(t, Config{})
	ctoken, info := tb.authorized(t, merchantA)
	require.NoError(t, tb.sim.SetFaults(Faults{AppID: compApp, ResetAfterIssueRate: 1}))
	_, _, err := tb.send(t, noReuseClient(t), http.MethodPost, pathAuthorizerToken,
		url.Values{"component_access_token": {ctoken}}, "application/json",
		[]byte(`{"component_appid":"`+compApp+`","authorizer_appid":"`+merchantA+`","authorizer_refresh_token":"`+info.AuthorizerRefreshToken+`"}`))
	require.Error(t, err, "the answer is lost")
	require.NoError(t, tb.sim.SetFaults(Faults{AppID: compApp, Clear: true}))
	require.Equal(t, CodeRefreshTokenInvalid, tb.authorizerToken(t, ctoken, merchantA, info.AuthorizerRefreshToken).ErrCode,
		"the refresh token was rotated all the same")
	require.Equal(t, int64(1), tb.stats(t, compApp).AnswersLost)
}

func TestRevocationStopsTheAuthorizersTokens(t *testing.T) {
	tb, rc := componentSetup(t, Config{})
	ctoken, info := tb.authorized(t, merchantA)
	pending := tb.authorize(t, Authorization{AuthorizerAppID: merchantA, Action: ActionUpdateAuthorize})
	for len(rc.events) > 0 {
		<-rc.events
	}

	p := tb.authorize(t, Authorization{AuthorizerAppID: merchantA, Action: ActionRevoke})
	require.True(t, p.Delivered, p.Reply)
	require.Empty(t, p.AuthorizationCode)
	ev := rc.next(t)
	require.Equal(t, callback.Event{AppID: compApp, CreateTime: tb.clock.Now().Unix(), InfoType: callback.InfoTypeUnauthorized, AuthorizerAppID: merchantA}, ev)
	rc.requireClean(t)

	require.Equal(t, CodeInvalidCredential, tb.use(t, info.AuthorizerAccessToken), "the access token dies at once")
	require.Equal(t, CodeNotAuthorized, tb.authorizerToken(t, ctoken, merchantA, info.AuthorizerRefreshToken).ErrCode)
	require.Equal(t, CodeNotAuthorized, tb.authorizerInfo(t, ctoken, merchantA).ErrCode)
	require.Equal(t, CodeAuthCodeInvalid, tb.queryAuth(t, ctoken, pending.AuthorizationCode).ErrCode, "unused codes die too")

	for _, action := range []string{ActionRevoke, ActionUpdateAuthorize} {
		_, err := tb.client.Authorize(t.Context(), Authorization{ComponentAppID: compApp, AuthorizerAppID: merchantA, Action: action})
		require.ErrorContains(t, err, "status 409", action)
	}

	again := tb.authorize(t, Authorization{AuthorizerAppID: merchantA, Action: ActionAuthorize})
	ans := tb.queryAuth(t, ctoken, again.AuthorizationCode)
	require.Zero(t, ans.ErrCode, ans.ErrMsg)
	require.NotEqual(t, info.AuthorizerRefreshToken, ans.AuthorizationInfo.AuthorizerRefreshToken)
	require.Zero(t, tb.use(t, ans.AuthorizationInfo.AuthorizerAccessToken), "authorized again")
	require.Equal(t, int64(1), tb.stats(t, compApp).Pushes[callback.InfoTypeUnauthorized])
}

func TestUpdateAuthorizeChangesTheGrantAndKeepsTheTokens(t *testing.T) {
	tb, rc := componentSetup(t, Config{})
	ctoken, info := tb.authorized(t, merchantA)
	for len(rc.events) > 0 {
		<-rc.events
	}
	p := tb.authorize(t, Authorization{AuthorizerAppID: merchantA, Action: ActionUpdateAuthorize, FuncInfo: []int{1, 2, 3}})
	ev := rc.next(t)
	require.Equal(t, callback.InfoTypeUpdateAuthorized, ev.InfoType)
	require.Equal(t, p.AuthorizationCode, ev.AuthorizationCode)
	require.Zero(t, tb.use(t, info.AuthorizerAccessToken), "tokens issued before the update keep working")

	ans := tb.queryAuth(t, ctoken, p.AuthorizationCode)
	require.Zero(t, ans.ErrCode, ans.ErrMsg)
	require.Equal(t, funcInfos([]int{1, 2, 3}), ans.AuthorizationInfo.FuncInfo)
	require.Equal(t, funcInfos([]int{1, 2, 3}), tb.authorizerInfo(t, ctoken, merchantA).AuthorizationInfo.FuncInfo)
}

func TestGetAuthorizerInfoAnswersBaseInfoAndGrant(t *testing.T) {
	tb, _ := componentSetup(t, Config{})
	ctoken, info := tb.authorized(t, merchantA)

	ans := tb.authorizerInfo(t, ctoken, merchantA)
	require.Zero(t, ans.ErrCode, ans.ErrMsg)
	require.Equal(t, defaultAuthorizerInfo(merchantA), ans.AuthorizerInfo)
	require.Equal(t, AuthorizationInfo{
		AuthorizerAppID: merchantA, AuthorizerRefreshToken: info.AuthorizerRefreshToken, FuncInfo: funcInfos(DefaultFuncInfo),
	}, ans.AuthorizationInfo)
	for _, field := range []string{`"nick_name"`, `"service_type_info":{"id":2}`, `"verify_type_info":{"id":0}`, `"principal_name"`} {
		require.Contains(t, string(ans.Raw["authorizer_info"]), field)
	}
	require.NotContains(t, string(ans.Raw["authorization_info"]), "authorizer_access_token")

	tb.authorize(t, Authorization{AuthorizerAppID: merchantA, Action: ActionUpdateAuthorize, Info: &AuthorizerInfo{
		NickName: "Shop", PrincipalName: "Shop Ltd", ServiceTypeInfo: IDInfo{ID: 0}, VerifyTypeInfo: IDInfo{ID: -1},
	}})
	got := tb.authorizerInfo(t, ctoken, merchantA).AuthorizerInfo
	require.Equal(t, "Shop", got.NickName)
	require.Equal(t, "Shop Ltd", got.PrincipalName)
	require.Equal(t, IDInfo{ID: 0}, got.ServiceTypeInfo)
	require.Equal(t, IDInfo{ID: -1}, got.VerifyTypeInfo)
	require.Equal(t, defaultAuthorizerInfo(merchantA).UserName, got.UserName, "fields not given are kept")

	require.Equal(t, CodeNotAuthorized, tb.authorizerInfo(t, ctoken, merchantB).ErrCode)
	require.Equal(t, CodeMissingAppID, tb.authorizerInfo(t, ctoken, "").ErrCode)
}

func TestAuthorizeRefusesBadRequests(t *testing.T) {
	tb, _ := componentSetup(t, Config{})
	for _, tc := range []struct {
		name   string
		in     Authorization
		status string
	}{
		{"unknown component", Authorization{ComponentAppID: "wx_nobody", AuthorizerAppID: merchantA, Action: ActionAuthorize}, "status 404"},
		{"not a component", Authorization{ComponentAppID: appA, AuthorizerAppID: merchantA, Action: ActionAuthorize}, "status 404"},
		{"unknown action", Authorization{ComponentAppID: compApp, AuthorizerAppID: merchantA, Action: "authorized"}, "status 400"},
		{"no authorizer", Authorization{ComponentAppID: compApp, Action: ActionAuthorize}, "status 400"},
		{"a component authorizing", Authorization{ComponentAppID: compApp, AuthorizerAppID: compApp, Action: ActionAuthorize}, "status 400"},
		{"unknown pre_auth_code", Authorization{ComponentAppID: compApp, AuthorizerAppID: merchantA, Action: ActionAuthorize, PreAuthCode: "x"}, "status 400"},
		{"update without authorization", Authorization{ComponentAppID: compApp, AuthorizerAppID: merchantA, Action: ActionUpdateAuthorize}, "status 409"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tb.client.Authorize(t.Context(), tc.in)
			require.ErrorContains(t, err, tc.status)
		})
	}
	_, err := tb.client.PushVerifyTicket(t.Context(), appA)
	require.ErrorContains(t, err, "status 404")
}

func TestAccountsValidateComponentSettings(t *testing.T) {
	tb := setup(t, Config{Component: ComponentConfig{TicketInterval: -1}})
	t.Cleanup(tb.sim.Close)
	for _, tc := range []struct {
		name string
		in   Account
	}{
		{"not a component", Account{AppID: "wx_c", Kind: KindOfficialAccount, CallbackToken: compToken}},
		{"kind not given", Account{AppID: "wx_c", EncodingAESKey: compKey}},
		{"short key", Account{AppID: "wx_c", Kind: KindComponent, EncodingAESKey: compKey[:42]}},
		{"key not base64", Account{AppID: "wx_c", Kind: KindComponent, EncodingAESKey: compKey[:42] + "!"}},
		{"URL without key", Account{AppID: "wx_c", Kind: KindComponent, CallbackToken: compToken, CallbackURL: "https://example.com/cb"}},
		{"URL without token", Account{AppID: "wx_c", Kind: KindComponent, EncodingAESKey: compKey, CallbackURL: "https://example.com/cb"}},
		{"relative URL", Account{AppID: "wx_c", Kind: KindComponent, CallbackToken: compToken, EncodingAESKey: compKey, CallbackURL: "/cb"}},
		{"ftp URL", Account{AppID: "wx_c", Kind: KindComponent, CallbackToken: compToken, EncodingAESKey: compKey, CallbackURL: "ftp://example.com/cb"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tb.client.AddAccount(t.Context(), tc.in)
			require.ErrorContains(t, err, "status 400")
			require.NotContains(t, err.Error(), compKey[:20], "the key is not echoed")
		})
	}
	require.Len(t, tb.sim.Accounts(), 2, "nothing was created")
}
