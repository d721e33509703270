package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
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

// demoAccounts are created in wxhub by the first `wxhub dev` start, in tenant demo.
var demoAccounts = []db.NewAccount{
	{Tenant: "demo", AppID: "wxdemo0000000001", Kind: "official_account", Secret: "demo-secret-1", Tickets: []string{"jsapi", "wx_card"}},
	{Tenant: "demo", AppID: "wxdemo0000000002", Kind: "mini_program", Secret: "demo-secret-2", TokenMode: "classic"},
	{Tenant: "demo", AppID: "wecomdemo0000001", Kind: "wecom_app", Secret: "demo-corpsecret-1", Tickets: []string{"jsapi", "agent_config"},
		CorpID: "wwdemo0000000001", AgentID: 1000002},
}

func runDev(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("dev", stdout)
	listen := fs.String("listen", envOr("WXHUB_LISTEN", "127.0.0.1:8080"), "address of the API (env WXHUB_LISTEN)")
	simListen := fs.String("sim-listen", "127.0.0.1:8081", "address of the WeChat simulator")
	gatewayListen := fs.String("gateway-listen", "127.0.0.1:8082", "address of the WeChat-compatible gateway, which forwards to the simulator (or --wechat-base-url); empty: no gateway")
	dataDir := fs.String("data-dir", "./.wxhub", "folder for the local PostgreSQL, the development key ring and the admin key (reused on the next run)")
	databaseURL := fs.String("database-url", envOr("DATABASE_URL", ""), "use this PostgreSQL instead of a local one (env DATABASE_URL)")
	ttl := fs.Duration("token-ttl", 7200*time.Second, "lifetime of the simulator's tokens")
	overlap := fs.Duration("overlap", 0, "how long a superseded token keeps working, for the simulator, the worker and the API (default: --token-ttl/24 in whole seconds, WeChat's 300s of 7200s)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	wechatURL := fs.String("wechat-base-url", "", "call this WeChat (the real one, https://api.weixin.qq.com, or another simulator) instead of running one; no demo accounts then")
	wecomURL := fs.String("wecom-base-url", envOr("WXHUB_WECOM_BASE_URL", ""), "call this WeCom for wecom_app accounts (default: the simulator's /qyapi, or https://qyapi.weixin.qq.com with --wechat-base-url) (env WXHUB_WECOM_BASE_URL)")
	var accounts accountFlags
	fs.Var(&accounts, "account", "create an account of your own in tenant demo at start (and in the simulator): appid:secret[:kind], or appid:secret:wecom_app:corpid:agentid (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: wxhub dev [flags]\n\nRuns PostgreSQL (unless DATABASE_URL is set), migrations, the API, a worker, the WeChat simulator\nand demo accounts in one process. Accounts created through the API (or --account) work against the\nsimulator at once, and keep working across restarts. For development only. Ctrl-C stops everything.\n\nWXHUB_KEYS and WXHUB_BOOTSTRAP_ADMIN_KEY, when set, replace the key ring and admin key kept in --data-dir.")
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
		if errors.Is(err, localpg.ErrNoBinaries) {
			return fmt.Errorf("%w, or set DATABASE_URL to a PostgreSQL database wxhub may use", err)
		}
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

	adminKey, err := devAdminKey(ctx, store, *dataDir, logger)
	if err != nil {
		return err
	}
	// Without a WeChat of its own choosing, dev runs the simulator and teaches it every
	// account wxhub holds, so saved accounts keep working across restarts.
	var sim *wechatsim.Simulator
	var simLn net.Listener
	simURL := *wechatURL
	if simURL == "" {
		sim = wechatsim.New(wechatsim.Config{TokenTTL: *ttl, Overlap: *overlap})
		if simLn, err = net.Listen("tcp", *simListen); err != nil {
			return err
		}
		defer simLn.Close()
		simURL = "http://" + simLn.Addr().String()
		if err := seedDev(ctx, store, sim, accounts, logger); err != nil {
			return err
		}
	} else if len(accounts) > 0 {
		if err := createAccounts(ctx, store, accounts); err != nil {
			return err
		}
	}
	if *wecomURL == "" {
		*wecomURL = defaultWeComBaseURL
		if sim != nil {
			*wecomURL = simURL + wechatsim.WeComPrefix
		}
	}
	apiLn, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}

	// A short overlap needs a shorter call timeout (a call must end inside it) and staleness
	// bound (classic tokens are promised for the overlap minus the bound).
	scaled := min(*overlap/3, 10*time.Second)
	w, err := worker.New(store, wechat.New(simURL, nil), worker.Config{Logger: logger, Registerer: prometheus.NewRegistry(),
		PollInterval: 200 * time.Millisecond, Overlap: *overlap, CallTimeout: scaled, WeCom: wechat.New(*wecomURL, nil)})
	if err != nil {
		return err
	}
	api := newAPIServer(store, server.Config{ListenerURL: *databaseURL, Overlap: *overlap, StalenessBound: min(*overlap/3, 30*time.Second),
		WeChat: wechat.New(simURL, nil), Logger: logger})
	handler := api.Handler()
	if sim != nil {
		handler = teachSimulator(handler, sim, logger)
	}

	var wg sync.WaitGroup
	errs := make(chan error, 3)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	gatewayURL := ""
	if *gatewayListen != "" {
		addr, stop, err := startGateway(runCtx, api, *gatewayListen, simURL, logger)
		if err != nil {
			return err
		}
		defer stop()
		gatewayURL = "http://" + addr
	}
	runs := []func() error{
		func() error { return w.Run(runCtx) },
		func() error { return runAPI(runCtx, api, handler, apiLn) },
	}
	if sim != nil {
		runs = append(runs, func() error { return serveUntilDone(runCtx, simLn, sim) })
	}
	for _, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(); err != nil {
				errs <- err
				cancel()
			}
		}()
	}
	printWelcome(stdout, "http://"+apiLn.Addr().String(), simURL, gatewayURL, adminKey, sim != nil)
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
// data folder, and makes sure it exists. A key that was revoked stays revoked, but does not
// stop dev: a new one is made, kept in the data folder and printed.
func devAdminKey(ctx context.Context, store *db.Store, dataDir string, logger *slog.Logger) (string, error) {
	path := filepath.Join(dataDir, "admin-key")
	key := os.Getenv("WXHUB_BOOTSTRAP_ADMIN_KEY")
	source := "WXHUB_BOOTSTRAP_ADMIN_KEY"
	if key == "" {
		source = path
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, os.ErrNotExist):
			if key, err = newDevAdminKey(path); err != nil {
				return "", err
			}
		case err != nil:
			return "", err
		default:
			key = strings.TrimSpace(string(b))
		}
	}
	err := server.EnsureBootstrapKey(ctx, store, key)
	if !errors.Is(err, db.ErrKeyRevoked) {
		return key, err
	}
	logger.Warn("the admin key from " + source + " was revoked; dev made a new one, kept in " + path + " and printed below")
	if key, err = newDevAdminKey(path); err != nil {
		return "", err
	}
	return key, server.EnsureBootstrapKey(ctx, store, key)
}

// newDevAdminKey makes an admin key and keeps it in path.
func newDevAdminKey(path string) (string, error) {
	key, _, _, err := server.NewKey()
	if err != nil {
		return "", err
	}
	return key, os.WriteFile(path, []byte(key+"\n"), 0o600)
}

// seedDev prepares dev's simulator and database: the demo tenant and accounts (once), the
// accounts given with --account, every account wxhub holds taught to the simulator with its
// secret, and the values an earlier run stored expired, since this simulator never issued
// them.
func seedDev(ctx context.Context, store *db.Store, sim *wechatsim.Simulator, accounts accountFlags, logger *slog.Logger) error {
	if _, err := store.CreateTenant(ctx, "demo"); err != nil && !errors.Is(err, db.ErrConflict) {
		return err
	}
	for _, a := range demoAccounts {
		if _, err := store.CreateAccount(ctx, a); err != nil && !errors.Is(err, db.ErrConflict) {
			return err
		}
	}
	if err := createAccounts(ctx, store, accounts); err != nil {
		return err
	}
	known, err := store.AccountSecrets(ctx)
	if err != nil {
		return err
	}
	for _, a := range known {
		if err := sim.AddAccount(wechatsim.Account{AppID: a.AppID, Secret: a.Secret, Kind: a.Kind, CorpID: a.CorpID, AgentID: a.AgentID}); err != nil {
			return fmt.Errorf("account %s: %w", a.AppID, err)
		}
	}
	expired, err := store.ExpireAllForNewSimulator(ctx)
	if err != nil {
		return err
	}
	logger.Info("simulator ready", "accounts", len(known), "stored values expired", expired)
	return nil
}

// createAccounts creates the --account accounts in tenant demo, unless they exist.
func createAccounts(ctx context.Context, store *db.Store, accounts accountFlags) error {
	if len(accounts) > 0 {
		if _, err := store.CreateTenant(ctx, "demo"); err != nil && !errors.Is(err, db.ErrConflict) {
			return err
		}
	}
	for _, a := range accounts {
		kind := a.Kind
		if kind == "" {
			kind = wechatsim.KindOfficialAccount
		}
		_, err := store.CreateAccount(ctx, db.NewAccount{Tenant: "demo", AppID: a.AppID, Kind: kind, Secret: a.Secret,
			CorpID: a.CorpID, AgentID: a.AgentID})
		if err != nil && !errors.Is(err, db.ErrConflict) {
			return fmt.Errorf("--account %s: %w", a.AppID, err)
		}
	}
	return nil
}

// teachSimulator passes every request on, and when one creates an account or gives it a
// new secret, tells the simulator, so the account works against it at once. Only dev does
// this: a real WeChat knows its accounts. An appid the simulator has never seen is taught
// before the request runs: the worker may call WeChat for a new account as soon as its row
// commits, before this handler could speak. Anything else is taught only once wxhub took it,
// so a refused request never changes a secret the simulator checks.
func teachSimulator(next http.Handler, sim *wechatsim.Simulator, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		created := r.Method == http.MethodPost && r.URL.Path == "/v1/accounts"
		updated := r.Method == http.MethodPatch && strings.HasPrefix(r.URL.Path, "/v1/accounts/")
		if !created && !updated {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			http.Error(w, "cannot read the request", http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var in struct {
			AppID   string `json:"appid"`
			Kind    string `json:"kind"`
			Secret  string `json:"secret"`
			CorpID  string `json:"corp_id"`
			AgentID int64  `json:"agent_id"`
		}
		if json.Unmarshal(body, &in) != nil || in.Secret == "" {
			next.ServeHTTP(w, r)
			return
		}
		if updated {
			in.AppID, in.Kind = strings.TrimPrefix(r.URL.Path, "/v1/accounts/"), ""
		}
		teach := func() {
			acct := wechatsim.Account{AppID: in.AppID, Secret: in.Secret, Kind: in.Kind, CorpID: in.CorpID, AgentID: in.AgentID}
			if err := sim.AddAccount(acct); err != nil {
				logger.Warn("the simulator did not take the account", "appid", in.AppID, "err", err)
			}
		}
		if created && !simulatorKnows(sim, in.AppID) {
			teach()
			next.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		if rec.status/100 == 2 {
			teach()
		}
	})
}

// simulatorKnows reports whether the simulator has an account with appid.
func simulatorKnows(sim *wechatsim.Simulator, appid string) bool {
	for _, a := range sim.Accounts() {
		if a.AppID == appid {
			return true
		}
	}
	return false
}

// statusRecorder remembers the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func printWelcome(w io.Writer, apiURL, wechatURL, gatewayURL, adminKey string, simulated bool) {
	a := demoAccounts[0].AppID
	wechatLine := fmt.Sprintf("  simulator  %[1]s   (stands in for WeChat; counters at %[1]s/sim/stats)", wechatURL)
	if !simulated {
		wechatLine = "  WeChat     " + wechatURL
	}
	if gatewayURL != "" {
		wechatLine += fmt.Sprintf("\n  gateway    %[1]s   (speaks WeChat's protocol: point an SDK's API host here; try\n             curl '%[1]s/cgi-bin/token?grant_type=client_credential&appid=%[2]s&secret=%[3]s')",
			gatewayURL, a, demoAccounts[0].Secret)
	}
	fmt.Fprintf(w, `
wxhub dev is running (development only: local data, a development key ring).

  API        %[1]s   (docs: %[1]s/docs, OpenAPI: %[1]s/openapi.yaml)
%[2]s
  admin key  %[3]s

Try:
  curl -H 'Authorization: Bearer %[3]s' %[1]s/v1/accounts/%[4]s/access-token
  curl -H 'Authorization: Bearer %[3]s' -H 'Content-Type: application/json' -d '{"url":"https://example.com/page"}' %[1]s/v1/accounts/%[4]s/jssdk-config
  curl -H 'Authorization: Bearer %[3]s' %[1]s/v1/accounts

Add an account of your own (it works against the simulator at once, and after restarts):
  curl -H 'Authorization: Bearer %[3]s' -H 'Content-Type: application/json' -d '{"appid":"wxyourapp","kind":"official_account","secret":"your-secret","tenant":"demo"}' %[1]s/v1/accounts

Ctrl-C stops everything.
`, apiURL, wechatLine, adminKey, a)
}
