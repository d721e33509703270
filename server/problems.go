package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"wxhub/db"
)

// problemTypes gives each kind of error a stable RFC 9457 type, so clients branch on the
// type rather than on wording.
var problemTypes = map[int]string{
	http.StatusBadRequest:            "urn:wxhub:problem:bad-request",
	http.StatusUnauthorized:          "urn:wxhub:problem:unauthorized",
	http.StatusForbidden:             "urn:wxhub:problem:forbidden",
	http.StatusNotFound:              "urn:wxhub:problem:not-found",
	http.StatusMethodNotAllowed:      "urn:wxhub:problem:method-not-allowed",
	http.StatusConflict:              "urn:wxhub:problem:conflict",
	http.StatusPreconditionFailed:    "urn:wxhub:problem:stale-version",
	http.StatusRequestEntityTooLarge: "urn:wxhub:problem:too-large",
	http.StatusUnsupportedMediaType:  "urn:wxhub:problem:unsupported-media-type",
	http.StatusUnprocessableEntity:   "urn:wxhub:problem:validation",
	http.StatusPreconditionRequired:  "urn:wxhub:problem:precondition-required",
	http.StatusTooManyRequests:       "urn:wxhub:problem:rate-limited",
	http.StatusInternalServerError:   "urn:wxhub:problem:internal",
	http.StatusServiceUnavailable:    "urn:wxhub:problem:unavailable",
}

func init() {
	base := huma.NewError
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		se := base(status, msg, errs...)
		if m, ok := se.(*huma.ErrorModel); ok {
			// huma echoes the offending input in each detail; it may be a secret.
			for _, d := range m.Errors {
				d.Value = nil
			}
			m.Type = problemTypes[status]
			if m.Type == "" {
				m.Type = "about:blank"
			}
		}
		return se
	}
}

// writeProblem writes a problem document outside huma (before routing).
func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(huma.NewError(status, detail))
}

// Problem types narrower than their status: why an account's credential cannot be had now.
// Each is described in docs/problems.md.
const (
	problemAccountFailing      = "urn:wxhub:problem:account-failing"
	problemAccountDisabled     = "urn:wxhub:problem:account-disabled"
	problemAccountUnauthorized = "urn:wxhub:problem:account-unauthorized"
	problemQuotaExhausted      = "urn:wxhub:problem:quota-exhausted"
)

// problem is an RFC 9457 document of a kind narrower than its status, with WeChat's errcode
// when WeChat's answer is the reason.
type problem struct {
	Type    string `json:"type"`
	Title   string `json:"title"`
	Status  int    `json:"status"`
	Detail  string `json:"detail"`
	ErrCode int    `json:"errcode,omitempty"`
}

func (p *problem) Error() string  { return p.Detail }
func (p *problem) GetStatus() int { return p.Status }

// ContentType makes huma send the document as application/problem+json.
func (p *problem) ContentType(string) string { return "application/problem+json" }

// cannotRefresh explains, when it can, why no refresh will bring a credential a new value
// soon: the account is disabled or its authorization revoked, WeChat refuses its
// configuration and no retry is due or running, or the day's quota is spent. Waiting for a
// refresh would only end in a 503, so the node answers at once.
func cannotRefresh(c db.CachedCredential, now time.Time) error {
	switch c.AccountStatus {
	case "disabled":
		return &problem{Type: problemAccountDisabled, Title: "Account disabled", Status: http.StatusConflict,
			Detail: fmt.Sprintf("account %s is disabled: its credentials are not refreshed until it is enabled", c.AppID)}
	case "unauthorized":
		return &problem{Type: problemAccountUnauthorized, Title: "Authorization revoked", Status: http.StatusGone,
			Detail: fmt.Sprintf("account %s withdrew its authorization, and its credentials are no longer served: %s; "+
				"a new authorization brings it back", c.AppID, c.StatusReason)}
	case "failing":
		if !c.Refreshing && (c.RefreshAt == nil || c.RefreshAt.After(now)) {
			return &problem{Type: problemAccountFailing, Title: "WeChat refuses the account's configuration",
				Status: http.StatusConflict, ErrCode: c.LastErrorCode,
				Detail: fmt.Sprintf("account %s is failing: %s; fix it (a new secret is tried at once)", c.AppID, c.StatusReason)}
		}
	}
	if c.QuotaSpent(now) {
		wait := int64(c.RefreshAt.Sub(now)/time.Second) + 1
		return huma.ErrorWithHeaders(&problem{Type: problemQuotaExhausted, Title: "Daily quota spent",
			Status: http.StatusServiceUnavailable, ErrCode: c.LastErrorCode,
			Detail: fmt.Sprintf("the %s calls to WeChat for %s of account %s are spent; the next attempt is at %s",
				spentPeriod(c.LastErrorCode), c.Kind, c.AppID, c.RefreshAt.UTC().Format(time.RFC3339))},
			http.Header{"Retry-After": {strconv.FormatInt(wait, 10)}})
	}
	return nil
}

// spentPeriod names the period whose calls a quota code says are spent: WeCom's tickets
// are limited per hour, everything else per day.
func spentPeriod(code int) string {
	if code == db.CodeHourlyGuard {
		return "hour's"
	}
	return "day's"
}
