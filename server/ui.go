package server

import (
	_ "embed"
	"html/template"
	"net"
	"net/http"
	"slices"
	"time"

	"wxhub/db"
)

// The status page, /ui, is server-rendered HTML for people: accounts by health, what needs
// attention and what to do about it, refreshes due, quota used today. It reloads itself
// every 2 s. A browser cannot send a bearer key, so the page asks for one once and keeps it
// in a cookie only the page's own paths receive (HttpOnly, SameSite=Strict). It shows no
// secret and no credential value.

//go:embed ui.html
var uiPage string

var uiTemplate = template.Must(template.New("ui").Funcs(template.FuncMap{"advice": advice}).Parse(uiPage))

const uiCookie = "wxhub_ui_key"

// uiData is what the page renders.
type uiData struct {
	Error    string
	Scope    string
	Now      string
	Statuses []uiCount
	Status   *db.Status
}

type uiCount struct {
	Name  string
	Count int64
}

func (s *Server) registerUI(mux *http.ServeMux) {
	mux.HandleFunc("GET /ui", s.uiStatus)
	mux.HandleFunc("POST /ui/login", s.uiLogin)
	mux.HandleFunc("POST /ui/logout", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: uiCookie, Path: "/ui", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/ui", http.StatusSeeOther)
	})
}

// uiPrincipal authenticates the key the page keeps in its cookie, or one just posted.
func (s *Server) uiPrincipal(r *http.Request, key string) (Principal, error) {
	addr := r.RemoteAddr
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	return s.keys.authenticate(r.Context(), key, addr, s.listener.Connected())
}

func (s *Server) uiStatus(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(uiCookie)
	if err != nil {
		s.renderUI(w, http.StatusUnauthorized, uiData{})
		return
	}
	p, err := s.uiPrincipal(r, c.Value)
	if err != nil {
		s.renderUI(w, http.StatusUnauthorized, uiData{Error: "That key is not accepted any more: " + err.Error() + "."})
		return
	}
	var tenant *int64
	scope := "every tenant (admin key)"
	if p.Role != RoleAdmin {
		tenant, scope = &p.TenantID, "tenant "+p.TenantName
	}
	st, err := s.store.Status(r.Context(), tenant, 100)
	if err != nil {
		s.log.Error("status page", "err", err)
		s.renderUI(w, http.StatusServiceUnavailable, uiData{Error: "The database cannot be read now; the page retries."})
		return
	}
	d := uiData{Scope: scope, Now: time.Now().UTC().Format("2006-01-02 15:04:05 MST"), Status: &st}
	for _, name := range []string{"active", "failing", "unauthorized", "disabled"} {
		d.Statuses = append(d.Statuses, uiCount{Name: name, Count: st.AccountsByStatus[name]})
	}
	s.renderUI(w, http.StatusOK, d)
}

func (s *Server) uiLogin(w http.ResponseWriter, r *http.Request) {
	key := r.PostFormValue("key")
	p, err := s.uiPrincipal(r, key)
	if err != nil || !slices.Contains([]string{RoleAdmin, RoleTenant}, p.Role) {
		s.renderUI(w, http.StatusUnauthorized, uiData{Error: "That key is not accepted: unknown, revoked or expired."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: uiCookie, Value: key, Path: "/ui", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: r.TLS != nil})
	http.Redirect(w, r, "/ui", http.StatusSeeOther)
}

func (s *Server) renderUI(w http.ResponseWriter, status int, d uiData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	w.WriteHeader(status)
	if err := uiTemplate.Execute(w, d); err != nil {
		s.log.Error("render the status page", "err", err)
	}
}

// advice says what to do about an account's last failure, by WeChat's errcode (or wxhub's
// own negative codes).
func advice(code int32, status string) string {
	switch code {
	case 40001, 40125, 41004:
		return "The AppSecret is wrong: give the account the current one (PATCH /v1/accounts/{appid} with secret)."
	case 40013, 41002:
		return "WeChat does not know this appid: check it."
	case 40164, 61004:
		return "Add this server's outgoing IP to the account's IP whitelist in WeChat's console."
	case 40243:
		return "The AppSecret is frozen: unfreeze or reset it in WeChat's console, then give the account the new one."
	case 48001:
		return "The account has no permission for this API in WeChat."
	case 89503:
		return "An administrator must approve calls from this IP in WeChat's console."
	case db.CodeHourlyGuard:
		return "WeCom's hourly ticket limit is reached: calls resume when the hour turns; the current ticket stays in service."
	case 45009, db.CodeQuotaGuard:
		return "The day's quota is spent: calls resume after midnight China time; the current token stays in service."
	case -1000:
		return "WeChat could not be reached: check the network to api.weixin.qq.com; wxhub keeps retrying."
	case -1001:
		return "A stored secret does not decrypt: give every process the same WXHUB_KEYS."
	}
	switch status {
	case "disabled":
		return "Disabled by an operator: enable it to refresh again."
	case "unauthorized":
		return "The account revoked the platform's authorization: it must authorize again."
	}
	if code != 0 {
		return "See WeChat's message; wxhub retries with backoff."
	}
	return "Waiting for its first value or a retry."
}
