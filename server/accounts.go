package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5/pgconn"

	"wxhub/db"
	"wxhub/wechat/callback"
)

// AccountBody is an account as the API shows it: never the secret.
type AccountBody struct {
	AppID        string         `json:"appid" doc:"The account's appid, its key in the API."`
	Kind         string         `json:"kind" doc:"official_account, mini_program, wecom_app, component or authorizer."`
	Tenant       string         `json:"tenant" doc:"The tenant that owns the account."`
	Status       string         `json:"status" doc:"active, disabled, failing (WeChat rejects its configuration; see status_reason) or unauthorized."`
	StatusReason string         `json:"status_reason,omitempty" doc:"Why the account is not active."`
	TokenMode    string         `json:"token_mode" doc:"stable (stable_token, preferred) or classic (cgi-bin/token)."`
	Tickets      []string       `json:"tickets" doc:"Tickets kept fresh: jsapi, wx_card, agent_config."`
	DailyLimits  map[string]int `json:"daily_limits" doc:"Per-API daily call limits overriding WeChat's defaults."`
	BaseInfo     map[string]any `json:"base_info" doc:"Base information of the account (name, avatar, ...) as app servers stored it."`
	CreatedAt    time.Time      `json:"created_at"`
	CorpID       string         `json:"corp_id,omitempty" doc:"A WeCom app's corp id."`
	AgentID      int64          `json:"agent_id,omitempty" doc:"A WeCom app's agent id."`
	// An authorizer's context, as WeChat reports it.
	Authorization map[string]any `json:"authorization,omitempty" doc:"An authorizer's grant to its component: func_info, the function scopes, as WeChat sent them. Read at every authorization event and daily."`
	WeChatInfo    map[string]any `json:"wechat_info,omitempty" doc:"An authorizer's authorizer_info as WeChat last reported it: nick_name, service_type_info, verify_type_info, principal_name, and the rest. Read at every authorization event and daily."`
	WeChatInfoAt  *time.Time     `json:"wechat_info_at,omitempty" doc:"When wechat_info and authorization were last read from WeChat."`
}

// CredentialStateBody is the freshness of one credential: never its value.
type CredentialStateBody struct {
	Kind            string     `json:"kind" doc:"access_token, jsapi_ticket, wx_card_ticket, agent_config_ticket."`
	Generation      int64      `json:"generation" doc:"0 until the first fetch."`
	ExpiresAt       *time.Time `json:"expires_at,omitempty"`
	RefreshAt       *time.Time `json:"refresh_at,omitempty" doc:"When the next refresh is due; absent when none is scheduled."`
	LastRefreshedAt *time.Time `json:"last_refreshed_at,omitempty"`
	Fingerprint     string     `json:"fingerprint,omitempty" doc:"Short hash prefix of the value, to match a token seen elsewhere."`
	Attempts        int        `json:"attempts" doc:"Consecutive failed refresh attempts."`
	LastErrorCode   *int32     `json:"last_error_code,omitempty" doc:"WeChat's errcode of the last failure (negative: network or wxhub)."`
	LastError       *string    `json:"last_error,omitempty" doc:"WeChat's errmsg of the last failure."`
}

// AccountDetailBody is an account with its credentials' state and today's upstream calls.
type AccountDetailBody struct {
	AccountBody
	Credentials        []CredentialStateBody `json:"credentials"`
	UpstreamCallsToday map[string]int        `json:"upstream_calls_today" doc:"Calls wxhub made to each WeChat API on the current quota day (China time)."`
}

type appidPath struct {
	AppID string `path:"appid" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"The account's appid." example:"wx0000000000000001"`
}

// CreateAccountInput creates an account.
type CreateAccountInput struct {
	Body struct {
		AppID       string         `json:"appid" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"The WeChat appid." example:"wx0000000000000001"`
		Kind        string         `json:"kind" enum:"official_account,mini_program,wecom_app,component" doc:"The kinds wxhub refreshes today. A wecom_app's appid is an identifier chosen here; WeCom knows it by corp_id and agent_id. A component (third-party platform) needs callback; its authorizers are created by the authorization flow."`
		Secret      string         `json:"secret" minLength:"1" maxLength:"256" doc:"The AppSecret (a WeCom app's corpsecret, a component's component_appsecret); stored encrypted, never returned."`
		CorpID      string         `json:"corp_id,omitempty" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"A wecom_app's corp id (required for wecom_app, refused for other kinds)."`
		AgentID     int64          `json:"agent_id,omitempty" minimum:"1" doc:"A wecom_app's agent id (required for wecom_app, refused for other kinds)."`
		Tenant      string         `json:"tenant" pattern:"^[a-z0-9][a-z0-9_-]{0,62}$" doc:"The owning tenant's name." example:"demo"`
		TokenMode   string         `json:"token_mode,omitempty" enum:"stable,classic" default:"stable" doc:"stable_token (idempotent, preferred) or the classic cgi-bin/token."`
		Tickets     []string       `json:"tickets,omitempty" maxItems:"2" uniqueItems:"true" enum:"jsapi,wx_card,agent_config" doc:"Tickets to keep fresh: jsapi and wx_card for official accounts (mini programs have none); jsapi (the corp's ticket, kept by one app of the corp; 409 if another keeps it) and agent_config for a wecom_app."`
		DailyLimits map[string]int `json:"daily_limits,omitempty" doc:"Per-API daily limits overriding WeChat's (token 2000, stable_token 500000, getticket 100000), e.g. {\"token\": 200} for a test account. Keys are WeChat API names (lowercase letters and _), values at least 0."`
		Callback    *CallbackBody  `json:"callback,omitempty" doc:"A component's message settings from WeChat's open platform; required for a component, refused otherwise."`
	}
}

// CallbackBody is how WeChat signs and encrypts what it pushes to a component: the settings
// of the platform's authorization event URL. Stored encrypted, never returned.
type CallbackBody struct {
	Token                  string `json:"token" pattern:"^[A-Za-z0-9]{3,32}$" doc:"The message verification token (3 to 32 letters and digits)."`
	EncodingAESKey         string `json:"encoding_aes_key" pattern:"^[A-Za-z0-9]{43}$" doc:"The message encryption key: 43 letters and digits."`
	PreviousEncodingAESKey string `json:"previous_encoding_aes_key,omitempty" pattern:"^[A-Za-z0-9]{43}$" doc:"The key before the last change, tried when the current one does not decrypt a push, while WeChat may still use it."`
}

// AccountOutput returns one account.
type AccountOutput struct{ Body AccountBody }

// ListAccountsInput filters and pages the account list.
type ListAccountsInput struct {
	Tenant string `query:"tenant" doc:"Only this tenant's accounts (admin keys; tenant keys always see their own)."`
	Kind   string `query:"kind" enum:"official_account,mini_program,wecom_app,component,authorizer," doc:"Only accounts of this kind."`
	Status string `query:"status" enum:"active,disabled,failing,unauthorized," doc:"Only accounts in this status."`
	Cursor string `query:"cursor" doc:"next_cursor of the previous page."`
	Limit  int    `query:"limit" minimum:"1" maximum:"500" default:"50" doc:"Page size."`
}

// ListAccountsOutput is one page of accounts.
type ListAccountsOutput struct {
	Body struct {
		Items      []AccountBody `json:"items"`
		NextCursor string        `json:"next_cursor,omitempty" doc:"Pass as cursor for the next page; absent on the last page."`
	}
}

// UpdateAccountInput changes an account's configuration.
type UpdateAccountInput struct {
	AppID string `path:"appid" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"The account's appid." example:"wx0000000000000001"`
	Body  struct {
		Secret      *string        `json:"secret,omitempty" minLength:"1" maxLength:"256" doc:"A new AppSecret; the account is refreshed at once."`
		TokenMode   *string        `json:"token_mode,omitempty" enum:"stable,classic"`
		DailyLimits map[string]int `json:"daily_limits,omitempty" doc:"Replaces the per-API limits."`
		BaseInfo    map[string]any `json:"base_info,omitempty" doc:"Replaces the base information document."`
		Tickets     *[]string      `json:"tickets,omitempty" maxItems:"2" uniqueItems:"true" enum:"jsapi,wx_card,agent_config" doc:"Replaces the tickets kept fresh ([] for none): a new one is fetched at once, a dropped one deleted. Which tickets a kind may keep is as on creation."`
		Tenant      *string        `json:"tenant,omitempty" pattern:"^[a-z0-9][a-z0-9_-]{0,62}$" doc:"Moves the account to this tenant; its credentials and quota ledger follow, and the old tenant's keys no longer see it."`
	}
}

// SettingsInput addresses an account's settings.
type SettingsInput struct {
	AppID string `path:"appid" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"The account's appid." example:"wx0000000000000001"`
}

// SettingsOutput returns settings with their version as the ETag.
type SettingsOutput struct {
	ETag string `header:"ETag" doc:"The settings version; send it back in If-Match to change them."`
	Body struct {
		Settings map[string]any `json:"settings" doc:"The account's personalized settings document."`
		Version  int64          `json:"version"`
	}
}

// PutSettingsInput replaces the settings if If-Match names the current version.
type PutSettingsInput struct {
	AppID   string `path:"appid" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"The account's appid." example:"wx0000000000000001"`
	IfMatch string `header:"If-Match" doc:"The ETag of the settings this change is based on (a list of them, or * for whatever version is current). Without it the answer is 428."`
	Body    struct {
		Settings map[string]any `json:"settings" doc:"The new settings document (replaces the old one)."`
	}
}

func (s *Server) registerAccounts() {
	admin := map[string]any{rolesKey: []string{RoleAdmin}}
	both := map[string]any{rolesKey: []string{RoleAdmin, RoleTenant}}
	tags := []string{"Accounts"}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-account", Method: http.MethodPost, Path: "/v1/accounts", DefaultStatus: http.StatusCreated,
		Summary: "Create an account", Tags: tags, Metadata: admin, Errors: []int{401, 403, 404, 409, 422},
		Description: "Adds a WeChat account; its access token (and tickets) are fetched within seconds by a worker.",
	}, func(ctx context.Context, in *CreateAccountInput) (*AccountOutput, error) {
		if err := checkLimits(in.Body.DailyLimits); err != nil {
			return nil, err
		}
		if err := checkWeCom(in.Body.Kind, in.Body.CorpID, in.Body.AgentID); err != nil {
			return nil, err
		}
		callback, err := checkCallback(in.Body.Kind, in.Body.Callback, in.Body.Tickets)
		if err != nil {
			return nil, err
		}
		if err := checkTickets(in.Body.Kind, in.Body.Tickets); err != nil {
			return nil, err
		}
		a, err := s.store.CreateAccount(ctx, db.NewAccount{
			Tenant: in.Body.Tenant, AppID: in.Body.AppID, Kind: in.Body.Kind, Secret: in.Body.Secret,
			TokenMode: in.Body.TokenMode, Tickets: in.Body.Tickets, DailyLimits: in.Body.DailyLimits,
			CorpID: in.Body.CorpID, AgentID: in.Body.AgentID, Callback: callback,
		})
		switch {
		case errors.Is(err, db.ErrCorpTicketKept):
			err = huma.Error409Conflict("another app of this corp keeps the corp's jsapi ticket; ask that app for it")
		case errors.Is(err, db.ErrConflict):
			err = huma.Error409Conflict("an account with this appid, or this corp's agent, exists")
		case errors.Is(err, db.ErrNotFound):
			err = huma.Error404NotFound("no such tenant")
		case err != nil:
			err = s.internal(err)
		}
		s.audit(ctx, "account.create", in.Body.AppID, a.TenantID, err, map[string]any{"kind": in.Body.Kind})
		if err != nil {
			return nil, err
		}
		return &AccountOutput{Body: accountBody(a, in.Body.Tenant)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "list-accounts", Method: http.MethodGet, Path: "/v1/accounts",
		Summary: "List accounts", Tags: tags, Metadata: both, Errors: []int{401, 403, 422},
		Description: "Pages through accounts in creation order. Tenant keys see only their tenant's accounts.",
	}, func(ctx context.Context, in *ListAccountsInput) (*ListAccountsOutput, error) {
		p, err := principal(ctx)
		if err != nil {
			return nil, s.internal(err)
		}
		f := db.AccountFilter{Kind: in.Kind, Status: in.Status, Limit: in.Limit + 1}
		if in.Cursor != "" {
			if f.AfterID, err = strconv.ParseInt(in.Cursor, 10, 64); err != nil || f.AfterID < 0 {
				return nil, huma.Error422UnprocessableEntity("cursor is not one this API returned")
			}
		}
		names, err := s.tenantNames(ctx)
		if err != nil {
			return nil, s.internal(err)
		}
		switch {
		case p.Role == RoleTenant:
			f.TenantID = &p.TenantID
		case in.Tenant != "":
			id, ok := tenantID(names, in.Tenant)
			if !ok {
				return nil, huma.Error404NotFound("no such tenant")
			}
			f.TenantID = &id
		}
		accounts, err := s.store.ListAccounts(ctx, f)
		if err != nil {
			return nil, s.internal(err)
		}
		out := &ListAccountsOutput{}
		out.Body.Items = []AccountBody{}
		for i, a := range accounts {
			if i == in.Limit {
				out.Body.NextCursor = strconv.FormatInt(accounts[i-1].ID, 10)
				break
			}
			out.Body.Items = append(out.Body.Items, accountBody(a, names[a.TenantID]))
		}
		return out, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-account", Method: http.MethodGet, Path: "/v1/accounts/{appid}",
		Summary: "Get an account", Tags: tags, Metadata: both, Errors: []int{401, 403, 404},
		Description: "The account with the freshness and last error of each credential and today's upstream calls. Never the secret or a credential value.",
	}, func(ctx context.Context, in *appidPath) (*struct{ Body AccountDetailBody }, error) {
		a, err := s.account(ctx, in.AppID)
		if err != nil {
			return nil, err
		}
		d, err := s.store.GetAccountDetail(ctx, a)
		if err != nil {
			return nil, s.internal(err)
		}
		names, err := s.tenantNames(ctx)
		if err != nil {
			return nil, s.internal(err)
		}
		body := AccountDetailBody{AccountBody: accountBody(a, names[a.TenantID]), UpstreamCallsToday: d.UpstreamCalls,
			Credentials: []CredentialStateBody{}}
		for _, c := range d.Credentials {
			body.Credentials = append(body.Credentials, CredentialStateBody{Kind: c.Kind, Generation: c.Generation,
				ExpiresAt: c.ExpiresAt, RefreshAt: c.RefreshAt, LastRefreshedAt: c.Refreshed, Fingerprint: c.Fingerprint,
				Attempts: c.Attempts, LastErrorCode: c.LastErrCode, LastError: c.LastErrMsg})
		}
		return &struct{ Body AccountDetailBody }{Body: body}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "update-account", Method: http.MethodPatch, Path: "/v1/accounts/{appid}",
		Summary: "Change an account", Tags: tags, Metadata: admin, Errors: []int{401, 403, 404, 409, 422},
		Description: "Changes the secret, token mode, daily limits, base information, the tickets kept fresh or the owning " +
			"tenant; fields left out stay as they are. Every change is audited.",
	}, func(ctx context.Context, in *UpdateAccountInput) (*AccountOutput, error) {
		if err := checkLimits(in.Body.DailyLimits); err != nil {
			return nil, err
		}
		a, err := s.account(ctx, in.AppID)
		if err != nil {
			return nil, err
		}
		if in.Body.Tickets != nil {
			if err := checkTickets(a.Kind, *in.Body.Tickets); err != nil {
				return nil, err
			}
		}
		change := db.AccountChange{Secret: in.Body.Secret, TokenMode: in.Body.TokenMode, DailyLimits: in.Body.DailyLimits,
			Tickets: in.Body.Tickets, Tenant: in.Body.Tenant}
		if in.Body.BaseInfo != nil {
			if change.BaseInfo, err = json.Marshal(in.Body.BaseInfo); err != nil {
				return nil, huma.Error422UnprocessableEntity("base_info must be a JSON object")
			}
		}
		fields := []string{}
		for name, set := range map[string]bool{"secret": in.Body.Secret != nil, "token_mode": in.Body.TokenMode != nil,
			"daily_limits": in.Body.DailyLimits != nil, "base_info": in.Body.BaseInfo != nil,
			"tickets": in.Body.Tickets != nil, "tenant": in.Body.Tenant != nil} {
			if set {
				fields = append(fields, name)
			}
		}
		slices.Sort(fields)
		updated, err := s.store.UpdateAccount(ctx, a, change)
		var pgErr *pgconn.PgError
		switch {
		case errors.Is(err, db.ErrNotFound) && in.Body.Tenant != nil:
			err = huma.Error422UnprocessableEntity("no tenant is named " + *in.Body.Tenant)
		case errors.Is(err, db.ErrCorpTicketKept):
			err = huma.Error409Conflict("another app of this corp keeps the corp's jsapi ticket; ask that app for it")
		case errors.As(err, &pgErr) && pgErr.Code == "23503":
			err = huma.Error409Conflict("the account cannot move alone: a third-party platform and its authorizers belong to one tenant")
		case err != nil:
			err = s.internal(err)
		}
		details := map[string]any{"fields": fields}
		if in.Body.Tenant != nil {
			details["tenant"] = *in.Body.Tenant
		}
		s.audit(ctx, "account.update", a.AppID, a.TenantID, err, details)
		if err != nil {
			return nil, err
		}
		return s.accountOutput(ctx, updated)
	})
	for _, enable := range []bool{false, true} {
		verb, summary := "disable", "Disable an account"
		if enable {
			verb, summary = "enable", "Enable an account"
		}
		huma.Register(s.api, huma.Operation{
			OperationID: verb + "-account", Method: http.MethodPost, Path: "/v1/accounts/{appid}/" + verb,
			Summary: summary, Tags: tags, Metadata: admin, Errors: []int{401, 403, 404},
			Description: "A disabled account is not refreshed; its current values stay readable until they expire. Enabling makes its credentials due at once.",
		}, func(ctx context.Context, in *appidPath) (*AccountOutput, error) {
			a, err := s.account(ctx, in.AppID)
			if err != nil {
				return nil, err
			}
			changed, err := s.store.SetAccountEnabled(ctx, a, enable)
			if err != nil {
				err = s.internal(err)
			}
			s.audit(ctx, "account."+verb, a.AppID, a.TenantID, err, nil)
			if err != nil {
				return nil, err
			}
			return s.accountOutput(ctx, changed)
		})
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "delete-account", Method: http.MethodDelete, Path: "/v1/accounts/{appid}", DefaultStatus: http.StatusNoContent,
		Summary: "Delete an account", Tags: tags, Metadata: admin, Errors: []int{401, 403, 404},
		Description: "Removes the account, its secret and credentials.",
	}, func(ctx context.Context, in *appidPath) (*struct{}, error) {
		a, err := s.account(ctx, in.AppID)
		if err != nil {
			return nil, err
		}
		if err := s.store.DeleteAccount(ctx, a); err != nil {
			err = s.internal(err)
			s.audit(ctx, "account.delete", a.AppID, a.TenantID, err, nil)
			return nil, err
		}
		s.audit(ctx, "account.delete", a.AppID, a.TenantID, nil, nil)
		return nil, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-settings", Method: http.MethodGet, Path: "/v1/accounts/{appid}/settings",
		Summary: "Get an account's settings", Tags: tags, Metadata: both, Errors: []int{401, 403, 404},
		Description: "The personalized settings document; the ETag header carries its version.",
	}, func(ctx context.Context, in *SettingsInput) (*SettingsOutput, error) {
		a, err := s.account(ctx, in.AppID)
		if err != nil {
			return nil, err
		}
		out, err := settingsOutput(a.Settings)
		if err != nil {
			return nil, s.internal(err)
		}
		return out, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "put-settings", Method: http.MethodPut, Path: "/v1/accounts/{appid}/settings",
		Summary: "Replace an account's settings", Tags: tags, Metadata: both, Errors: []int{400, 401, 403, 404, 412, 422, 428},
		Description: "Optimistic concurrency: If-Match must carry the ETag of the settings read (428 without it); 412 if " +
			"they changed since. As RFC 9110 says, If-Match compares strongly (a weak W/\"3\" never matches), may list " +
			"several ETags, and * matches whatever version is current.",
	}, func(ctx context.Context, in *PutSettingsInput) (*SettingsOutput, error) {
		if in.IfMatch == "" {
			return nil, huma.NewError(http.StatusPreconditionRequired,
				"If-Match is required: send the ETag of the settings you read, or * to replace whatever is there")
		}
		match, err := parseIfMatch(in.IfMatch)
		if err != nil {
			return nil, huma.Error400BadRequest("If-Match must be * or a list of ETags, like \"3\"")
		}
		a, err := s.account(ctx, in.AppID)
		if err != nil {
			return nil, err
		}
		version, ok := match.version(a.Settings.Version)
		if !ok {
			err := huma.Error412PreconditionFailed("the settings changed since that version; read them again")
			s.audit(ctx, "settings.update", a.AppID, a.TenantID, err, map[string]any{"if_match": in.IfMatch})
			return nil, err
		}
		if in.Body.Settings == nil {
			return nil, huma.Error422UnprocessableEntity("settings must be an object")
		}
		doc, err := json.Marshal(in.Body.Settings)
		if err != nil {
			return nil, huma.Error422UnprocessableEntity("settings must be a JSON object")
		}
		st, err := s.store.PutSettings(ctx, a, doc, version)
		switch {
		case errors.Is(err, db.ErrStaleVersion):
			err = huma.Error412PreconditionFailed("the settings changed since that version; read them again")
		case err != nil:
			err = s.internal(err)
		}
		s.audit(ctx, "settings.update", a.AppID, a.TenantID, err, map[string]any{"if_match": in.IfMatch})
		if err != nil {
			return nil, err
		}
		out, err := settingsOutput(st)
		if err != nil {
			return nil, s.internal(err)
		}
		return out, nil
	})
}

// account finds an account the caller may see; others' accounts are 404 like missing ones.
func (s *Server) account(ctx context.Context, appid string) (db.Account, error) {
	p, err := principal(ctx)
	if err != nil {
		return db.Account{}, s.internal(err)
	}
	a, err := s.store.GetAccount(ctx, appid)
	switch {
	case errors.Is(err, db.ErrNotFound):
		return db.Account{}, huma.Error404NotFound("no such account")
	case err != nil:
		return db.Account{}, s.internal(err)
	case !p.mayAccess(a.TenantID):
		return db.Account{}, huma.Error404NotFound("no such account")
	}
	return a, nil
}

func (s *Server) accountOutput(ctx context.Context, a db.Account) (*AccountOutput, error) {
	names, err := s.tenantNames(ctx)
	if err != nil {
		return nil, s.internal(err)
	}
	return &AccountOutput{Body: accountBody(a, names[a.TenantID])}, nil
}

func accountBody(a db.Account, tenant string) AccountBody {
	limits := a.DailyLimits
	if limits == nil {
		limits = map[string]int{}
	}
	tickets := a.Tickets
	if tickets == nil {
		tickets = []string{}
	}
	base := map[string]any{}
	_ = json.Unmarshal(a.BaseInfo, &base) // the column is a JSON object by constraint
	body := AccountBody{AppID: a.AppID, Kind: a.Kind, Tenant: tenant, Status: a.Status, StatusReason: a.StatusReason,
		TokenMode: a.TokenMode, Tickets: tickets, DailyLimits: limits, BaseInfo: base, CreatedAt: a.CreatedAt,
		CorpID: a.CorpID, AgentID: a.AgentID}
	if a.Kind == "authorizer" {
		// Both columns are JSON objects by constraint.
		_ = json.Unmarshal(a.AuthorizationInfo, &body.Authorization)
		_ = json.Unmarshal(a.WeChatInfo, &body.WeChatInfo)
		body.WeChatInfoAt = a.WeChatInfoAt
	}
	return body
}

// tenantNames maps tenant ids to names. Tenants are few; the account endpoints (not the
// credential ones) read them to name an account's tenant.
func (s *Server) tenantNames(ctx context.Context) (map[int64]string, error) {
	tenants, err := s.store.ListTenants(ctx)
	if err != nil {
		return nil, err
	}
	names := make(map[int64]string, len(tenants))
	for _, t := range tenants {
		names[t.ID] = t.Name
	}
	return names, nil
}

func tenantID(names map[int64]string, name string) (int64, bool) {
	for id, n := range names {
		if n == name {
			return id, true
		}
	}
	return 0, false
}

func settingsOutput(st db.Settings) (*SettingsOutput, error) {
	out := &SettingsOutput{ETag: `"` + strconv.FormatInt(st.Version, 10) + `"`}
	if err := json.Unmarshal(st.Document, &out.Body.Settings); err != nil {
		return nil, err
	}
	out.Body.Version = st.Version
	return out, nil
}

// ifMatch is a parsed If-Match header (RFC 9110, 13.1.1).
type ifMatch struct {
	any      bool    // "*": whatever version is current
	versions []int64 // the strong ETags of versions this API writes
}

// parseIfMatch reads If-Match: "*", or a comma-separated list of entity tags. A weak tag
// never matches (If-Match compares strongly) and a strong tag this API never writes matches
// no version, but both are well-formed; anything else is an error.
func parseIfMatch(v string) (ifMatch, error) {
	if strings.Trim(v, " \t") == "*" {
		return ifMatch{any: true}, nil
	}
	var m ifMatch
	tags := 0
	for el := range strings.SplitSeq(v, ",") {
		el = strings.Trim(el, " \t")
		if el == "" {
			continue // lists may hold empty elements (RFC 9110, 5.6.1)
		}
		tag, weak := strings.CutPrefix(el, "W/")
		if !opaqueTag(tag) {
			return ifMatch{}, fmt.Errorf("%q is not an entity tag", el)
		}
		tags++
		if n, err := parseETag(tag); err == nil && !weak {
			m.versions = append(m.versions, n)
		}
	}
	if tags == 0 {
		return ifMatch{}, errors.New("no entity tag")
	}
	return m, nil
}

// opaqueTag reports whether t is a quoted opaque-tag: etagc characters between double quotes.
func opaqueTag(t string) bool {
	if len(t) < 2 || t[0] != '"' || t[len(t)-1] != '"' {
		return false
	}
	for _, c := range []byte(t[1 : len(t)-1]) {
		if c != 0x21 && (c < 0x23 || c == 0x7f) {
			return false
		}
	}
	return true
}

// version is the version a change conditioned on m may replace, given the current one: the
// write is then fenced on it, so a change in between still answers 412.
func (m ifMatch) version(current int64) (int64, bool) {
	if m.any || slices.Contains(m.versions, current) {
		return current, true
	}
	return 0, false
}

// parseETag reads a strong ETag of the form "N".
func parseETag(v string) (int64, error) {
	inner, hasPrefix := strings.CutPrefix(v, `"`)
	inner, hasSuffix := strings.CutSuffix(inner, `"`)
	if !hasPrefix || !hasSuffix {
		return 0, errors.New("not a quoted ETag")
	}
	n, err := strconv.ParseInt(inner, 10, 64)
	if err != nil || n < 1 || strconv.FormatInt(n, 10) != inner {
		return 0, errors.New("not a version")
	}
	return n, nil
}

// checkWeCom requires corp_id and agent_id of a wecom_app and refuses them for other kinds.
func checkWeCom(kind, corpID string, agentID int64) error {
	wecom := kind == "wecom_app"
	if wecom != (corpID != "") || wecom != (agentID != 0) {
		return huma.Error422UnprocessableEntity("corp_id and agent_id are required for kind wecom_app and refused for other kinds")
	}
	return nil
}

// checkTickets refuses tickets the account's kind has not: wx_card is WeChat's, agent_config
// WeCom's, and a mini program has none (JS-SDK and card tickets sign an official account's
// web pages).
func checkTickets(kind string, tickets []string) error {
	if kind == "mini_program" && len(tickets) > 0 {
		return huma.Error422UnprocessableEntity("a mini_program account keeps no tickets: JS-SDK and card tickets are an official account's")
	}
	for _, t := range tickets {
		if (t == "agent_config") != (kind == "wecom_app") && t != "jsapi" {
			return huma.Error422UnprocessableEntity(fmt.Sprintf("a %s account cannot keep a %s ticket", kind, t))
		}
	}
	return nil
}

var apiName = regexp.MustCompile(`^[a-z_]{1,64}$`)

// checkLimits validates daily limit overrides: WeChat API names and non-negative counts.
func checkLimits(limits map[string]int) error {
	for api, n := range limits {
		if !apiName.MatchString(api) || n < 0 {
			return huma.Error422UnprocessableEntity("daily_limits maps WeChat API names (lowercase letters and _) to counts of at least 0")
		}
	}
	return nil
}

// checkCallback requires a component's callback settings, and refuses them (and tickets,
// which WeChat does not issue to a platform) elsewhere.
func checkCallback(kind string, cb *CallbackBody, tickets []string) (*db.CallbackConfig, error) {
	switch {
	case kind != "component" && cb != nil:
		return nil, huma.Error422UnprocessableEntity("callback is for a component (third-party platform) only", &huma.ErrorDetail{Location: "body.callback", Value: kind})
	case kind == "component" && cb == nil:
		return nil, huma.Error422UnprocessableEntity("a component needs callback: the token and EncodingAESKey of its authorization event URL", &huma.ErrorDetail{Location: "body.callback"})
	case kind == "component" && len(tickets) > 0:
		return nil, huma.Error422UnprocessableEntity("a component has no tickets; its authorizers do", &huma.ErrorDetail{Location: "body.tickets"})
	case cb == nil:
		return nil, nil
	}
	for field, key := range map[string]string{"encoding_aes_key": cb.EncodingAESKey, "previous_encoding_aes_key": cb.PreviousEncodingAESKey} {
		if _, err := callback.ParseKey(key); key != "" && err != nil {
			return nil, huma.Error422UnprocessableEntity(field+" is not an EncodingAESKey WeChat issues", &huma.ErrorDetail{Location: "body.callback." + field})
		}
	}
	return &db.CallbackConfig{Token: cb.Token, AESKey: cb.EncodingAESKey, PreviousAESKey: cb.PreviousEncodingAESKey}, nil
}
