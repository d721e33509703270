package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"wxhub/wechatsim"
)

// accountFlags collects repeated --account appid:secret[:kind] flags, and
// appid:secret:wecom_app:corpid:agentid for a WeCom app.
type accountFlags []wechatsim.Account

func (a *accountFlags) String() string { return fmt.Sprintf("%d accounts", len(*a)) }

func (a *accountFlags) Set(v string) error {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 5 || len(parts) == 4 || parts[0] == "" || parts[1] == "" {
		return errors.New("want appid:secret, appid:secret:kind or appid:secret:wecom_app:corpid:agentid")
	}
	acct := wechatsim.Account{AppID: parts[0], Secret: parts[1]}
	if len(parts) >= 3 {
		acct.Kind = parts[2]
	}
	if len(parts) == 5 {
		agentID, err := strconv.ParseInt(parts[4], 10, 64)
		if acct.Kind != wechatsim.KindWeComApp || parts[3] == "" || err != nil || agentID <= 0 {
			return errors.New("want appid:secret:wecom_app:corpid:agentid, agentid a positive number")
		}
		acct.CorpID, acct.AgentID = parts[3], agentID
	}
	*a = append(*a, acct)
	return nil
}

func runSim(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("sim", stdout)
	listen := fs.String("listen", "127.0.0.1:8081", "address to serve the simulated WeChat APIs on")
	ttl := fs.Duration("token-ttl", 7200*time.Second, "lifetime of issued tokens and tickets (expires_in)")
	overlap := fs.Duration("overlap", 300*time.Second, "how long a superseded token keeps working (shorter than --token-ttl)")
	survivors := fs.Int("classic-survivors", wechatsim.DefaultClassicSurvivors, "how many superseded classic tokens (and tickets of a type) stay alive beside the current one; a fetch that would leave more kills the oldest at once")
	sameToken := fs.Bool("wecom-same-token", false, "WeCom's gettoken answers the current token while it is valid, as WeCom documents (default: a new token on every call, the previous one overlapping like a classic WeChat token)")
	expiredCode := fs.Int("wecom-expired-code", wechatsim.CodeInvalidAccessToken, "errcode of an expired WeCom token: 40014 or 42001")
	ticketInterval := fs.Duration("ticket-interval", wechatsim.DefaultTicketInterval, "how often each component with a callback_url gets a component_verify_ticket pushed (the first at once); negative: only on POST /sim/component/ticket")
	keepRefresh := fs.Bool("keep-refresh-token", false, "api_authorizer_token answers the refresh token it was given instead of rotating it")
	var accounts accountFlags
	fs.Var(&accounts, "account", "create an account at start: appid:secret[:kind], or appid:secret:wecom_app:corpid:agentid (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: wxhub sim [flags]")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %s", errUsage, strings.Join(fs.Args(), " "))
	}
	if err := checkLifetimes(*ttl, *overlap); err != nil {
		return err
	}
	if *expiredCode != wechatsim.CodeInvalidAccessToken && *expiredCode != wechatsim.CodeTokenExpired {
		return fmt.Errorf("%w: --wecom-expired-code %d: want 40014 or 42001", errUsage, *expiredCode)
	}
	if *survivors < 1 {
		return fmt.Errorf("%w: --classic-survivors %d must be at least 1: WeChat promises that the old and the new token work together", errUsage, *survivors)
	}

	sim := wechatsim.New(wechatsim.Config{
		TokenTTL: *ttl, Overlap: *overlap, ClassicSurvivors: *survivors,
		WeCom:     wechatsim.WeComConfig{SameToken: *sameToken, ExpiredCode: *expiredCode},
		Component: wechatsim.ComponentConfig{TicketInterval: *ticketInterval, KeepRefreshToken: *keepRefresh},
	})
	defer sim.Close()
	for _, a := range accounts {
		if err := sim.AddAccount(a); err != nil {
			return fmt.Errorf("account %s: %w", a.AppID, err)
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	slog.Info("WeChat simulator listening", "addr", ln.Addr().String(), "token_ttl", ttl.String(), "overlap", overlap.String(), "classic_survivors", *survivors)
	return serveUntilDone(ctx, ln, sim)
}

// checkLifetimes refuses a token lifetime and overlap that do not describe
// WeChat (300 s of 7200 s): both must be positive and the overlap shorter
// than the lifetime, or a replaced token would outlive its successor.
func checkLifetimes(ttl, overlap time.Duration) error {
	switch {
	case ttl <= 0:
		return fmt.Errorf("%w: --token-ttl %s must be positive", errUsage, ttl)
	case overlap <= 0:
		return fmt.Errorf("%w: --overlap %s must be positive", errUsage, overlap)
	case overlap >= ttl:
		return fmt.Errorf("%w: --overlap %s must be shorter than --token-ttl %s", errUsage, overlap, ttl)
	}
	return nil
}

// serveUntilDone serves h on ln until ctx ends, then lets requests in flight finish.
func serveUntilDone(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}
