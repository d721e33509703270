package wechat

import (
	"errors"
	"fmt"
	"strconv"
)

// Error is an answer from WeChat with a non-zero errcode. It records which
// API answered because the same code can mean different things: 40001 is a
// bad secret on the token endpoints but an invalid token on getticket.
type Error struct {
	// API is the endpoint that answered: APIStableToken, APIToken, APIGetTicket
	// or one of WeCom's (APIWeComToken …).
	API string
	// Code is WeChat's errcode.
	Code int
	// Message is WeChat's errmsg (with the call's secrets redacted, should
	// WeChat ever echo them). It is for humans: classify by Code.
	Message string
}

// Error returns e.g. "wechat stable_token: errcode 40125: invalid appsecret".
func (e *Error) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("wechat %s: errcode %d", e.API, e.Code)
	}
	return fmt.Sprintf("wechat %s: errcode %d: %s", e.API, e.Code, e.Message)
}

// Kind is what a refresh worker should do about a failure. The set is kept
// small on purpose: WeChat has hundreds of codes, the worker has a handful of
// reactions, and the mapping lives in one place (Classify) instead of in
// every caller.
type Kind int

// The Kinds. The zero value is deliberately not a Kind, so that a forgotten
// Classify is visible; Classify(nil) returns it.
const (
	// KindTransient: retry with backoff and jitter, keep serving the current
	// token. System busy (-1), per-minute limit (45011), WeCom concurrency
	// limit (45033), network errors, timeouts, cancellation, HTTP errors,
	// malformed answers, and codes this package does not know.
	KindTransient Kind = iota + 1
	// KindConfiguration: the account's appid, secret or IP whitelist is wrong
	// (40001 when fetching a token, 40013, 41002, 40125, 41004, 40164, 61004,
	// 40243, 48001, 89503). Retrying can't help until a human fixes it, and
	// each retry spends quota: mark the account failing and back off long.
	KindConfiguration
	// KindQuota: the daily quota is used up (45009), or for WeCom's tickets
	// the hourly limit. Stop calling until the next quota day (or hour) and
	// keep serving the current token.
	KindQuota
	// KindTokenInvalid: the access token used for the call is invalid or
	// expired (40014, 42001, and 40001 when using a token, as getticket
	// does). Refresh the access token only if it is still the current one
	// (compare-and-refresh), then retry.
	KindTokenInvalid
	// KindRevoked: the account withdrew its authorization from the
	// third-party platform (61003), or the authorizer refresh token no
	// longer works (61023): only a new authorization brings the account back.
	KindRevoked
	// KindWaitForPush: the component verify ticket expired or is invalid
	// (61005, 61006). Nothing to do but wait for WeChat's next push.
	KindWaitForPush
	// KindBug: wxhub sent a request WeChat can't understand (40002 bad
	// grant_type, 40097 invalid args, 41001 missing access token, 43001/43002
	// wrong method, 47001 malformed body) or is misconfigured (an unusable
	// base URL). Retrying sends the same request again: alert.
	KindBug
)

// kindNames are the Kinds' names as they appear in metrics labels and the
// API, so they are fixed strings rather than Go identifiers.
var kindNames = [...]string{
	KindTransient:     "transient",
	KindConfiguration: "configuration",
	KindQuota:         "quota",
	KindTokenInvalid:  "token_invalid",
	KindRevoked:       "revoked",
	KindWaitForPush:   "wait_for_push",
	KindBug:           "bug",
}

// String returns the Kind's label ("transient", "configuration", "quota",
// "token_invalid", "revoked", "wait_for_push", "bug"), or "Kind(n)" for a
// value that is not a Kind.
func (k Kind) String() string {
	if k > 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Classify says what a worker should do about err, which may be wrapped.
//
// For an *Error the answer depends on the API as well as the code: 40001
// is KindConfiguration from the token endpoints (the secret is wrong) and
// KindTokenInvalid from any API that takes an access token. A code this
// package does not know is KindTransient rather than KindBug, so that an
// uncatalogued throttling code doesn't stop an account's refreshes; the code
// stays in the *Error for logs and metrics. Other errors made by this
// package's calls (transport, HTTP status, malformed answer) carry their Kind.
// Anything else — a network error, a timeout, context.DeadlineExceeded or
// context.Canceled, an error from another layer — is KindTransient: nothing
// about it says the account or wxhub is at fault, and a retry with backoff
// is the reaction that keeps serving tokens. Classify(nil) returns 0, which
// is not a Kind.
func Classify(err error) Kind {
	if err == nil {
		return 0
	}
	var we *Error
	if errors.As(err, &we) && we != nil {
		return classifyCode(we.API, we.Code)
	}
	var f *failure
	if errors.As(err, &f) && f != nil {
		return f.kind
	}
	return KindTransient
}

// classifyCode maps WeChat's errcode to a Kind, per the table in docs/wechat.md.
//
// Unknown codes are KindTransient, not KindBug. A code we have not
// catalogued on a credential API is most often a new throttling or
// "system busy" variant, and WeChat adds codes without notice. Calling it a
// bug would stop refreshing the account until a human looked, letting its
// token expire; calling it transient costs one call per backoff step, which
// the quota guard bounds, while the current token keeps being served. The
// code itself stays in the Error for logs and metrics, so an unfamiliar code
// is still visible. The codes that do mean "our request is wrong" are listed
// and classified KindBug.
func classifyCode(api string, code int) Kind {
	switch code {
	case -1, 45011, 45033:
		return KindTransient
	case 40001:
		// 40001 is "invalid credential": on the token endpoints the
		// credential is the AppSecret, everywhere else the access token.
		if api == APIStableToken || api == APIToken || api == APIWeComToken || api == APIComponentToken {
			return KindConfiguration
		}
		return KindTokenInvalid
	case 40013, 41002, // invalid or missing appid
		40125, 41004, // invalid or missing secret
		40164, 61004, // caller IP not whitelisted (old and new code)
		40243, // secret frozen
		48001, // API not authorized
		61011, // not a third-party platform's appid
		61024, // a third-party platform's appid at an account's token endpoint
		89503: // a new IP needs an admin's approval
		return KindConfiguration
	case 45009:
		return KindQuota
	case 40014, 42001:
		return KindTokenInvalid
	case 61005, 61006:
		return KindWaitForPush
	case 61003, // the account no longer authorizes the platform
		61023: // the authorizer refresh token is no longer valid: it must authorize again
		return KindRevoked
	case 61014, 61015: // a token of the wrong kind (component's for an account's API, or the reverse)
		return KindBug
	case 40002, 40097, 41001, 43001, 43002, 47001:
		return KindBug
	default:
		return KindTransient
	}
}
