package wechat_test

import (
	"context"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"wxhub/wechat"
	"wxhub/wechatsim"
)

// simClock is the simulator's clock, moved by the test.
type simClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *simClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *simClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestWeComAgainstTheSimulator(t *testing.T) {
	clock := &simClock{t: time.Date(2026, 3, 10, 2, 0, 0, 0, time.UTC)}
	sim := wechatsim.New(wechatsim.Config{Now: clock.Now, WeCom: wechatsim.WeComConfig{AgentTicketLimit: 1}})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	for agent, secret := range map[int64]string{1: "secret-1", 2: "secret-2"} {
		require.NoError(t, sim.AddAccount(wechatsim.Account{AppID: "app" + secret, Secret: secret,
			Kind: wechatsim.KindWeComApp, CorpID: testCorpID, AgentID: agent}))
	}
	c := wechat.New(srv.URL+wechatsim.WeComPrefix, srv.Client())
	ctx := context.Background()

	t1, err := c.WeComToken(ctx, testCorpID, "secret-1")
	require.NoError(t, err)
	t2, err := c.WeComToken(ctx, testCorpID, "secret-2")
	require.NoError(t, err)
	require.NotEqual(t, t1.Value, t2.Value, "each agent has its own token")
	require.Equal(t, 7200*time.Second, t1.ExpiresIn)

	corp, err := c.WeComJSAPITicket(ctx, t1.Value)
	require.NoError(t, err)
	require.NotEmpty(t, corp.Value)
	agent, err := c.WeComAgentTicket(ctx, t1.Value)
	require.NoError(t, err)
	require.NotEqual(t, corp.Value, agent.Value)

	tests := []struct {
		name string
		call func() error
		code int
		kind wechat.Kind
	}{
		{name: "wrong corpsecret", code: 40001, kind: wechat.KindConfiguration, call: func() error {
			_, err := c.WeComToken(ctx, testCorpID, "wrong")
			return err
		}},
		{name: "unknown corp", code: 40013, kind: wechat.KindConfiguration, call: func() error {
			_, err := c.WeComToken(ctx, "ww_nobody", "secret-1")
			return err
		}},
		{name: "agent ticket over the hourly limit", code: 45009, kind: wechat.KindQuota, call: func() error {
			_, err := c.WeComAgentTicket(ctx, t1.Value)
			return err
		}},
		{name: "expired token answers 40014", code: 40014, kind: wechat.KindTokenInvalid, call: func() error {
			clock.Add(2 * time.Hour)
			_, err := c.WeComJSAPITicket(ctx, t2.Value)
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			var we *wechat.Error
			require.ErrorAs(t, err, &we)
			require.Equal(t, tt.code, we.Code)
			require.Equal(t, tt.kind, wechat.Classify(err))
			require.NotContains(t, err.Error(), "secret-1")
		})
	}
}
