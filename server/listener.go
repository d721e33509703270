package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Channel is the PostgreSQL notification channel credential, account and key changes are
// announced on.
const Channel = "wxhub_changes"

// change is a notification's payload: a credential's new generation, an account change
// (kind "account"), a revoked API key, or the credentials a batch of writes changed.
type change struct {
	AccountID   int64             `json:"account_id"`
	Kind        string            `json:"kind"`
	Generation  int64             `json:"generation"`
	APIKey      string            `json:"api_key"`
	Credentials []credentialWrite `json:"credentials"`
}

// credentialWrite is one credential of a batch notification, sent as the array
// [account_id, kind, generation] to keep the payload short.
type credentialWrite struct {
	AccountID  int64
	Kind       string
	Generation int64
}

// UnmarshalJSON reads the array form.
func (w *credentialWrite) UnmarshalJSON(b []byte) error {
	var fields []json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	if len(fields) != 3 {
		return fmt.Errorf("credential change has %d fields, want 3", len(fields))
	}
	return errors.Join(json.Unmarshal(fields[0], &w.AccountID), json.Unmarshal(fields[1], &w.Kind),
		json.Unmarshal(fields[2], &w.Generation))
}

// Listener keeps one connection of its own LISTENing (not from the pool, so it can bypass a
// transaction pooler), proves it alive with pings, and reconnects with backoff. Every new
// session tells the caches that notifications may have been missed.
type Listener struct {
	url       string
	cache     *Cache
	keys      *keyCache
	bound     time.Duration
	log       *slog.Logger
	connected atomic.Bool
	// backendPID is the server process of the current session, for tests that terminate it.
	backendPID atomic.Uint32
}

// Connected reports whether a listening session is up.
func (l *Listener) Connected() bool { return l.connected.Load() }

// BackendPID is the PostgreSQL backend of the current session (0 when none).
func (l *Listener) BackendPID() uint32 { return l.backendPID.Load() }

// Run listens until ctx ends.
func (l *Listener) Run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		err := l.session(ctx)
		l.connected.Store(false)
		l.backendPID.Store(0)
		l.cache.sessionEnded()
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errSessionWasUp) {
			failures = 0
		}
		failures++
		wait := min(time.Duration(1<<min(failures, 6))*50*time.Millisecond, 5*time.Second)
		l.log.Warn("listener connection lost; reconnecting", "err", err, "retry_in", wait)
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

var errSessionWasUp = errors.New("session ended")

// session runs one LISTEN connection until it fails.
func (l *Listener) session(ctx context.Context) error {
	connectCtx, cancel := context.WithTimeout(ctx, l.bound/2)
	conn, err := l.connect(connectCtx)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+Channel); err != nil {
		return err
	}
	l.backendPID.Store(conn.PgConn().PID())
	l.connected.Store(true)
	l.cache.sessionStarted()
	l.keys.sessionStarted()
	pingEvery, pingTimeout := l.bound/3, l.bound/6
	for {
		waitCtx, cancel := context.WithTimeout(ctx, pingEvery)
		n, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			l.cache.alive()
			l.dispatch(n.Payload)
			continue
		case ctx.Err() != nil:
			return nil
		case !errors.Is(err, context.DeadlineExceeded):
			return errors.Join(errSessionWasUp, err)
		}
		// Idle: a half-open connection would wait forever, so prove the session alive.
		pingCtx, cancel := context.WithTimeout(ctx, pingTimeout)
		err = conn.Ping(pingCtx)
		cancel()
		if err != nil {
			return errors.Join(errSessionWasUp, err)
		}
		l.cache.alive()
	}
}

// connect opens the LISTEN connection, named wxhub-listener unless the URL names it.
func (l *Listener) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(l.url)
	if err != nil {
		return nil, errors.New("listener: the database URL is not valid")
	}
	if _, named := cfg.RuntimeParams["application_name"]; !named {
		cfg.RuntimeParams["application_name"] = "wxhub-listener"
	}
	return pgx.ConnectConfig(ctx, cfg)
}

func (l *Listener) dispatch(payload string) {
	var c change
	if err := json.Unmarshal([]byte(payload), &c); err != nil {
		l.log.Warn("unreadable notification", "err", err)
		return
	}
	for _, w := range c.Credentials {
		l.cache.credentialChanged(w.AccountID, w.Kind, w.Generation)
	}
	switch {
	case c.APIKey != "":
		l.keys.revoked(c.APIKey)
	case c.Kind == "account":
		l.cache.accountChanged(c.AccountID)
	case c.Kind != "":
		l.cache.credentialChanged(c.AccountID, c.Kind, c.Generation)
	}
}
