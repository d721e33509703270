package callback_test

import (
	"crypto/rand"
	"testing"

	"github.com/stretchr/testify/require"

	"wxhub/wechat/callback"
)

func TestParseEnvelopeReadsAppIdOrToUserName(t *testing.T) {
	for name, tc := range map[string]struct {
		body  string
		appID string
	}{
		"AppId":        {`<xml><AppId><![CDATA[wxcomponent]]></AppId><Encrypt><![CDATA[ENC]]></Encrypt></xml>`, "wxcomponent"},
		"plain text":   {"<xml>\n  <AppId>wxcomponent</AppId>\n  <Encrypt>ENC</Encrypt>\n</xml>", "wxcomponent"},
		"ToUserName":   {`<xml><ToUserName><![CDATA[wxcomponent]]></ToUserName><Encrypt><![CDATA[ENC]]></Encrypt></xml>`, "wxcomponent"},
		"AppId wins":   {`<xml><ToUserName>gh_x</ToUserName><AppId>wxcomponent</AppId><Encrypt>ENC</Encrypt></xml>`, "wxcomponent"},
		"extra fields": {`<xml><AppId>wxcomponent</AppId><MsgType>event</MsgType><Encrypt>ENC</Encrypt></xml>`, "wxcomponent"},
	} {
		t.Run(name, func(t *testing.T) {
			env, err := callback.ParseEnvelope([]byte(tc.body))
			require.NoError(t, err)
			require.Equal(t, callback.Envelope{AppID: tc.appID, Encrypt: "ENC"}, env)
		})
	}
}

func TestParseEnvelopeRefusesIncompleteBodies(t *testing.T) {
	for name, body := range map[string]string{
		"empty":          ``,
		"not XML":        `{"AppId":"wx","Encrypt":"ENC"}`,
		"other root":     `<msg><AppId>wx</AppId><Encrypt>ENC</Encrypt></msg>`,
		"no Encrypt":     `<xml><AppId>wx</AppId></xml>`,
		"empty Encrypt":  `<xml><AppId>wx</AppId><Encrypt></Encrypt></xml>`,
		"no appid":       `<xml><Encrypt>ENC</Encrypt></xml>`,
		"unclosed":       `<xml><AppId>wx</AppId><Encrypt>ENC</Encrypt>`,
		"mismatched tag": `<xml><AppId>wx</AppID><Encrypt>ENC</Encrypt></xml>`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := callback.ParseEnvelope([]byte(body))
			require.ErrorIs(t, err, callback.ErrMalformed)
		})
	}
}

func TestEnvelopeMarshalRoundTrips(t *testing.T) {
	env := callback.Envelope{AppID: "wxcomponent", Encrypt: javaCipher}
	b := env.Marshal()
	require.Equal(t, `<xml><AppId><![CDATA[wxcomponent]]></AppId><Encrypt><![CDATA[`+javaCipher+`]]></Encrypt></xml>`, string(b))
	got, err := callback.ParseEnvelope(b)
	require.NoError(t, err)
	require.Equal(t, env, got)
}

func TestParseEventReadsWeChatsExamples(t *testing.T) {
	// The examples of WeChat's open-platform documentation for the verify
	// ticket and the authorization events (values made concrete).
	for name, tc := range map[string]struct {
		xml  string
		want callback.Event
	}{
		"verify ticket": {
			"<xml>\n<AppId>wxcomponent</AppId>\n<CreateTime>1413192605</CreateTime>\n<InfoType>component_verify_ticket</InfoType>\n<ComponentVerifyTicket>ticket@@@abc</ComponentVerifyTicket>\n</xml>",
			callback.Event{AppID: "wxcomponent", CreateTime: 1413192605, InfoType: callback.InfoTypeVerifyTicket, ComponentVerifyTicket: "ticket@@@abc"},
		},
		"authorized": {
			`<xml><AppId><![CDATA[wxcomponent]]></AppId><CreateTime>1413192760</CreateTime><InfoType><![CDATA[authorized]]></InfoType><AuthorizerAppid><![CDATA[wxmerchant]]></AuthorizerAppid><AuthorizationCode><![CDATA[queryauthcode@@@x]]></AuthorizationCode><AuthorizationCodeExpiredTime>1413196360</AuthorizationCodeExpiredTime><PreAuthCode><![CDATA[preauthcode@@@y]]></PreAuthCode></xml>`,
			callback.Event{AppID: "wxcomponent", CreateTime: 1413192760, InfoType: callback.InfoTypeAuthorized, AuthorizerAppID: "wxmerchant", AuthorizationCode: "queryauthcode@@@x", AuthorizationCodeExpiredTime: 1413196360, PreAuthCode: "preauthcode@@@y"},
		},
		"updateauthorized": {
			`<xml><AppId>wxcomponent</AppId><CreateTime>1413192760</CreateTime><InfoType>updateauthorized</InfoType><AuthorizerAppid>wxmerchant</AuthorizerAppid><AuthorizationCode>code</AuthorizationCode><AuthorizationCodeExpiredTime>1413196360</AuthorizationCodeExpiredTime></xml>`,
			callback.Event{AppID: "wxcomponent", CreateTime: 1413192760, InfoType: callback.InfoTypeUpdateAuthorized, AuthorizerAppID: "wxmerchant", AuthorizationCode: "code", AuthorizationCodeExpiredTime: 1413196360},
		},
		"unauthorized": {
			`<xml><AppId>wxcomponent</AppId><CreateTime>1413192760</CreateTime><InfoType>unauthorized</InfoType><AuthorizerAppid>wxmerchant</AuthorizerAppid></xml>`,
			callback.Event{AppID: "wxcomponent", CreateTime: 1413192760, InfoType: callback.InfoTypeUnauthorized, AuthorizerAppID: "wxmerchant"},
		},
		"another InfoType": {
			`<xml><AppId>wxcomponent</AppId><CreateTime>1</CreateTime><InfoType>notify_third_fasteregister</InfoType></xml>`,
			callback.Event{AppID: "wxcomponent", CreateTime: 1, InfoType: "notify_third_fasteregister"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := callback.ParseEvent([]byte(tc.xml))
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
			again, err := callback.ParseEvent(got.Marshal())
			require.NoError(t, err)
			require.Equal(t, tc.want, again)
		})
	}
}

func TestParseEventRefusesEventsWithoutTheirFields(t *testing.T) {
	for name, body := range map[string]string{
		"not XML":                  `component_verify_ticket`,
		"other root":               `<event><AppId>wx</AppId><InfoType>unauthorized</InfoType></event>`,
		"no AppId":                 `<xml><InfoType>component_verify_ticket</InfoType><ComponentVerifyTicket>t</ComponentVerifyTicket></xml>`,
		"no InfoType":              `<xml><AppId>wx</AppId></xml>`,
		"ticket without ticket":    `<xml><AppId>wx</AppId><InfoType>component_verify_ticket</InfoType></xml>`,
		"authorized without code":  `<xml><AppId>wx</AppId><InfoType>authorized</InfoType><AuthorizerAppid>m</AuthorizerAppid></xml>`,
		"update without code":      `<xml><AppId>wx</AppId><InfoType>updateauthorized</InfoType><AuthorizerAppid>m</AuthorizerAppid></xml>`,
		"authorized without appid": `<xml><AppId>wx</AppId><InfoType>authorized</InfoType><AuthorizationCode>c</AuthorizationCode></xml>`,
		"unauthorized no appid":    `<xml><AppId>wx</AppId><InfoType>unauthorized</InfoType></xml>`,
		"bad CreateTime":           `<xml><AppId>wx</AppId><CreateTime>soon</CreateTime><InfoType>unauthorized</InfoType><AuthorizerAppid>m</AuthorizerAppid></xml>`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := callback.ParseEvent([]byte(body))
			require.ErrorIs(t, err, callback.ErrMalformed)
		})
	}
}

func TestEventSealedAndOpenedEndToEnd(t *testing.T) {
	k := mustKey(t, currentEncodingAESKey)
	ev := callback.Event{AppID: "wxcomponent", CreateTime: 1700000000, InfoType: callback.InfoTypeVerifyTicket, ComponentVerifyTicket: "ticket@@@<&>]]>"}
	enc, err := callback.Encrypt(k, ev.AppID, ev.Marshal(), rand.Reader)
	require.NoError(t, err)
	body := callback.Envelope{AppID: ev.AppID, Encrypt: enc}.Marshal()
	sig := callback.Signature("token", "1700000000", "nonce", enc)

	env, err := callback.ParseEnvelope(body)
	require.NoError(t, err)
	require.True(t, callback.VerifySignature("token", "1700000000", "nonce", env.Encrypt, sig))
	plain, err := callback.Decrypt([]callback.Key{k}, env.AppID, env.Encrypt)
	require.NoError(t, err)
	got, err := callback.ParseEvent(plain)
	require.NoError(t, err)
	require.Equal(t, ev, got)
}
