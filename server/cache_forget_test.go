package server

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestTheCacheForgetsOldNotificationsAndWaiters(t *testing.T) {
	c := NewCache(nil, time.Second)
	for i := range 1000 {
		c.credentialChanged(int64(i), "access_token", 1)
		c.accountChanged(int64(i))
		c.Changed(int64(10_000+i), "access_token") // asked for, never notified
	}
	asked := c.Changed(20_000, "access_token")
	time.Sleep(10 * time.Millisecond)
	cut := time.Now()
	time.Sleep(10 * time.Millisecond)
	c.credentialChanged(5000, "access_token", 1)
	c.accountChanged(5000)
	require.Equal(t, asked, c.Changed(20_000, "access_token"), "asked again: one channel, kept")

	c.forget(cut)
	notified, accounts, waiters := c.sizes()
	require.Equal(t, 1, notified)
	require.Equal(t, 1, accounts)
	require.Equal(t, 1, waiters)
	c.credentialChanged(20_000, "access_token", 1)
	require.True(t, isClosed(asked), "the waiter kept is still woken")
}
