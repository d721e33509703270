package server

// Fuzz tests of the parsers of untrusted input on an API node: API keys, ETags
// and request bodies. They are in package server to reach the unexported key
// and ETag functions; the database comes from dbtest through the TestMain of
// package server_test, which runs for this package's tests too.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"wxhub/db"
	"wxhub/db/dbtest"
	"wxhub/db/keyring"
	"wxhub/wechat"
	"wxhub/wechatsim"
	"wxhub/worker"
)

// FuzzKeyFormat checks the API key format functions on arbitrary strings and
// on wxhub keys with one character changed: keyLookup is deterministic, hashes
// the whole key and never takes anything from a wxhub key's secret part;
// checkKeyFormat refuses exactly what fuzzMalformedKey calls malformed; and a
// single changed character of a wxhub key is caught by the checksum or lands on
// another lookup and hash.
func FuzzKeyFormat(f *testing.F) {
	for _, s := range []string{
		"",
		"test-bootstrap-admin-key-0123456789",
		"wxh_",
		"wxh_0123456789abcdef",
		"wxh_" + strings.Repeat("0", 72),
		"wxh_" + strings.Repeat("é", 36),
		"WXH_" + strings.Repeat("a", 72),
		fuzzWellFormedKey([]byte("seed")),
		fuzzWellFormedKey([]byte("seed")) + "x",
	} {
		f.Add(s, []byte("raw"), uint(0), byte('0'))
	}
	f.Add("", []byte{}, uint(4), byte('f'))
	f.Add("", []byte{0xff}, uint(75), byte('A'))
	f.Add("", []byte{1, 2, 3}, uint(0), byte('W'))

	f.Fuzz(func(t *testing.T, key string, raw []byte, pos uint, c byte) {
		// Any string.
		lookup, hash := keyLookup(key)
		lookup2, hash2 := keyLookup(key)
		if lookup != lookup2 || !bytes.Equal(hash, hash2) {
			t.Fatalf("keyLookup(%q) is not deterministic: %q %x, then %q %x", key, lookup, hash, lookup2, hash2)
		}
		if sum := sha256.Sum256([]byte(key)); !bytes.Equal(hash, sum[:]) {
			t.Fatalf("keyLookup(%q) hash %x, want the SHA-256 of the key", key, hash)
		}
		payload, wxhub := strings.CutPrefix(key, keyPrefix)
		wxhub = wxhub && len(payload) == 72
		switch {
		case wxhub && lookup != payload[:16]:
			t.Fatalf("keyLookup(%q) = %q, want the first 16 characters after %q", key, lookup, keyPrefix)
		case !wxhub && lookup != "h_"+hex.EncodeToString(hash[:8]):
			t.Fatalf("keyLookup(%q) = %q, want h_ and a hash prefix", key, lookup)
		}
		wantErr := fuzzMalformedKey(key)
		if err := checkKeyFormat(key); (err != nil) != wantErr {
			t.Fatalf("checkKeyFormat(%q) = %v, want an error: %t", key, err, wantErr)
		}

		// wxhub keys: one made by NewKey, and one made the same way from the
		// fuzzer's bytes (so that a failure reproduces).
		fresh, freshLookup, freshHash, err := NewKey()
		if err != nil {
			t.Fatal(err)
		}
		if l, h := keyLookup(fresh); l != freshLookup || !bytes.Equal(h, freshHash) {
			t.Fatalf("NewKey returned lookup %q hash %x for %q, keyLookup says %q %x", freshLookup, freshHash, fresh, l, h)
		}
		for _, k := range []string{fresh, fuzzWellFormedKey(raw)} {
			fuzzCheckWellFormedKey(t, k, pos, c)
		}
	})
}

// fuzzMalformedKey is the reference for what can be no key: with wxhub's prefix,
// anything but 72 lowercase hex digits ending in the checksum of the first 64;
// without it (a bootstrap key), anything but 16 to 256 visible ASCII characters.
func fuzzMalformedKey(key string) bool {
	if payload, ok := strings.CutPrefix(key, keyPrefix); ok {
		if len(payload) != 72 {
			return true
		}
		for _, c := range payload {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return true
			}
		}
		return checksum(payload[:64]) != payload[64:]
	}
	if len(key) < 16 || len(key) > 256 {
		return true
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return true
		}
	}
	return false
}

// fuzzWellFormedKey makes a key the way NewKey does, from 32 bytes taken from
// (or padded out of) raw.
func fuzzWellFormedKey(raw []byte) string {
	b := make([]byte, 32)
	copy(b, raw)
	payload := hex.EncodeToString(b)
	return keyPrefix + payload + checksum(payload)
}

func fuzzCheckWellFormedKey(t *testing.T, key string, pos uint, c byte) {
	t.Helper()
	if len(key) != 76 || !strings.HasPrefix(key, keyPrefix) {
		t.Fatalf("NewKey-style key %q is not wxh_ and 72 characters", key)
	}
	if err := checkKeyFormat(key); err != nil {
		t.Fatalf("checkKeyFormat(%q) = %v for a NewKey-style key", key, err)
	}
	payload := key[len(keyPrefix):]
	lookup, hash := keyLookup(key)
	if lookup != payload[:16] {
		t.Fatalf("keyLookup(%q) = %q, want %q", key, lookup, payload[:16])
	}
	// The lookup is stored and logged in the clear: it must not depend on the
	// secret part, nor contain a piece of it (pieces that also occur in the
	// first 16 characters are the lookup's own).
	secret := payload[16:64]
	other := payload[:16] + strings.Map(func(r rune) rune {
		if r == '0' {
			return '1'
		}
		return '0'
	}, secret)
	if l, _ := keyLookup(keyPrefix + other + checksum(other)); l != lookup {
		t.Fatalf("keyLookup depends on the secret part: %q for %q, %q when only the secret differs", lookup, key, l)
	}
	for i := 0; i+8 <= len(secret); i++ {
		if piece := secret[i : i+8]; strings.Contains(lookup, piece) && !strings.Contains(payload[:16], piece) {
			t.Fatalf("keyLookup(%q) = %q contains %q of the secret part", key, lookup, piece)
		}
	}

	// One character changed.
	i := int(pos % uint(len(key)))
	if key[i] == c {
		c ^= 1
	}
	typo := key[:i] + string([]byte{c}) + key[i+1:]
	tl, th := keyLookup(typo)
	if bytes.Equal(th, hash) {
		t.Fatalf("keys %q and %q have the same hash", key, typo)
	}
	if strings.HasPrefix(typo, keyPrefix) {
		// The checksum must catch a typo in the payload.
		if err := checkKeyFormat(typo); err == nil {
			t.Fatalf("checkKeyFormat accepts %q, %q with character %d changed", typo, key, i)
		}
	} else if tl == lookup {
		t.Fatalf("key %q with its prefix changed to %q keeps the lookup %q", key, typo, tl)
	}
}

// FuzzParseETag checks that parseETag accepts exactly the ETags this API
// writes, "N" with N a positive int64 in its canonical decimal form (ETags
// compare strongly, octet by octet: "01" and "+1" are not "1"), and returns N.
func FuzzParseETag(f *testing.F) {
	for _, s := range []string{`"1"`, `"3"`, `"9223372036854775807"`, `"9223372036854775808"`, `"0"`, `"-1"`,
		`1`, `""`, `"`, `W/"1"`, `"1", "2"`, `*`, `"abc"`, ` "1"`, `"1" `, `"1`, `1"`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		n, err := parseETag(v)
		want, ok := fuzzCanonicalETag(v)
		switch {
		case ok && err != nil:
			t.Fatalf("parseETag(%q) = %v, want %d", v, err, want)
		case !ok && err == nil:
			t.Fatalf("parseETag(%q) = %d, want an error: not an ETag this API writes", v, n)
		case ok && n != want:
			t.Fatalf("parseETag(%q) = %d, want %d", v, n, want)
		}
	})
}

// fuzzCanonicalETag is the reference parser: "N", N = 1..MaxInt64 in decimal
// without sign or leading zeros.
func fuzzCanonicalETag(v string) (int64, bool) {
	if len(v) < 3 || v[0] != '"' || v[len(v)-1] != '"' {
		return 0, false
	}
	inner := v[1 : len(v)-1]
	if inner[0] < '1' || inner[0] > '9' {
		return 0, false
	}
	var n int64
	for _, c := range []byte(inner) {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

const (
	fuzzRingSpec  = "t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	fuzzAdminKey  = "fuzz-bootstrap-admin-key-0123456789"
	fuzzTenant    = "fuzz"
	fuzzAppID     = "wxfuzz0000000001" // exists, with an access token and a jsapi ticket
	fuzzNoAppID   = "wxfuzz0000000404" // does not exist
	fuzzAppSecret = "fuzz-app-secret-0123456789abcdef"
)

// fuzzOp is one operation FuzzAPIBodies sends bodies to; %s is the appid.
type fuzzOp struct {
	method, path string
	ifMatch      bool
	// keyAnswer marks create-api-key, whose success answer carries a generated
	// key (in a field that is no request secret).
	keyAnswer bool
}

var fuzzOps = []fuzzOp{
	{method: http.MethodPost, path: "/v1/accounts"},
	{method: http.MethodPost, path: "/v1/tenants"},
	{method: http.MethodPost, path: "/v1/api-keys", keyAnswer: true},
	{method: http.MethodPut, path: "/v1/accounts/%s/settings", ifMatch: true},
	{method: http.MethodPatch, path: "/v1/accounts/%s"},
	{method: http.MethodPost, path: "/v1/accounts/%s/access-token/invalidate"},
	{method: http.MethodPost, path: "/v1/accounts/%s/jssdk-config"},
}

// FuzzAPIBodies sends arbitrary bodies, with an admin key, to the operations
// that take one, on an API node over a real database. The op argument picks
// the operation (op % 7) and the account in the path (the existing one, or a
// missing one when op/7 is odd); ifMatch is the If-Match header of the settings
// update. Every answer must be no 5xx, one JSON document, a problem document
// when it is a 4xx, and never quote a top-level "secret" of the request body
// (except the generated key of create-api-key's success answer, which is no
// request value).
func FuzzAPIBodies(f *testing.F) {
	h := fuzzNode(f)

	add := func(op int, ifMatch, body string) { f.Add(uint8(op), ifMatch, []byte(body)) }
	add(0, "", `{"appid":"wxseed00000000001","kind":"official_account","secret":"seed-secret-0123456789","tenant":"fuzz"}`)
	add(0, "", `{"appid":"wxseed00000000002","kind":"mini_program","secret":"seed-secret-abcdefghij","tenant":"fuzz","token_mode":"classic","tickets":["jsapi","wx_card"],"daily_limits":{"token":200}}`)
	add(0, "", `{"appid":"wxseed00000000003","kind":"official_account","secret":"seed-secret-0123456789","tenant":"nobody"}`)
	add(0, "", `{"appid":"wx bad!","kind":"bank","secret":"","tenant":"Fuzz"}`)
	add(0, "", `{"appid":`)
	add(0, "", ``)
	add(1, "", `{"name":"acme"}`)
	add(1, "", `{"name":"Bad Name"}`)
	add(1, "", `[]`)
	add(2, "", `{"name":"shop-backend","role":"tenant","tenant":"fuzz"}`)
	add(2, "", `{"name":"caf\u00e9 ops","role":"admin","expires_at":"2030-01-01T00:00:00Z"}`)
	add(2, "", `{"name":"x","role":"root"}`)
	add(2, "", `{"name":"x","role":"tenant"}`)
	add(3, `"1"`, `{"settings":{"theme":"dark","n":1,"nested":{"a":[1,2,"\u00e9"]}}}`)
	add(3, `"999"`, `{"settings":{}}`)
	add(3, `W/"1"`, `{"settings":{}}`)
	add(3, ``, `{"settings":{}}`)
	add(3, `"1"`, `{"settings":null}`)
	add(4, "", `{"base_info":{"nick_name":"Demo","head_img":"https://example.com/a.png"}}`)
	add(4, "", `{"token_mode":"classic","daily_limits":{"token":100}}`)
	add(4, "", `{"secret":"`+fuzzAppSecret+`"}`)
	add(4, "", `{"token_mode":"turbo"}`)
	add(4+7, "", `{"base_info":{}}`)
	add(5, "", `{"access_token":"not-the-current-token","errcode":40001}`)
	add(5, "", `{"access_token":""}`)
	add(5+7, "", `{"access_token":"x"}`)
	add(6, "", `{"url":"https://example.com/p?a=1#top"}`)
	add(6, "", `{"url":"/page"}`)
	add(6, "", `{"url":"javascript:alert(1)"}`)
	add(6+7, "", `{"url":"https://example.com/"}`)

	f.Fuzz(func(t *testing.T, op uint8, ifMatch string, body []byte) {
		o := fuzzOps[int(op)%len(fuzzOps)]
		appid := fuzzAppID
		if int(op)/len(fuzzOps)%2 == 1 {
			appid = fuzzNoAppID
		}
		path := o.path
		if strings.Contains(path, "%s") {
			path = fmt.Sprintf(path, appid)
		}
		if o.ifMatch && !fuzzValidHeaderValue(ifMatch) {
			return // net/http refuses such a header before any handler sees it
		}
		do := func(body []byte) *httptest.ResponseRecorder {
			req := httptest.NewRequest(o.method, path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+fuzzAdminKey)
			if o.ifMatch && ifMatch != "" {
				req.Header.Set("If-Match", ifMatch)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			return rec
		}
		rec := do(body)
		status, text := rec.Code, rec.Body.Bytes()
		what := fmt.Sprintf("%s %s (If-Match %q) %q answered %d %s", o.method, path, ifMatch, body, status, text)

		switch {
		case status >= 500:
			t.Fatalf("5xx: %s", what)
		case status < 200 || (status >= 300 && status < 400):
			t.Fatalf("neither a success nor a client error: %s", what)
		case status >= 400 && !strings.Contains(rec.Header().Get("Content-Type"), "application/problem+json"):
			t.Fatalf("4xx with Content-Type %q, not a problem document: %s", rec.Header().Get("Content-Type"), what)
		}
		answer, ok := fuzzDecodeOne(text)
		if !ok {
			t.Fatalf("the answer is not one JSON document: %s", what)
		}

		if status < 300 && o.keyAnswer {
			return
		}
		for _, sec := range fuzzRequestSecrets(body) {
			others := append(sec.others, path)
			if o.ifMatch {
				others = append(others, ifMatch)
			}
			fuzzCheckNoEcho(t, do, sec, answer, rec.Header(), others, what)
		}
	})
}

// fuzzNode starts, once per fuzz process, a database, the WeChat simulator, an
// API node and (until the fixture account has its credentials) a worker, and
// returns the node's handler.
func fuzzNode(f *testing.F) http.Handler {
	f.Helper()
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ring, err := keyring.Parse(fuzzRingSpec)
	if err != nil {
		f.Fatal(err)
	}
	dsn := dbtest.URL(f)
	pool, err := db.Open(ctx, dsn)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(pool.Close)
	store := db.NewStore(pool, ring)
	if err := EnsureBootstrapKey(ctx, store, fuzzAdminKey); err != nil {
		f.Fatal(err)
	}

	// An hour-long token outlives the fuzzing, so the worker is needed only for
	// the first fetch. Stopping it keeps background work (and the flaky
	// coverage it causes) out of the fuzzing.
	sim := wechatsim.New(wechatsim.Config{TokenTTL: time.Hour})
	if err := sim.AddAccount(wechatsim.Account{AppID: fuzzAppID, Secret: fuzzAppSecret}); err != nil {
		f.Fatal(err)
	}
	simSrv := httptest.NewServer(sim)
	f.Cleanup(simSrv.Close)
	w, err := worker.New(store, wechat.New(simSrv.URL, nil), worker.Config{
		ID: "fuzz", PollInterval: 50 * time.Millisecond, Logger: quiet, Registerer: prometheus.NewRegistry(),
	})
	if err != nil {
		f.Fatal(err)
	}
	workerCtx, stopWorker := context.WithCancel(ctx)
	workerDone := make(chan struct{})
	go func() {
		_ = w.Run(workerCtx)
		close(workerDone)
	}()
	defer func() {
		stopWorker()
		<-workerDone
	}()

	srv := New(store, Config{ListenerURL: dsn, StalenessBound: 30 * time.Second, RefreshWait: 2 * time.Second,
		RateLimit: -1, Logger: quiet})
	nodeCtx, stopNode := context.WithCancel(ctx)
	nodeDone := make(chan struct{})
	go func() {
		srv.Run(nodeCtx)
		close(nodeDone)
	}()
	f.Cleanup(func() {
		stopNode()
		<-nodeDone
	})
	for deadline := time.Now().Add(10 * time.Second); !srv.Listener().Connected(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			f.Fatal("listener did not connect")
		}
	}

	h := srv.Handler()
	call := func(method, path, body string) (int, string) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+fuzzAdminKey)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	if code, text := call(http.MethodPost, "/v1/tenants", `{"name":"`+fuzzTenant+`"}`); code != http.StatusCreated {
		f.Fatalf("create tenant: %d %s", code, text)
	}
	if code, text := call(http.MethodPost, "/v1/accounts", `{"appid":"`+fuzzAppID+`","kind":"official_account","secret":"`+
		fuzzAppSecret+`","tenant":"`+fuzzTenant+`","tickets":["jsapi"]}`); code != http.StatusCreated {
		f.Fatalf("create account: %d %s", code, text)
	}
	for _, path := range []string{"/v1/accounts/" + fuzzAppID + "/access-token", "/v1/accounts/" + fuzzAppID + "/tickets/jsapi"} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, text := call(http.MethodGet, path, "")
			if code == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				f.Fatalf("GET %s: %d %s", path, code, text)
			}
		}
	}
	return h
}

// fuzzValidHeaderValue reports whether net/http would carry v as a header
// value: no control characters but tab.
func fuzzValidHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// fuzzDecodeOne decodes b, which must be exactly one JSON document.
func fuzzDecodeOne(b []byte) (any, bool) {
	dec := json.NewDecoder(bytes.NewReader(b))
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return v, true
}

// fuzzSecret is a top-level "secret" string of a request body: its value,
// where its literal is in the body, and every other string of the request
// (which the answer may quote legitimately).
type fuzzSecret struct {
	body       []byte
	value      string
	start, end int
	others     []string
}

// fuzzRequestSecrets finds the string values of the top-level "secret" keys of
// body, as far as body is JSON: a truncated or malformed body counts up to
// where it breaks, since an error message may quote it.
func fuzzRequestSecrets(body []byte) []fuzzSecret {
	type token struct {
		s          string
		start, end int
		secret     bool
	}
	var tokens []token
	dec := json.NewDecoder(bytes.NewReader(body))
	depth, object, expectKey, key, keyEnd := 0, false, false, "", 0
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{', '[':
				depth++
				if depth == 1 {
					object, expectKey = v == '{', v == '{'
				}
			default:
				depth--
				if depth == 1 {
					expectKey = object
				}
			}
		case string:
			t := token{s: v, end: int(dec.InputOffset())}
			switch {
			case depth == 1 && object && expectKey:
				key, keyEnd, expectKey = v, t.end, false
			case depth == 1 && object:
				if key == "secret" {
					t.secret = true
					t.start = keyEnd
					for t.start < len(body) && strings.IndexByte(" \t\r\n:", body[t.start]) >= 0 {
						t.start++
					}
				}
				expectKey = true
			}
			tokens = append(tokens, t)
		default:
			if depth == 1 {
				expectKey = object
			}
		}
	}
	var out []fuzzSecret
	for i, t := range tokens {
		if !t.secret {
			continue
		}
		sec := fuzzSecret{body: body, value: t.s, start: t.start, end: t.end,
			others: []string{string(body[:t.start]) + "\x00" + string(body[t.end:])}}
		for j, o := range tokens {
			if j != i {
				sec.others = append(sec.others, o.s)
			}
		}
		out = append(out, sec)
	}
	return out
}

// fuzzCheckNoEcho fails t if the answer quotes the request's secret sec, which
// is not also elsewhere in the request (others). The check is confirmed by
// asking again with another secret of the same length in its place: if that
// one is quoted too, the answer echoes the secret; if the first one still is,
// it came from elsewhere (stored state, fixed text).
func fuzzCheckNoEcho(t *testing.T, do func([]byte) *httptest.ResponseRecorder, sec fuzzSecret,
	answer any, header http.Header, others []string, what string) {
	t.Helper()
	if len(sec.value) < 8 || !fuzzAnswerContains(answer, header, sec.value) {
		return
	}
	for _, o := range others {
		if strings.Contains(o, sec.value) {
			return
		}
	}
	marker := fuzzMarker(utf8.RuneCountInString(sec.value))
	literal, _ := json.Marshal(marker)
	body := slices.Concat(sec.body[:sec.start], literal, sec.body[sec.end:])
	again := do(body)
	answer2, _ := fuzzDecodeOne(again.Body.Bytes())
	switch {
	case fuzzAnswerContains(answer2, again.Header(), marker):
		t.Fatalf("the answer echoes the request's secret %q: %s", sec.value, what)
	case fuzzAnswerContains(answer2, again.Header(), sec.value):
		// Not from this request.
	default:
		t.Fatalf("the answer quotes the request's secret %q (the same request with secret %q answered %d %s): %s",
			sec.value, marker, again.Code, again.Body.Bytes(), what)
	}
}

// fuzzStrings calls fn with every string in a decoded JSON value, object keys
// included.
func fuzzStrings(v any, fn func(string)) {
	switch v := v.(type) {
	case string:
		fn(v)
	case []any:
		for _, e := range v {
			fuzzStrings(e, fn)
		}
	case map[string]any:
		for k, e := range v {
			fn(k)
			fuzzStrings(e, fn)
		}
	}
}

// fuzzAnswerContains reports whether s occurs in a string of the decoded
// answer or in a header value.
func fuzzAnswerContains(answer any, header http.Header, s string) bool {
	found := false
	fuzzStrings(answer, func(x string) { found = found || strings.Contains(x, s) })
	for _, vs := range header {
		for _, v := range vs {
			found = found || strings.Contains(v, s)
		}
	}
	return found
}

// fuzzMarker is an ASCII string of n characters that no answer has a reason
// to contain.
func fuzzMarker(n int) string {
	const pattern = "Qz7mK2vX9wJ4pL8r"
	return strings.Repeat(pattern, n/len(pattern)+1)[:n]
}
