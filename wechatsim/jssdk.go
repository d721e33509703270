package wechatsim

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// JSSDKCheck is a JS-SDK signature to verify, as posted to
// /sim/verify-jssdk: what a page passes to wx.config, the page's URL and the
// appid whose jsapi ticket it claims to be made with.
type JSSDKCheck struct {
	AppID     string `json:"appid"`
	URL       string `json:"url"`
	NonceStr  string `json:"noncestr"`
	Timestamp int64  `json:"timestamp"` // seconds, a JSON number
	Signature string `json:"signature"`
	// Ticket picks a WeCom app's ticket: "jsapi" or empty for the corp's
	// jsapi ticket (wx.config), "agent_config" for the app's own
	// (wx.agentConfig). Other kinds have only their jsapi ticket.
	Ticket string `json:"ticket,omitempty"`
}

// Reasons /sim/verify-jssdk gives for a signature it refuses. Tests in other
// packages compare against these.
const (
	JSSDKReasonUnknownAppID     = "unknown appid"
	JSSDKReasonNoTicket         = "no jsapi ticket was ever issued to this appid"
	JSSDKReasonTicketSuperseded = "made with a jsapi ticket that was superseded and is no longer live"
	JSSDKReasonTicketExpired    = "made with a jsapi ticket that has expired"
	JSSDKReasonWxCardTicket     = "made with a wx_card ticket; the JS-SDK needs a jsapi ticket"
	JSSDKReasonNoMatch          = "matches no jsapi ticket of this appid"
)

// jssdkVerdict is the answer of /sim/verify-jssdk.
type jssdkVerdict struct {
	Valid  bool   `json:"valid"`
	Reason string `json:"reason,omitempty"`
}

// VerifyJSSDK reports whether r.Signature was made, for r's URL, nonce and
// timestamp, with a jsapi ticket of r.AppID that is live at this instant
// (current, or superseded but within its deadline), and if not, why. It
// counts the verdict in the account's stats, as POST /sim/verify-jssdk does.
func (s *Simulator) VerifyJSSDK(r JSSDKCheck) (valid bool, reason string) {
	wd := s.world.Load()
	a := wd.account(r.AppID)
	if a == nil {
		wd.orphan.jssdk(false)
		return false, JSSDKReasonUnknownAppID
	}
	if a.wecomState() != nil {
		valid, reason = s.verifyWeComJSSDK(a, r, s.now())
	} else {
		valid, reason = a.verifyJSSDK(r, s.now())
	}
	a.stats.jssdk(valid)
	return valid, reason
}

// verifyJSSDK looks for the ticket r was signed with among the account's
// remembered tickets, newest first, and judges it at instant now.
func (a *account) verifyJSSDK(r JSSDKCheck, now time.Time) (bool, string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.everTicket[ticketJSAPI] {
		return false, JSSDKReasonNoTicket
	}
	for i := len(a.ticketHistory) - 1; i >= 0; i-- {
		t := a.ticketHistory[i]
		if jssdkSignature(t.value, r.NonceStr, r.Timestamp, r.URL) != r.Signature {
			continue
		}
		if t.typ != ticketJSAPI {
			return false, JSSDKReasonWxCardTicket
		}
		switch t.status(now) {
		case CodeOK:
			return true, ""
		case CodeInvalidCredential:
			return false, JSSDKReasonTicketSuperseded
		default:
			return false, JSSDKReasonTicketExpired
		}
	}
	return false, JSSDKReasonNoMatch
}

// jssdkSignature is WeChat's JS-SDK signature: the SHA-1, in lowercase hex,
// of jsapi_ticket=…&noncestr=…&timestamp=…&url=… (keys in ASCII order,
// values raw, not escaped), with the page URL cut at its #fragment.
func jssdkSignature(ticket, nonceStr string, timestamp int64, pageURL string) string {
	pageURL, _, _ = strings.Cut(pageURL, "#")
	sum := sha1.Sum([]byte("jsapi_ticket=" + ticket +
		"&noncestr=" + nonceStr +
		"&timestamp=" + strconv.FormatInt(timestamp, 10) +
		"&url=" + pageURL))
	return hex.EncodeToString(sum[:])
}

// handleSimVerifyJSSDK serves POST /sim/verify-jssdk: 200 with
// {"valid":true} or {"valid":false,"reason":…}, or 400 for a body that is
// not a complete JSSDKCheck.
func (s *Simulator) handleSimVerifyJSSDK(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	var in struct {
		JSSDKCheck
		// Timestamp shadows the embedded field, so that a missing timestamp
		// is refused instead of being read as 0.
		Timestamp *int64 `json:"timestamp"`
	}
	if err := decodeJSONBody(w, r, &in); err != nil {
		writeSimError(w, http.StatusBadRequest, "wechatsim: verify-jssdk wants a JSON object: "+err.Error())
		return
	}
	if err := requireComplete(in.JSSDKCheck, in.Timestamp != nil); err != nil {
		writeSimError(w, http.StatusBadRequest, err.Error())
		return
	}
	in.JSSDKCheck.Timestamp = *in.Timestamp
	valid, reason := s.VerifyJSSDK(in.JSSDKCheck)
	writeJSON(w, http.StatusOK, jssdkVerdict{Valid: valid, Reason: reason})
}

// requireComplete names the fields of a posted check that are absent or
// empty: a check without them is a bug in the test, not a signature to refuse.
func requireComplete(r JSSDKCheck, hasTimestamp bool) error {
	var names []string
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"appid", r.AppID != ""},
		{"url", r.URL != ""},
		{"noncestr", r.NonceStr != ""},
		{"timestamp", hasTimestamp},
		{"signature", r.Signature != ""},
	} {
		if !f.ok {
			names = append(names, f.name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("wechatsim: verify-jssdk: missing %s", strings.Join(names, ", "))
}
