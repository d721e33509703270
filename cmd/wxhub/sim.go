package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"wxhub/wechatsim"
)

// accountFlags collects repeated --account appid:secret[:kind] flags.
type accountFlags []wechatsim.Account

func (a *accountFlags) String() string { return fmt.Sprintf("%d accounts", len(*a)) }

func (a *accountFlags) Set(v string) error {
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return errors.New("want appid:secret or appid:secret:kind")
	}
	acct := wechatsim.Account{AppID: parts[0], Secret: parts[1]}
	if len(parts) == 3 {
		acct.Kind = parts[2]
	}
	*a = append(*a, acct)
	return nil
}

func runSim(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("sim", stdout)
	listen := fs.String("listen", "127.0.0.1:8081", "address to serve the simulated WeChat APIs on")
	ttl := fs.Duration("token-ttl", 7200*time.Second, "lifetime of issued tokens and tickets (expires_in)")
	overlap := fs.Duration("overlap", 300*time.Second, "how long a superseded token keeps working")
	var accounts accountFlags
	fs.Var(&accounts, "account", "create an account at start: appid:secret[:kind] (repeatable)")
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
	if *ttl <= 0 || *overlap <= 0 || *overlap >= *ttl {
		return fmt.Errorf("%w: need 0 < --overlap < --token-ttl", errUsage)
	}

	sim := wechatsim.New(wechatsim.Config{TokenTTL: *ttl, Overlap: *overlap})
	for _, a := range accounts {
		if err := sim.AddAccount(a); err != nil {
			return fmt.Errorf("account %s: %w", a.AppID, err)
		}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	slog.Info("WeChat simulator listening", "addr", ln.Addr().String(), "token_ttl", ttl.String(), "overlap", overlap.String())
	return serveUntilDone(ctx, ln, sim)
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
