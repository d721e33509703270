package wechatsim

import (
	"bytes"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/require"
)

// upload sends one medium through media/upload as a multipart form.
func (tb *testBundle) upload(t *testing.T, token, typ string, data []byte) wxAnswer {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	part, err := mw.CreateFormFile("media", "a.jpg")
	require.NoError(t, err)
	_, err = part.Write(data)
	require.NoError(t, err)
	require.NoError(t, mw.Close())
	return tb.do(t, http.MethodPost, pathMediaUpload, url.Values{"access_token": {token}, "type": {typ}}, mw.FormDataContentType(), body.Bytes())
}

func TestMediaUploadedComesBackToItsAccountOnly(t *testing.T) {
	for _, tt := range []struct {
		name string
		dir  bool
	}{{"in memory", false}, {"in MediaDir", true}} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{}
			if tt.dir {
				cfg.MediaDir = t.TempDir()
			}
			tb := setup(t, cfg)
			tokA, tokB := tb.mustToken(t, appA, secretA), tb.mustToken(t, appB, secretB)
			data := bytes.Repeat([]byte("wxhub"), 5000)

			ans := tb.upload(t, tokA, "image", data)
			require.Zero(t, ans.ErrCode, ans.ErrMsg)
			var up MediaAnswer
			raw, err := json.Marshal(ans.Raw)
			require.NoError(t, err)
			require.NoError(t, json.Unmarshal(raw, &up))
			require.Equal(t, "image", up.Type)
			require.NotEmpty(t, up.MediaID)
			require.ElementsMatch(t, []string{"type", "media_id", "created_at"}, keysOf(ans.Raw))

			resp, got, err := tb.send(t, tb.srv.Client(), http.MethodGet, pathMediaGet, url.Values{"access_token": {tokA}, "media_id": {up.MediaID}}, "", nil)
			require.NoError(t, err)
			require.Equal(t, "application/octet-stream", resp.Header.Get("Content-Type"))
			require.Equal(t, data, got)

			require.Equal(t, CodeInvalidMediaID, tb.do(t, http.MethodGet, pathMediaGet, url.Values{"access_token": {tokB}, "media_id": {up.MediaID}}, "", nil).ErrCode)
			require.Equal(t, CodeInvalidMediaType, tb.upload(t, tokA, "gif", data).ErrCode)
			require.Equal(t, CodeInvalidMediaSize, tb.upload(t, tokA, "thumb", bytes.Repeat([]byte{1}, 65<<10)).ErrCode)
			require.Equal(t, CodeInvalidCredential, tb.upload(t, "forged", "image", data).ErrCode)
			require.Equal(t, int64(3), tb.stats(t, appA).Calls[APIMediaUpload], "the forged token names no account")
		})
	}
}

func keysOf(m map[string]json.RawMessage) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
