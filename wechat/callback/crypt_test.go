package callback_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"wxhub/wechat/callback"
)

// WeChat's sample code for message encryption (消息加解密, 2014, the
// WXBizMsgCrypt download linked from the official-account and open-platform
// documentation) ships these vectors. The Java sample's WXBizMsgCryptTest
// encrypts two messages with the fixed random prefix "aaaabbbbccccdddd"; the
// Python sample's Sample.py decrypts one message pushed by WeChat and checks
// its msg_signature. Copies of both files are public, e.g.
// github.com/Wyl015/wuyiling (work-test/src/main/resources/Utils/aes/WXBizMsgCryptTest.java)
// and github.com/charlesXu86/Chatbot_CN (Chatbot_Web/impl/weixin/Sample.py).
const (
	sampleEncodingAESKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

	javaAppID   = "wxb11529c136998cb6"
	javaRandom  = "aaaabbbbccccdddd"
	javaMsg     = "我是中文abcd123"
	javaCipher  = "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
	javaMsg2    = "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA[eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]></Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>"
	javaCipher2 = "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0GaUzpkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAYxr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44YfeEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb"

	pyToken     = "spamtest"
	pyTimestamp = "1409735669"
	pyNonce     = "1320562132"
	pyAppID     = "wx2c2769f8efd9abc2"
	pySignature = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
	pyBody      = `<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName><FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName><CreateTime>1409735668</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[abcdteT]]></Content><MsgId>6054768590064713728</MsgId><Encrypt><![CDATA[hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=]]></Encrypt></xml>`
)

// Two more keys for rotation tests, made up for these tests.
const (
	currentEncodingAESKey  = "Zm9yIHRlc3RzIG9ubHk6IHRoZSBjdXJyZW50IGtleSE"
	previousEncodingAESKey = "dGhlIHByZXZpb3VzIGtleSwgYWxzbyBmb3IgdGVzdHM"
)

func mustKey(t testing.TB, s string) callback.Key {
	t.Helper()
	k, err := callback.ParseKey(s)
	require.NoError(t, err)
	return k
}

func TestParseKeyDecodesWeChatsSampleKey(t *testing.T) {
	k := mustKey(t, sampleEncodingAESKey)
	want, err := base64.StdEncoding.DecodeString(sampleEncodingAESKey + "=")
	require.NoError(t, err)
	require.Equal(t, want, k[:])
}

func TestParseKeyRejectsAnythingButFortyThreeBase64Characters(t *testing.T) {
	for name, s := range map[string]string{
		"empty":         "",
		"42 characters": sampleEncodingAESKey[:42],
		"44 characters": sampleEncodingAESKey + "H",
		"with padding":  sampleEncodingAESKey[:42] + "=",
		"not base64":    sampleEncodingAESKey[:42] + "!",
		"line break":    sampleEncodingAESKey[:21] + "\n" + sampleEncodingAESKey[22:],
		"space":         sampleEncodingAESKey[:42] + " ",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := callback.ParseKey(s)
			require.ErrorIs(t, err, callback.ErrBadKey)
			if s != "" {
				require.NotContains(t, err.Error(), s, "the key must not appear in errors")
			}
		})
	}
}

func TestKeyIsRedactedWhenFormatted(t *testing.T) {
	k := mustKey(t, sampleEncodingAESKey)
	for _, verb := range []string{"%v", "%s", "%x", "%X", "%#v", "%q", "%+v"} {
		out := fmt.Sprintf(verb, k)
		require.NotContains(t, strings.ToLower(out), hex.EncodeToString(k[:4]), verb)
		require.NotContains(t, out, "abcdefghijklmnopqrstuvwxyz"[:8], verb)
	}
}

func TestEncryptReproducesWeChatsJavaSample(t *testing.T) {
	k := mustKey(t, sampleEncodingAESKey)
	for _, tc := range []struct{ msg, want string }{{javaMsg, javaCipher}, {javaMsg2, javaCipher2}} {
		got, err := callback.Encrypt(k, javaAppID, []byte(tc.msg), strings.NewReader(javaRandom))
		require.NoError(t, err)
		require.Equal(t, tc.want, got)
		msg, err := callback.Decrypt([]callback.Key{k}, javaAppID, tc.want)
		require.NoError(t, err)
		require.Equal(t, tc.msg, string(msg))
	}
}

func TestDecryptReadsWeChatsPythonSample(t *testing.T) {
	env, err := callback.ParseEnvelope([]byte(pyBody))
	require.NoError(t, err)
	require.Equal(t, "gh_10f6c3c3ac5a", env.AppID, "ToUserName stands in for AppId")
	require.True(t, callback.VerifySignature(pyToken, pyTimestamp, pyNonce, env.Encrypt, pySignature))
	require.Equal(t, pySignature, callback.Signature(pyToken, pyTimestamp, pyNonce, env.Encrypt))

	msg, err := callback.Decrypt([]callback.Key{mustKey(t, sampleEncodingAESKey)}, pyAppID, env.Encrypt)
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(msg, []byte("<xml>")), "%q", msg)
	require.Contains(t, string(msg), "gh_10f6c3c3ac5a")
}

func TestEncryptDecryptRoundTripEveryPaddingLength(t *testing.T) {
	k := mustKey(t, currentEncodingAESKey)
	for _, appID := range []string{"wx0123456789abcdef", "x", "wx" + strings.Repeat("9", 30)} {
		for n := 0; n <= 3*32; n++ {
			msg := bytes.Repeat([]byte{byte('a' + n%26)}, n)
			enc, err := callback.Encrypt(k, appID, msg, rand.Reader)
			require.NoError(t, err)
			ct, err := base64.StdEncoding.DecodeString(enc)
			require.NoError(t, err)
			require.Zero(t, len(ct)%32, "padded to 32-byte blocks")
			require.GreaterOrEqual(t, len(ct), 16+4+n+len(appID)+1)
			got, err := callback.Decrypt([]callback.Key{k}, appID, enc)
			require.NoError(t, err, "msg of %d bytes, appid %q", n, appID)
			require.Equal(t, msg, append([]byte{}, got...))
		}
	}
}

func TestEncryptUsesTheRandomPrefix(t *testing.T) {
	k := mustKey(t, currentEncodingAESKey)
	a, err := callback.Encrypt(k, javaAppID, []byte("same"), rand.Reader)
	require.NoError(t, err)
	b, err := callback.Encrypt(k, javaAppID, []byte("same"), rand.Reader)
	require.NoError(t, err)
	require.NotEqual(t, a, b)

	_, err = callback.Encrypt(k, javaAppID, []byte("x"), strings.NewReader("short"))
	require.Error(t, err, "a random source that runs dry")
	_, err = callback.Encrypt(k, "", []byte("x"), rand.Reader)
	require.ErrorIs(t, err, callback.ErrWrongAppID)
}

func TestDecryptTriesThePreviousKey(t *testing.T) {
	cur, prev := mustKey(t, currentEncodingAESKey), mustKey(t, previousEncodingAESKey)
	old, err := callback.Encrypt(prev, javaAppID, []byte("sealed with the previous key"), rand.Reader)
	require.NoError(t, err)
	recent, err := callback.Encrypt(cur, javaAppID, []byte("sealed with the current key"), rand.Reader)
	require.NoError(t, err)

	msg, err := callback.Decrypt([]callback.Key{cur, prev}, javaAppID, old)
	require.NoError(t, err)
	require.Equal(t, "sealed with the previous key", string(msg))
	msg, err = callback.Decrypt([]callback.Key{cur, prev}, javaAppID, recent)
	require.NoError(t, err)
	require.Equal(t, "sealed with the current key", string(msg))

	_, err = callback.Decrypt([]callback.Key{cur}, javaAppID, old)
	require.ErrorIs(t, err, callback.ErrMalformed, "once the previous key is dropped")
	_, err = callback.Decrypt(nil, javaAppID, recent)
	require.ErrorIs(t, err, callback.ErrBadKey)
}

func TestDecryptRefusesAnotherAppID(t *testing.T) {
	k := mustKey(t, currentEncodingAESKey)
	enc, err := callback.Encrypt(k, "wx1111111111111111", []byte("for another platform"), rand.Reader)
	require.NoError(t, err)
	for _, appID := range []string{"wx2222222222222222", "wx111111111111111", "wx11111111111111111", "1", ""} {
		_, err := callback.Decrypt([]callback.Key{k}, appID, enc)
		require.ErrorIs(t, err, callback.ErrWrongAppID, "appid %q", appID)
	}
}

func TestDecryptRefusesTamperedTruncatedAndGarbageInput(t *testing.T) {
	k := mustKey(t, currentEncodingAESKey)
	enc, err := callback.Encrypt(k, javaAppID, []byte("<xml><InfoType>component_verify_ticket</InfoType></xml>"), rand.Reader)
	require.NoError(t, err)
	ct, err := base64.StdEncoding.DecodeString(enc)
	require.NoError(t, err)
	short, err := callback.Encrypt(k, javaAppID, []byte("short"), rand.Reader)
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(short, "=="), "64 bytes of ciphertext end in padding")
	b64 := base64.StdEncoding.EncodeToString

	cases := map[string]string{
		"empty":                "",
		"not base64":           "this is not base64!",
		"unpadded base64":      strings.TrimRight(short, "="),
		"non-canonical base64": b64(make([]byte, 32))[:42] + "B=",
		"line break":           enc[:20] + "\n" + enc[20:],
		"truncated by a byte":  b64(ct[:len(ct)-1]),
		"truncated by a block": b64(ct[:len(ct)-16]),
		"truncated to 32":      b64(ct[:32]),
		"zero bytes":           b64(make([]byte, 64)),
		"one AES block":        b64(ct[:16]),
		"extended by a block":  b64(append(append([]byte{}, ct...), ct[:32]...)),
	}
	// Any change in the last two AES blocks garbles the padding or the
	// appid. (CBC has no integrity: a change further up can turn into a
	// different msg, which is why receivers verify msg_signature first.)
	for i := len(ct) - 32; i < len(ct); i++ {
		bad := append([]byte{}, ct...)
		bad[i] ^= 0x01
		cases[fmt.Sprintf("bit flipped in byte %d", i)] = b64(bad)
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			msg, err := callback.Decrypt([]callback.Key{k}, javaAppID, in)
			require.Error(t, err)
			require.Nil(t, msg)
			require.True(t, errorsIsOneOf(err, callback.ErrMalformed, callback.ErrWrongAppID), "%v", err)
			require.NotContains(t, err.Error(), "component_verify_ticket", "no plaintext in errors")
			require.NotContains(t, err.Error(), currentEncodingAESKey)
		})
	}
}

func TestSignatureIsSortedConcatenationSHA1(t *testing.T) {
	// sha1("1409735669" + "1320562132" + "spamtest" + "x") sorted: the
	// digits sort before the letters.
	require.Equal(t, callback.Signature("spamtest", "1409735669", "1320562132", "x"),
		callback.Signature("x", "1320562132", "spamtest", "1409735669"))
	sig := callback.Signature(pyToken, pyTimestamp, pyNonce, "enc")
	require.Len(t, sig, 40)
	require.True(t, callback.VerifySignature(pyToken, pyTimestamp, pyNonce, "enc", sig))
	for _, bad := range []string{"", strings.ToUpper(sig), sig[:39], sig + "0", strings.Repeat("0", 40)} {
		require.False(t, callback.VerifySignature(pyToken, pyTimestamp, pyNonce, "enc", bad), bad)
	}
	require.False(t, callback.VerifySignature("other token", pyTimestamp, pyNonce, "enc", sig))
	require.False(t, callback.VerifySignature(pyToken, pyTimestamp, pyNonce, "enc2", sig))
}
