package wechatsim

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestJSSDKSignatureMatchesWeChatsVector(t *testing.T) {
	const ticket = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
	const want = "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
	tests := []struct {
		name string
		url  string
	}{
		{name: "WeChat's vector", url: "http://mp.weixin.qq.com?params=value"},
		{name: "the fragment is not signed", url: "http://mp.weixin.qq.com?params=value#/cart?step=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, want, jssdkSignature(ticket, "Wm3WZYTPz0wzccnW", 1414587457, tt.url))
		})
	}
}

func TestVerifyJSSDKAcceptsOnlyLiveJSAPITickets(t *testing.T) {
	tests := []struct {
		name       string
		check      func(t *testing.T, tb *testBundle, tok string) JSSDKCheck
		wantReason string // empty: valid
	}{
		{name: "current ticket", check: func(t *testing.T, tb *testBundle, tok string) JSSDKCheck {
			return signed(appA, tb.mustTicket(t, tok, TicketJSAPI))
		}},
		{name: "page URL with a fragment", check: func(t *testing.T, tb *testBundle, tok string) JSSDKCheck {
			c := signed(appA, tb.mustTicket(t, tok, TicketJSAPI))
			c.URL += "#/detail"
			return c
		}},
		{name: "superseded ticket within the overlap", check: func(t *testing.T, tb *testBundle, tok string) JSSDKCheck {
			c := signed(appA, tb.mustTicket(t, tok, TicketJSAPI))
			tb.mustTicket(t, tok, TicketJSAPI)
			tb.clock.Add(299 * time.Second)
			return c
		}},
		{name: "superseded ticket past the overlap", wantReason: JSSDKReasonTicketSuperseded, check: func(t *testing.T, tb *testBundle, tok string) JSSDKCheck {
			c := signed(appA, tb.mustTicket(t, tok, TicketJSAPI))
			tb.mustTicket(t, tok, TicketJSAPI)
			tb.clock.Add(300 * time.Second)
			return c
		}},
		{name: "ticket killed by a third fetch", wantReason: JSSDKReasonTicketSuperseded, check: func(t *testing.T, tb *testBundle, tok string) JSSDKCheck {
			c := signed(appA, tb.mustTicket(t, tok, TicketJSAPI))
			tb.mustTicket(t, tok, TicketJSAPI)
			tb.mustTicket(t, tok, TicketJSAPI)
			return c
		}},
		{name: "expired ticket", wantReason: JSSDKReasonTicketExpired, check: func(t *testing.T, tb *testBundle, tok string) JSSDKCheck {
			c := signed(appA, tb.mustTicket(t, tok, TicketJSAPI))
			tb.clock.Add(7200 * time.Second)
			return c
		}},
		{name: "wx_card fetches do not supersede jsapi tickets", check: func(t *testing.T, tb *testBundle, tok string) JSSDKCheck {
			c := signed(appA, tb.mustTicket(t, tok, TicketJSAPI))
			for range 3 {
				tb.mustTicket(t, tok, TicketWxCard)
			}
			return c
		}},
		{name: "signed with a wx_card ticket", wantReason: JSSDKReasonWxCardTicket, check: func(t *testing.T, tb *testBundle, tok string) JSSDKCheck {
			tb.mustTicket(t, tok, TicketJSAPI)
			return signed(appA, tb.mustTicket(t, tok, TicketWxCard))
		}},
		{name: "no jsapi ticket issued", wantReason: JSSDKReasonNoTicket, check: func(t *testing.T, tb *testBundle, tok string) JSSDKCheck {
			return signed(appA, tb.mustTicket(t, tok, TicketWxCard))
		}},
		{name: "another appid's ticket", wantReason: JSSDKReasonNoMatch, check: func(t *testing.T, tb *testBundle, tok string) JSSDKCheck {
			tb.mustTicket(t, tok, TicketJSAPI)
			return signed(appA, tb.mustTicket(t, tb.mustToken(t, appB, secretB), TicketJSAPI))
		}},
		{name: "unknown appid", wantReason: JSSDKReasonUnknownAppID, check: func(t *testing.T, tb *testBundle, tok string) JSSDKCheck {
			return signed("wx_nobody", tb.mustTicket(t, tok, TicketJSAPI))
		}},
		{name: "signed for another URL", wantReason: JSSDKReasonNoMatch, check: func(t *testing.T, tb *testBundle, tok string) JSSDKCheck {
			c := signed(appA, tb.mustTicket(t, tok, TicketJSAPI))
			c.URL = "https://example.com/other"
			return c
		}},
		{name: "signed with the fragment", wantReason: JSSDKReasonNoMatch, check: func(t *testing.T, tb *testBundle, tok string) JSSDKCheck {
			ticket := tb.mustTicket(t, tok, TicketJSAPI)
			c := signed(appA, ticket)
			c.URL += "#top"
			sum := sha1.Sum([]byte("jsapi_ticket=" + ticket + "&noncestr=" + c.NonceStr + "&timestamp=" + strconv.FormatInt(c.Timestamp, 10) + "&url=" + c.URL))
			c.Signature = hex.EncodeToString(sum[:])
			return c
		}},
		{name: "another nonce", wantReason: JSSDKReasonNoMatch, check: func(t *testing.T, tb *testBundle, tok string) JSSDKCheck {
			c := signed(appA, tb.mustTicket(t, tok, TicketJSAPI))
			c.NonceStr += "x"
			return c
		}},
		{name: "another timestamp", wantReason: JSSDKReasonNoMatch, check: func(t *testing.T, tb *testBundle, tok string) JSSDKCheck {
			c := signed(appA, tb.mustTicket(t, tok, TicketJSAPI))
			c.Timestamp++
			return c
		}},
		{name: "uppercase hex", wantReason: JSSDKReasonNoMatch, check: func(t *testing.T, tb *testBundle, tok string) JSSDKCheck {
			c := signed(appA, tb.mustTicket(t, tok, TicketJSAPI))
			c.Signature = strings.ToUpper(c.Signature)
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			check := tt.check(t, tb, tb.mustToken(t, appA, secretA))
			valid, reason := tb.verify(t, check)
			require.Equal(t, tt.wantReason, reason)
			require.Equal(t, tt.wantReason == "", valid)

			st := tb.sim.Stats("")
			var accepted, rejected int64
			if valid {
				accepted = 1
			} else {
				rejected = 1
			}
			counts := st.Accounts[appA].Counters
			if check.AppID != appA {
				counts = st.Totals.Unattributed
			}
			require.Equal(t, accepted, counts.JSSDKAccepted)
			require.Equal(t, rejected, counts.JSSDKRejected)
			require.Equal(t, accepted, st.Totals.JSSDKAccepted)
			require.Equal(t, rejected, st.Totals.JSSDKRejected)
		})
	}
}

func TestTicketSurvivorsFollowClassicSurvivors(t *testing.T) {
	tests := []struct {
		name      string
		survivors int
		want      []bool // each of four tickets valid right after the fourth fetch
	}{
		{name: "default", want: []bool{false, false, true, true}},
		{name: "three", survivors: 3, want: []bool{true, true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{ClassicSurvivors: tt.survivors})
			tok := tb.mustToken(t, appA, secretA)
			var checks []JSSDKCheck
			for range 4 {
				checks = append(checks, signed(appA, tb.mustTicket(t, tok, TicketJSAPI)))
				tb.clock.Add(time.Second)
			}
			got := make([]bool, len(checks))
			for i, c := range checks {
				got[i], _ = tb.verify(t, c)
			}
			require.Equal(t, tt.want, got)
		})
	}
}

func TestVerifyJSSDKRefusesMalformedChecks(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		body       string
		wantStatus int
		wantError  string
	}{
		{name: "not JSON", body: `appid=wx_a`, wantStatus: http.StatusBadRequest, wantError: "JSON object"},
		{name: "empty", body: ``, wantStatus: http.StatusBadRequest, wantError: "JSON object"},
		{name: "timestamp as a string", body: `{"appid":"wx_a","url":"u","noncestr":"n","timestamp":"1414587457","signature":"s"}`,
			wantStatus: http.StatusBadRequest, wantError: "timestamp"},
		{name: "timestamp missing", body: `{"appid":"wx_a","url":"u","noncestr":"n","signature":"s"}`,
			wantStatus: http.StatusBadRequest, wantError: "missing timestamp"},
		{name: "fields missing", body: `{"appid":"wx_a","timestamp":0}`,
			wantStatus: http.StatusBadRequest, wantError: "missing url, noncestr, signature"},
		{name: "GET", method: http.MethodGet, wantStatus: http.StatusMethodNotAllowed, wantError: "method not allowed"},
		{name: "complete but wrong is a verdict, not an error", body: `{"appid":"wx_a","url":"u","noncestr":"n","timestamp":0,"signature":"s"}`,
			wantStatus: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := setup(t, Config{})
			method := tt.method
			if method == "" {
				method = http.MethodPost
			}
			status, body := simRequest(t, tb, method, "/sim/verify-jssdk", tt.body)
			require.Equal(t, tt.wantStatus, status, "%v", body)
			if tt.wantStatus != http.StatusOK {
				require.Contains(t, body["error"], tt.wantError)
				require.Zero(t, tb.stats(t, appA).JSSDKRejected, "a malformed check is not a verification")
				return
			}
			require.Equal(t, map[string]any{"valid": false, "reason": JSSDKReasonNoTicket}, body)
		})
	}
}

func TestVerifyJSSDKAnswersValidWithoutReason(t *testing.T) {
	tb := setup(t, Config{})
	check := signed(appA, tb.mustTicket(t, tb.mustToken(t, appA, secretA), TicketJSAPI))
	b, err := json.Marshal(check)
	require.NoError(t, err)
	status, body := simRequest(t, tb, http.MethodPost, "/sim/verify-jssdk", string(b))
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, map[string]any{"valid": true}, body)
}
