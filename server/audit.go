package server

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"wxhub/db"
)

// audit records who did what to what and how it ended. The change is already made (or
// refused), so a failure to record it is logged rather than turned into an error.
func (s *Server) audit(ctx context.Context, action, target string, tenantID int64, opErr error, details map[string]any) {
	e := db.AuditEntry{Action: action, Target: target, Outcome: "success", Details: details}
	// A caller the gateway knows by the account's AppSecret acts with no key.
	if p, err := principal(ctx); err == nil && p.KeyID != 0 {
		e.ActorKeyID = &p.KeyID
	}
	if tenantID != 0 {
		e.TenantID = &tenantID
	}
	if opErr != nil {
		e.Outcome = "failure"
		if e.Details == nil {
			e.Details = map[string]any{}
		}
		if se, ok := opErr.(huma.StatusError); ok {
			e.Details["status"] = se.GetStatus()
		}
	}
	if err := s.store.Audit(context.WithoutCancel(ctx), e); err != nil {
		s.log.Error("audit entry not recorded", "action", action, "target", target, "err", err)
	}
}

// AuditEntryBody is an audit log entry as the API shows it.
type AuditEntryBody struct {
	ID         int64          `json:"id"`
	At         time.Time      `json:"at"`
	ActorKeyID *int64         `json:"actor_key_id,omitempty" doc:"The API key that acted."`
	Tenant     string         `json:"tenant,omitempty"`
	Action     string         `json:"action" doc:"e.g. account.create, account.update, settings.update, api_key.revoke, credential.force_refresh."`
	Target     string         `json:"target" doc:"An appid, api_key:<id> or a tenant name."`
	Outcome    string         `json:"outcome" doc:"success or failure."`
	Details    map[string]any `json:"details" doc:"Which fields changed, never their values."`
}

// ListAuditInput filters the audit log.
type ListAuditInput struct {
	Tenant string    `query:"tenant" doc:"Only entries of this tenant."`
	Action string    `query:"action" doc:"Only this action."`
	Target string    `query:"target" doc:"Only this target."`
	Since  time.Time `query:"since" doc:"Only entries at or after this time (RFC 3339)."`
	Cursor string    `query:"cursor" doc:"next_cursor of the previous page."`
	Limit  int       `query:"limit" minimum:"1" maximum:"500" default:"100"`
}

// ListAuditOutput is one page of the audit log, newest first.
type ListAuditOutput struct {
	Body struct {
		Items      []AuditEntryBody `json:"items"`
		NextCursor string           `json:"next_cursor,omitempty"`
	}
}

func (s *Server) registerAudit() {
	huma.Register(s.api, huma.Operation{
		OperationID: "list-audit-log", Method: http.MethodGet, Path: "/v1/audit-log",
		Summary: "Read the audit log", Tags: []string{"Audit"}, Metadata: map[string]any{rolesKey: []string{RoleAdmin}},
		Description: "Every change to accounts, secrets, settings, keys and tenants, and every forced refresh, newest first. Never a secret.",
		Errors:      []int{401, 403, 404, 422},
	}, func(ctx context.Context, in *ListAuditInput) (*ListAuditOutput, error) {
		f := db.AuditFilter{Action: in.Action, Target: in.Target, Limit: in.Limit + 1}
		if !in.Since.IsZero() {
			f.Since = &in.Since
		}
		if in.Cursor != "" {
			id, err := strconv.ParseInt(in.Cursor, 10, 64)
			if err != nil || id < 1 {
				return nil, huma.Error422UnprocessableEntity("cursor is not one this API returned")
			}
			f.BeforeID = id
		}
		if in.Tenant != "" {
			names, err := s.tenantNames(ctx)
			if err != nil {
				return nil, s.internal(err)
			}
			id, ok := tenantID(names, in.Tenant)
			if !ok {
				return nil, huma.Error404NotFound("no such tenant")
			}
			f.TenantID = &id
		}
		entries, err := s.store.ListAudit(ctx, f)
		if err != nil {
			return nil, s.internal(err)
		}
		out := &ListAuditOutput{}
		out.Body.Items = []AuditEntryBody{}
		for i, e := range entries {
			if i == in.Limit {
				out.Body.NextCursor = strconv.FormatInt(entries[i-1].ID, 10)
				break
			}
			if e.Details == nil {
				e.Details = map[string]any{}
			}
			out.Body.Items = append(out.Body.Items, AuditEntryBody{ID: e.ID, At: e.At, ActorKeyID: e.ActorKeyID,
				Tenant: e.TenantName, Action: e.Action, Target: e.Target, Outcome: e.Outcome, Details: e.Details})
		}
		return out, nil
	})
}
