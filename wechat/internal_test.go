package wechat

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestNewWithoutHTTPClientTimesOutAfterTenSeconds(t *testing.T) {
	c := New("https://api.weixin.qq.com", nil)
	require.Equal(t, 10*time.Second, c.http.Timeout)
	require.NotSame(t, http.DefaultClient, c.http, "http.DefaultClient has no timeout")
}

func TestNewUsesTheGivenHTTPClient(t *testing.T) {
	hc := &http.Client{Timeout: time.Second}
	require.Same(t, hc, New("https://api.weixin.qq.com", hc).http)
}
