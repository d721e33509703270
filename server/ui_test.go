package server_test

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"wxhub/wechatsim"
)

var (
	chromiumOnce sync.Once
	chromiumPath string
	chromiumWhy  string
)

// chromium finds a Chromium, installing Debian's package when it is missing and the test
// runs as root; the test is skipped, saying why, only where neither works.
func chromium(t *testing.T) string {
	t.Helper()
	chromiumOnce.Do(func() {
		find := func() bool {
			for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
				if p, err := exec.LookPath(name); err == nil {
					chromiumPath = p
					return true
				}
			}
			return false
		}
		if find() {
			return
		}
		if os.Geteuid() != 0 {
			chromiumWhy = "Chromium is not installed, and installing it needs root"
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		apt := func(args ...string) error {
			cmd := exec.CommandContext(ctx, "apt-get", args...)
			cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
			out, err := cmd.CombinedOutput()
			if err != nil {
				chromiumWhy = "apt-get " + strings.Join(args, " ") + ": " + err.Error() + ": " + string(out)
			}
			return err
		}
		install := []string{"install", "-y", "-qq", "--no-install-recommends", "chromium"}
		if apt(install...) != nil {
			if apt("update", "-qq") == nil {
				_ = apt(install...)
			}
		}
		find()
	})
	if chromiumPath == "" {
		t.Skipf("no Chromium for the browser test: %s", chromiumWhy)
	}
	return chromiumPath
}

func TestTheStatusPageShowsAFailingAccountWithinFiveSeconds(t *testing.T) {
	t.Parallel()
	browserPath := chromium(t)
	e := newEnv(t, time.Hour, 5*time.Minute)
	n := e.startNode(t, 30*time.Second)
	e.startWorker(t)
	e.tenant(t, n, "acme")
	e.account(t, n, "acme", appid(1))
	e.account(t, n, "acme", appid(2))
	tok, _ := n.token(t, adminKey, appid(1))
	n.token(t, adminKey, appid(2))
	key := e.tenantKey(t, n, "acme")

	alloc, stopAlloc := chromedp.NewExecAllocator(context.Background(),
		append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browserPath), chromedp.NoSandbox)...)
	defer stopAlloc()
	browser, stopBrowser := chromedp.NewContext(alloc)
	defer stopBrowser()
	ctx, cancel := context.WithTimeout(browser, 2*time.Minute)
	defer cancel()
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(n.url+"/ui"),
		chromedp.WaitVisible(`input[name=key]`),
		chromedp.SendKeys(`input[name=key]`, key),
		chromedp.Submit(`input[name=key]`),
		chromedp.WaitVisible(`#accounts`),
	))
	page := func() string {
		html, err := chromedp.Run(ctx, chromedp.OuterHTML("html"))
		require.NoError(t, err)
		return html
	}
	first := page()
	require.Contains(t, first, "tenant acme")
	require.NotContains(t, first, `data-appid="`+appid(1)+`"`, "a healthy account needs no attention")

	// The AppSecret is reset at WeChat, so the one wxhub holds is wrong; an app server reports
	// the token, and the refresh that follows fails.
	broken := time.Now()
	require.NoError(t, e.sim.AddAccount(wechatsim.Account{AppID: appid(1), Secret: "reset-at-wechat"}))
	go func() {
		req, err := http.NewRequest(http.MethodPost, n.url+"/v1/accounts/"+appid(1)+"/access-token/invalidate",
			strings.NewReader(`{"access_token":"`+tok+`","errcode":40001}`))
		if err != nil {
			return
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}()
	var html string
	for {
		html = page()
		if strings.Contains(html, `<tr class="failing" data-appid="`+appid(1)+`"`) {
			break
		}
		require.Less(t, time.Since(broken), 5*time.Second, "the failing account did not appear within 5 s: %s", html)
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the failing account appeared %s after its secret was made wrong", time.Since(broken).Round(time.Millisecond))
	require.Contains(t, html, "40001", "WeChat's errcode")
	require.Contains(t, html, "The AppSecret is wrong", "what to do")
	for _, secret := range []string{"secret-" + appid(1), "reset-at-wechat", tok, key} {
		require.NotContains(t, html, secret, "no secret, token or key in the page")
	}
}
