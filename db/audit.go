package db

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"wxhub/db/dbsqlc"
)

// AuditEntry is one line of the audit log: who did what to what, and how it ended. Details
// name fields, never their values.
type AuditEntry struct {
	ID         int64
	At         time.Time
	ActorKeyID *int64
	TenantID   *int64
	TenantName string
	Action     string
	Target     string
	Outcome    string // success or failure
	Details    map[string]any
}

// Audit records an entry.
func (s *Store) Audit(ctx context.Context, e AuditEntry) error {
	details, err := json.Marshal(e.Details)
	if err != nil || e.Details == nil {
		details = []byte(`{}`)
	}
	if err := s.q.AuditInsert(ctx, dbsqlc.AuditInsertParams{ActorKeyID: e.ActorKeyID, TenantID: e.TenantID,
		Action: e.Action, Target: e.Target, Outcome: e.Outcome, Details: details}); err != nil {
		return fmt.Errorf("audit %s %s: %w", e.Action, e.Target, err)
	}
	return nil
}

// AuditFilter selects audit entries; zero fields select everything.
type AuditFilter struct {
	TenantID *int64
	Action   string
	Target   string
	Since    *time.Time
	BeforeID int64 // the cursor: entries older than this id
	Limit    int
}

// ListAudit returns audit entries, newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	p := dbsqlc.AuditListParams{BeforeID: f.BeforeID, TenantID: f.TenantID, Since: f.Since, Max: int32(f.Limit)}
	if f.Action != "" {
		p.Action = &f.Action
	}
	if f.Target != "" {
		p.Target = &f.Target
	}
	rows, err := s.q.AuditList(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	out := make([]AuditEntry, 0, len(rows))
	for _, r := range rows {
		e := AuditEntry{ID: r.ID, At: r.At, ActorKeyID: r.ActorKeyID, TenantID: r.TenantID, Action: r.Action,
			Target: r.Target, Outcome: r.Outcome}
		if r.TenantName != nil {
			e.TenantName = *r.TenantName
		}
		if err := json.Unmarshal(r.Details, &e.Details); err != nil {
			return nil, fmt.Errorf("audit entry %d: %w", r.ID, err)
		}
		out = append(out, e)
	}
	return out, nil
}
