package wechatsim

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strconv"
)

// mediaLimits are WeChat's size limits of temporary media per type.
var mediaLimits = map[string]int64{
	"image": 10 << 20,
	"voice": 2 << 20,
	"video": 10 << 20,
	"thumb": 64 << 10,
}

// mediaRecord is one uploaded temporary medium: in a file under Config.MediaDir, or in data.
type mediaRecord struct {
	appid       string
	typ         string
	filename    string
	contentType string
	size        int64
	path        string
	data        []byte
}

// MediaAnswer is WeChat's success answer of /cgi-bin/media/upload.
type MediaAnswer struct {
	Type      string `json:"type"`
	MediaID   string `json:"media_id"`
	CreatedAt int64  `json:"created_at"`
}

// handleMediaUpload serves POST /cgi-bin/media/upload?access_token=…&type=…, WeChat's
// temporary media upload: a multipart form whose "media" part is the file. The body is
// streamed to its store, never held whole unless Config.MediaDir is empty.
func (s *Simulator) handleMediaUpload(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiMediaUpload)
	rec, ok := c.useToken(http.MethodPost, false)
	if !ok {
		return
	}
	typ := r.URL.Query().Get("type")
	limit, ok := mediaLimits[typ]
	if !ok {
		c.fail(CodeInvalidMediaType)
		return
	}
	mr, err := r.MultipartReader()
	if err != nil {
		c.fail(CodeMissingMedia)
		return
	}
	for {
		part, err := mr.NextPart()
		if err != nil {
			c.fail(CodeMissingMedia)
			return
		}
		if part.FormName() != "media" {
			continue
		}
		m := &mediaRecord{appid: rec.acct.appid, typ: typ, filename: part.FileName(),
			contentType: part.Header.Get("Content-Type")}
		if err := s.storeMedia(m, io.LimitReader(part, limit+1)); err != nil {
			c.fail(CodeBusy)
			return
		}
		if m.size > limit {
			s.dropMedia(m)
			c.fail(CodeInvalidMediaSize)
			return
		}
		id := newSecretString(48)
		c.wd.media.Store(id, m)
		c.succeed(MediaAnswer{Type: typ, MediaID: id, CreatedAt: s.now().Unix()})
		return
	}
}

// storeMedia copies a medium's bytes to its file, or to memory without Config.MediaDir.
func (s *Simulator) storeMedia(m *mediaRecord, body io.Reader) error {
	if s.cfg.MediaDir == "" {
		var buf bytes.Buffer
		n, err := io.Copy(&buf, body)
		m.data, m.size = buf.Bytes(), n
		return err
	}
	f, err := os.CreateTemp(s.cfg.MediaDir, "media-*")
	if err != nil {
		return err
	}
	m.path = f.Name()
	m.size, err = io.Copy(f, body)
	return errors.Join(err, f.Close())
}

func (s *Simulator) dropMedia(m *mediaRecord) {
	if m.path != "" {
		_ = os.Remove(m.path)
	}
}

// handleMediaGet serves GET /cgi-bin/media/get?access_token=…&media_id=…: the medium's bytes
// with its content type, or WeChat's JSON error. A medium is visible to the account that
// uploaded it only.
func (s *Simulator) handleMediaGet(w http.ResponseWriter, r *http.Request) {
	c := s.begin(w, r, apiMediaGet)
	rec, ok := c.useToken(http.MethodGet, false)
	if !ok {
		return
	}
	v, ok := c.wd.media.Load(r.URL.Query().Get("media_id"))
	if !ok || v.(*mediaRecord).appid != rec.acct.appid {
		c.fail(CodeInvalidMediaID)
		return
	}
	m := v.(*mediaRecord)
	var body io.Reader = bytes.NewReader(m.data)
	if m.path != "" {
		f, err := os.Open(m.path)
		if err != nil {
			c.fail(CodeBusy)
			return
		}
		defer f.Close()
		body = f
	}
	ct := m.contentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": m.filename}))
	w.Header().Set("Content-Length", strconv.FormatInt(m.size, 10))
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, body)
}
