package worker

import (
	"context"
	"errors"
	"time"

	"wxhub/db"
	"wxhub/wechat"
)

// contextBatch is how many authorizers' contexts one pass reads.
const contextBatch = 50

// readContexts reads from WeChat the context of authorizers whose last read is older than
// ContextEvery (api_get_authorizer_info: authorizer_info and func_info) and stores what
// changed, which API nodes and app servers are told of. It returns when to look again: at
// once while a full batch was due and read, else in a minute (or a tenth of ContextEvery when that is
// shorter). A revoked authorization found this way is recorded as the unauthorized event
// would.
func (w *Worker) readContexts(ctx context.Context) time.Duration {
	later := min(time.Minute, w.cfg.ContextEvery/10)
	due, err := w.store.AuthorizersContextDue(ctx, time.Now().Add(-w.cfg.ContextEvery), contextBatch)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("authorizers' context not read", "err", err)
		}
		return later
	}
	failed := 0
	for _, a := range due {
		if ctx.Err() != nil {
			return later
		}
		outcome, err := w.readContext(ctx, a)
		w.metrics.contexts.WithLabelValues(outcome).Inc()
		if err != nil {
			failed++
			w.log.Warn("authorizer's context not read", "appid", a.AppID, "component", a.ComponentAppID, "err", err)
		}
	}
	// A failed read leaves its authorizer due: looking again at once would read it again.
	if len(due) == contextBatch && failed == 0 {
		return 0
	}
	return later
}

func (w *Worker) readContext(ctx context.Context, a db.AuthorizerDue) (string, error) {
	token, err := w.store.GetCredential(ctx, a.ComponentAccountID, "access_token")
	if err != nil || !time.Now().Before(token.ExpiresAt) {
		return "error", errNoAccessToken
	}
	if err := w.store.RecordCall(ctx, a.TenantID, a.AccountID, wechat.APIGetAuthorizerInfo, 0); err != nil {
		return "error", err
	}
	callCtx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	info, err := w.wechat.GetAuthorizerInfo(callCtx, a.ComponentAppID, token.Value, a.AppID)
	cancel()
	var we *wechat.Error
	if errors.As(err, &we) && wechat.Classify(err) == wechat.KindRevoked {
		comp := db.ComponentEndpoint{AccountID: a.ComponentAccountID, AppID: a.ComponentAppID}
		if _, err := w.store.RevokeAuthorization(ctx, comp, nil, a.AppID, time.Now()); err != nil {
			return "error", err
		}
		return "revoked", nil
	}
	if err != nil {
		return "error", err
	}
	changed, err := w.store.StoreAuthorizerContext(ctx, a.AccountID, db.AuthorizerContext{
		FuncInfo: info.Authorization.FuncInfo, WeChatInfo: info.BaseInfo})
	switch {
	case err != nil:
		return "error", err
	case changed:
		return "changed", nil
	}
	return "unchanged", nil
}
