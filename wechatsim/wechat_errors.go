package wechatsim

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"time"
)

// WeChat error codes the simulator answers. Tests in other packages compare
// against these rather than bare numbers.
const (
	CodeOK                 = 0
	CodeBusy               = -1    // system busy: transient
	CodeInvalidCredential  = 40001 // token invalid or superseded; bad secret on stable_token
	CodeInvalidGrantType   = 40002
	CodeInvalidMediaType   = 40004
	CodeInvalidMediaSize   = 40006
	CodeInvalidMediaID     = 40007
	CodeInvalidAppID       = 40013
	CodeInvalidAccessToken = 40014 // token invalid; WeCom may say it for an expired one
	CodeInvalidArgs        = 40097
	CodeInvalidSecret      = 40125
	CodeIPNotWhitelisted   = 40164
	CodeSecretFrozen       = 40243
	CodeMissingAccessToken = 41001
	CodeMissingAppID       = 41002
	CodeMissingMedia       = 41005
	CodeMissingSecret      = 41004
	CodeTokenExpired       = 42001
	CodeRequireGET         = 43001
	CodeRequirePOST        = 43002
	CodeQuotaExceeded      = 45009
	CodeMinuteQuota        = 45011 // per-minute limit: retry next minute
	CodeDataFormat         = 47001
	CodeAPIUnauthorized    = 48001
	CodeClearQuotaLimit    = 48006
	CodeIPNotRegistered    = 61004 // older code for a caller outside the IP whitelist
	CodeCGIPathNotFound    = 76021
	CodeNeedsAdminApproval = 89503 // a call from a new IP waits for an admin's approval
)

// errMessages imitates WeChat's errmsg texts closely enough that log-reading
// humans and message-sniffing clients see what they would see in production.
var errMessages = map[int]string{
	CodeBusy:               "system error",
	CodeInvalidCredential:  "invalid credential, access_token is invalid or not latest",
	CodeInvalidGrantType:   "invalid grant_type",
	CodeInvalidMediaType:   "invalid media type",
	CodeInvalidMediaSize:   "invalid meida size",
	CodeInvalidMediaID:     "invalid media_id",
	CodeInvalidAppID:       "invalid appid",
	CodeInvalidAccessToken: "invalid access_token",
	CodeInvalidArgs:        "invalid args",
	CodeInvalidSecret:      "invalid appsecret",
	CodeSecretFrozen:       "appsecret is frozen, unfreeze it on the platform and try again",
	CodeMissingAccessToken: "access_token missing",
	CodeMissingAppID:       "appid missing",
	CodeMissingMedia:       "media data missing",
	CodeMissingSecret:      "appsecret missing",
	CodeTokenExpired:       "access_token expired",
	CodeRequireGET:         "require GET method",
	CodeRequirePOST:        "require POST method",
	CodeQuotaExceeded:      "reach max api daily quota limit",
	CodeMinuteQuota:        "api minute-quota reach limit mustslower retry next minute",
	CodeDataFormat:         "data format error",
	CodeAPIUnauthorized:    "api unauthorized",
	CodeClearQuotaLimit:    "forbid to clear quota because of reaching the limit",
	CodeIPNotRegistered:    "access clientip is not registered",
	CodeCGIPathNotFound:    "cgi_path not found, please check",
	CodeNeedsAdminApproval: "this call needs an administrator's approval, please wait",

	// The third-party platform's codes (see component.go).
	CodeNotAuthorized:        "component is not authorized by this account",
	CodeTicketExpired:        "component ticket is expired",
	CodeTicketInvalid:        "component ticket is invalid",
	CodeAuthCodeInvalid:      "code is invalid",
	CodeAuthCodeExpired:      "code is expired",
	CodeInvalidComponent:     "invalid component",
	CodeNeedsComponentToken:  "must use component token for component api",
	CodeNeedsAccountToken:    "must use biz account token for not component api",
	CodeRefreshTokenInvalid:  "refresh_token is invalid",
	CodeUseComponentTokenAPI: "must use api(api_component_token) to get token for component acct",
}

// ErrorBody is WeChat's error answer.
type ErrorBody struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// errorBody builds WeChat's answer for code, with a request id appended as
// WeChat does ("invalid appid rid: 6579a2b3-…"). 40164 names the caller's IP.
func errorBody(code int, r *http.Request, now time.Time) ErrorBody {
	msg := errMessages[code]
	if code == CodeIPNotWhitelisted {
		ip := clientIP(r)
		msg = fmt.Sprintf("invalid ip %s ipv6 ::ffff:%s, not in whitelist", ip, ip)
	}
	if msg == "" {
		msg = "error"
	}
	return ErrorBody{ErrCode: code, ErrMsg: msg + " rid: " + newRID(now)}
}

// newRID makes a request id shaped like WeChat's. It is not a secret, so a
// fast concurrent-safe PRNG is enough.
func newRID(now time.Time) string {
	return fmt.Sprintf("%08x-%08x-%08x", uint32(now.Unix()), rand.Uint32(), rand.Uint32())
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// okBody is WeChat's success envelope for APIs that include one.
type okBody struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

var okEnvelope = okBody{ErrCode: 0, ErrMsg: "ok"}

// writeJSON answers with WeChat's content type. WeChat answers errors with
// HTTP 200 as well, so status is 200 for every WeChat endpoint.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; encoding=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// simError is the error body of the simulator-only endpoints.
type simError struct {
	Error string `json:"error"`
}

func writeSimError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, simError{Error: msg})
}
