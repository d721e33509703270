package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"wxhub/db"
	"wxhub/db/keyring"
	"wxhub/db/localpg"
	"wxhub/server"
	"wxhub/wechat"
	"wxhub/wechatsim"
	"wxhub/worker"
)

// demoAccounts are created in the simulator and in wxhub by every `wxhub dev` start.
var demoAccounts = []db.NewAccount{
	{Tenant: "demo", AppID: "wxdemo0000000001", Kind: "official_account", Secret: "demo-secret-1", Tickets: []string{"jsapi", "wx_card"}},
	{Tenant: "demo", AppID: "wxdemo0000000002", Kind: "mini_program", Secret: "demo-secret-2", TokenMode: "classic"},
}

func runDev(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("dev", stdout)
	listen := fs.String("listen", envOr("WXHUB_LISTEN", "127.0.0.1:8080"), "address of the API (env WXHUB_LISTEN)")
	simListen := fs.String("sim-listen", "127.0.0.1:8081", "address of the WeChat simulator")
	dataDir := fs.String("data-dir", "./.wxhub", "folder for the local PostgreSQL, the development key ring and the admin key (reused on the next run)")
	databaseURL := fs.String("database-url", envOr("DATABASE_URL", ""), "use this PostgreSQL instead of a local one (env DATABASE_URL)")
	ttl := fs.Duration("token-ttl", 7200*time.Second, "lifetime of the simulator's tokens")
	overlap := fs.Duration("overlap", 0, "how long a superseded token keeps working, for the simulator, the worker and the API (default: --token-ttl/24 in whole seconds, WeChat's 300s of 7200s)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: wxhub dev [flags]\n\nRuns PostgreSQL (unless DATABASE_URL is set), migrations, the API, a worker, the WeChat simulator\nand demo accounts in one process. For development only. Ctrl-C stops everything.")
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %s", errUsage, strings.Join(fs.Args(), " "))
	}
	if !flagGiven(fs, "overlap") {
		*overlap = devOverlap(*ttl)
	}
	if err := checkLifetimes(*ttl, *overlap); err != nil {
		return err
	}
	if *overlap < 3*time.Second {
		return fmt.Errorf("%w: --overlap %s is too short for dev: classic tokens are promised for two thirds of it, and at least 2s (give --overlap, or a --token-ttl of 72s or more)", errUsage, *overlap)
	}
	logger, err := newLogger(*logLevel)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		return err
	}
	ring, err := devKeyRing(*dataDir, logger)
	if err != nil {
		return err
	}

	if *databaseURL == "" {
		abs, err := filepath.Abs(filepath.Join(*dataDir, "postgres"))
		if err != nil {
			return err
		}
		pg, err := localpg.Start(ctx, localpg.Options{DataDir: abs, Durable: true})
		if err != nil {
			return err
		}
		defer func() {
			if err := pg.Stop(); err != nil {
				logger.Error("stop PostgreSQL", "err", err)
			}
		}()
		if err := localpg.EnsureDatabase(ctx, pg, "wxhub"); err != nil {
			return err
		}
		*databaseURL = pg.URL("wxhub")
		logger.Info("local PostgreSQL started", "data", abs, "url", *databaseURL)
	}
	m, err := db.NewMigrator(*databaseURL)
	if err != nil {
		return err
	}
	_, err = m.Up(ctx)
	if cerr := m.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	store, closeStore, err := openStore(ctx, *databaseURL, "wxhub-dev", ring)
	if err != nil {
		return err
	}
	defer closeStore()

	simLn, err := net.Listen("tcp", *simListen)
	if err != nil {
		return err
	}
	sim := wechatsim.New(wechatsim.Config{TokenTTL: *ttl, Overlap: *overlap})
	apiLn, err := net.Listen("tcp", *listen)
	if err != nil {
		simLn.Close()
		return err
	}
	adminKey, err := devAdminKey(ctx, store, *dataDir)
	if err != nil {
		simLn.Close()
		apiLn.Close()
		return err
	}
	if err := seedDemo(ctx, store, sim); err != nil {
		simLn.Close()
		apiLn.Close()
		return err
	}

	simURL := "http://" + simLn.Addr().String()
	// A short overlap needs a shorter call timeout (a call must end inside it) and staleness
	// bound (classic tokens are promised for the overlap minus the bound).
	scaled := min(*overlap/3, 10*time.Second)
	w, err := worker.New(store, wechat.New(simURL, nil), worker.Config{Logger: logger, Registerer: prometheus.NewRegistry(),
		PollInterval: 200 * time.Millisecond, Overlap: *overlap, CallTimeout: scaled})
	if err != nil {
		return err
	}
	api := newAPIServer(store, server.Config{ListenerURL: *databaseURL, Overlap: *overlap, StalenessBound: min(*overlap/3, 30*time.Second), Logger: logger})

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, run := range []func() error{
		func() error { return serveUntilDone(runCtx, simLn, sim) },
		func() error { return w.Run(runCtx) },
		func() error { return runAPI(runCtx, api, apiLn) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	printWelcome(stdout, "http://"+apiLn.Addr().String(), simURL, adminKey)
	wg.Wait()
	close(errs)
	return errors.Join(collect(errs)...)
}

// devOverlap scales the overlap with the token lifetime in WeChat's ratio,
// 300 s of 7200 s, so a short --token-ttl for quick cycles keeps a sensible
// overlap. Whole seconds, because expires_in is; at least one.
func devOverlap(ttl time.Duration) time.Duration {
	return max(time.Second, (ttl / 24).Truncate(time.Second))
}

// flagGiven reports whether the command line set the flag named name.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

func collect(errs <-chan error) []error {
	var out []error
	for err := range errs {
		out = append(out, err)
	}
	return out
}

// devKeyRing uses WXHUB_KEYS when set, otherwise a key ring kept in the data folder.
func devKeyRing(dataDir string, logger *slog.Logger) (*keyring.Ring, error) {
	if spec := os.Getenv(keyring.EnvVar); spec != "" {
		return keyring.Parse(spec)
	}
	path := filepath.Join(dataDir, "dev-keys")
	spec, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		s, err := keyring.Generate("dev")
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
			return nil, err
		}
		spec = []byte(s)
	} else if err != nil {
		return nil, err
	}
	logger.Warn("using the development key ring in " + path + ": it sits next to the data it protects, so it is for development only; production sets WXHUB_KEYS from a secret store")
	return keyring.Parse(strings.TrimSpace(string(spec)))
}

// devAdminKey uses WXHUB_BOOTSTRAP_ADMIN_KEY when set, otherwise an admin key kept in the
// data folder, and makes sure it exists.
func devAdminKey(ctx context.Context, store *db.Store, dataDir string) (string, error) {
	key := os.Getenv("WXHUB_BOOTSTRAP_ADMIN_KEY")
	if key == "" {
		path := filepath.Join(dataDir, "admin-key")
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if key, _, _, err = server.NewKey(); err != nil {
				return "", err
			}
			if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
				return "", err
			}
		case err != nil:
			return "", err
		default:
			key = strings.TrimSpace(string(b))
		}
	}
	return key, server.EnsureBootstrapKey(ctx, store, key)
}

// seedDemo creates the demo tenant and accounts. The simulator starts empty every run, so
// demo accounts are created afresh: tokens stored by an earlier run mean nothing to it.
func seedDemo(ctx context.Context, store *db.Store, sim *wechatsim.Simulator) error {
	if _, err := store.CreateTenant(ctx, "demo"); err != nil && !errors.Is(err, db.ErrConflict) {
		return err
	}
	for _, a := range demoAccounts {
		if err := sim.AddAccount(wechatsim.Account{AppID: a.AppID, Secret: a.Secret, Kind: a.Kind}); err != nil {
			return err
		}
		if old, err := store.GetAccount(ctx, a.AppID); err == nil {
			if err := store.DeleteAccount(ctx, old); err != nil {
				return err
			}
		}
		if _, err := store.CreateAccount(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

func printWelcome(w io.Writer, apiURL, simURL, adminKey string) {
	a := demoAccounts[0].AppID
	fmt.Fprintf(w, `
wxhub dev is running (development only: local data, a development key ring).

  API        %[1]s   (docs: %[1]s/docs, OpenAPI: %[1]s/openapi.yaml)
  simulator  %[2]s   (stands in for WeChat; counters at %[2]s/sim/stats)
  admin key  %[3]s

Try:
  curl -H 'Authorization: Bearer %[3]s' %[1]s/v1/accounts/%[4]s/access-token
  curl -H 'Authorization: Bearer %[3]s' -H 'Content-Type: application/json' -d '{"url":"https://example.com/page"}' %[1]s/v1/accounts/%[4]s/jssdk-config
  curl -H 'Authorization: Bearer %[3]s' %[1]s/v1/accounts

Ctrl-C stops everything.
`, apiURL, simURL, adminKey, a)
}
