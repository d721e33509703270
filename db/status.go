package db

import (
	"context"
	"fmt"

	"wxhub/db/dbsqlc"
)

// Status is what the status page shows: how accounts fare, what is due, today's quotas.
// It holds no secret and no value.
type Status struct {
	AccountsByStatus map[string]int64
	Troubled         []dbsqlc.StatusTroubledAccountsRow
	Due, Overdue     int64
	Quota            []dbsqlc.StatusQuotaTodayRow
}

// Status reads the status of one tenant's accounts, or every tenant's when tenantID is nil,
// listing at most limit troubled accounts and busiest quotas.
func (s *Store) Status(ctx context.Context, tenantID *int64, limit int32) (Status, error) {
	st := Status{AccountsByStatus: map[string]int64{}}
	counts, err := s.q.StatusAccountCounts(ctx, tenantID)
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	for _, c := range counts {
		st.AccountsByStatus[c.Status] = c.Accounts
	}
	if st.Troubled, err = s.q.StatusTroubledAccounts(ctx, dbsqlc.StatusTroubledAccountsParams{TenantID: tenantID, Max: limit}); err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	due, err := s.q.StatusDue(ctx, tenantID)
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	st.Due, st.Overdue = due.Due, due.Overdue
	if st.Quota, err = s.q.StatusQuotaToday(ctx, dbsqlc.StatusQuotaTodayParams{TenantID: tenantID, Max: limit}); err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	return st, nil
}
