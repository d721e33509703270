package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// AccountContextBody is what app servers act on about an account beyond its credentials:
// whether it may be used, what it is, and what its merchant granted.
type AccountContextBody struct {
	AppID         string         `json:"appid"`
	Kind          string         `json:"kind" doc:"official_account, mini_program, wecom_app, component or authorizer."`
	Status        string         `json:"status" doc:"active, disabled, failing or unauthorized."`
	StatusReason  string         `json:"status_reason,omitempty"`
	BaseInfo      map[string]any `json:"base_info" doc:"Base information as app servers stored it."`
	WeChatInfo    map[string]any `json:"wechat_info,omitempty" doc:"An authorizer's authorizer_info as WeChat last reported it (nick_name, service_type_info, verify_type_info, principal_name, ...)."`
	Authorization map[string]any `json:"authorization,omitempty" doc:"An authorizer's grant: func_info, the function scopes."`
	WeChatInfoAt  *time.Time     `json:"wechat_info_at,omitempty" doc:"When wechat_info and authorization were last read from WeChat (not part of the ETag: a read that found nothing new changes nothing)."`
}

// AccountContextInput asks for an account's context, or waits for it to change.
type AccountContextInput struct {
	AppID       string `path:"appid" pattern:"^[A-Za-z0-9_-]{1,64}$" doc:"The account's appid." example:"wx0000000000000001"`
	IfNoneMatch string `header:"If-None-Match" doc:"The ETag of the context the caller holds: with wait, the answer comes when the context differs from it (or 304 when the wait ends); without wait, 304 at once if it is still current."`
	// At most 20 s: inside the API listener's 30 s write timeout.
	Wait int `query:"wait" minimum:"0" maximum:"20" default:"0" doc:"Seconds to wait for a change from the If-None-Match ETag (long polling); 0 answers at once."`
}

// AccountContextOutput is the context with its ETag, or a 304 without a body.
type AccountContextOutput struct {
	Status int
	ETag   string `header:"ETag" doc:"The context's version, a hash of every field but wechat_info_at."`
	Body   *AccountContextBody
}

func (s *Server) registerAccountContext() {
	huma.Register(s.api, huma.Operation{
		OperationID: "get-account-context", Method: http.MethodGet, Path: "/v1/accounts/{appid}/context",
		Summary: "Get or watch an account's context", Tags: []string{"Accounts"},
		Metadata: map[string]any{rolesKey: []string{RoleAdmin, RoleTenant}}, Errors: []int{304, 401, 403, 404},
		Description: "The account's status, base information and, for an authorizer, what WeChat reports of it and the " +
			"function scopes its merchant granted (read at every authorization event and daily). The ETag changes with " +
			"any of them. To be told of a change, send the ETag held in If-None-Match with wait=N: the answer comes " +
			"as soon as the context differs (a merchant changed its grant, revoked it, WeChat reported new base " +
			"information), or as 304 when N seconds pass without a change; then ask again.",
	}, func(ctx context.Context, in *AccountContextInput) (*AccountContextOutput, error) {
		a, err := s.account(ctx, in.AppID)
		if err != nil {
			return nil, err
		}
		held := etags(in.IfNoneMatch)
		deadline := time.Now().Add(time.Duration(in.Wait) * time.Second)
		for {
			changed := s.cache.accountChange(a.ID)
			if a, err = s.account(ctx, in.AppID); err != nil {
				return nil, err
			}
			names, err := s.tenantNames(ctx)
			if err != nil {
				return nil, s.internal(err)
			}
			body := accountContextBody(accountBody(a, names[a.TenantID]))
			tag := contextETag(body)
			if !held[tag] && !held[`W/*`] {
				return &AccountContextOutput{Status: http.StatusOK, ETag: tag, Body: &body}, nil
			}
			left := time.Until(deadline)
			if left <= 0 {
				return &AccountContextOutput{Status: http.StatusNotModified, ETag: tag}, nil
			}
			// A lost notification is caught by reading again within the staleness bound.
			timer := time.NewTimer(min(left, max(s.cfg.StalenessBound, time.Second)))
			select {
			case <-changed:
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return nil, ctx.Err()
			}
			timer.Stop()
		}
	})
}

func accountContextBody(b AccountBody) AccountContextBody {
	return AccountContextBody{AppID: b.AppID, Kind: b.Kind, Status: b.Status, StatusReason: b.StatusReason,
		BaseInfo: b.BaseInfo, WeChatInfo: b.WeChatInfo, Authorization: b.Authorization, WeChatInfoAt: b.WeChatInfoAt}
}

// contextETag is a weak ETag over the context without wechat_info_at.
func contextETag(b AccountContextBody) string {
	b.WeChatInfoAt = nil
	data, err := json.Marshal(b)
	if err != nil {
		panic(err) // maps of JSON values and strings always marshal
	}
	sum := sha256.Sum256(data)
	return `W/"` + hex.EncodeToString(sum[:12]) + `"`
}

// etags parses an If-None-Match list; a strong form matches its weak one, and * any.
func etags(header string) map[string]bool {
	set := map[string]bool{}
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimSpace(t)
		if t == "" {
			continue
		}
		if !strings.HasPrefix(t, "W/") {
			t = "W/" + t
		}
		set[t] = true
	}
	return set
}
