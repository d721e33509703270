package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/errgroup"

	"wxhub/db/localpg"
	"wxhub/server"
	"wxhub/wechatsim"
)

// Options size a campaign's deployment.
type Options struct {
	// Dir holds the binary, the logs and PostgreSQL's data folder.
	Dir string
	// Accounts is how many WeChat accounts wxhub keeps fresh.
	Accounts int
	// TokenTTL and Overlap are the simulator's token lifetime and the time a replaced token
	// keeps working; the workers and API nodes are told the same overlap.
	TokenTTL, Overlap time.Duration
	// Lease is the workers' claim lease; CallTimeout bounds one WeChat call.
	Lease, CallTimeout time.Duration
	// StalenessBound is the API nodes' --staleness-bound.
	StalenessBound time.Duration
	// QuotaLimited accounts (every QuotaEvery-th) get a small daily limit, in wxhub and in
	// the simulator alike, so going over quota would show.
	QuotaEvery, QuotaLimit int
}

// Account is one account of the campaign.
type Account struct {
	AppID, Secret, TokenMode string
	Tickets                  []string
}

// Cluster is the deployment under test: PostgreSQL, the simulator, workers and API nodes as
// separate processes, and a fault relay between every wxhub process and PostgreSQL.
type Cluster struct {
	Opts Options
	bin  string
	env  []string
	// AdminKey is the bootstrap admin API key every node accepts.
	AdminKey string

	pgOpts localpg.Options
	pgMu   sync.Mutex
	pg     *localpg.Server
	// DB is a direct pool (no relay) the harness observes and breaks things through.
	DB *pgxpool.Pool

	// Sim is the simulator's process, SimURL its base URL and SimAPI a client for it.
	Sim    *Proc
	SimURL string
	SimAPI *wechatsim.Client

	// Workers are the worker processes, WorkerURLs their metrics addresses and WorkerRelays
	// the relays between them and PostgreSQL.
	Workers      []*Proc
	WorkerURLs   []string
	WorkerRelays []*Relay
	// Nodes are the API nodes and NodeURLs their base URLs; NodeRelays carry their pools and
	// ListenRelays their LISTEN connections.
	Nodes        []*Proc
	NodeURLs     []string
	NodeRelays   []*Relay
	ListenRelays []*Relay

	// Accounts are the campaign's accounts; HTTP is the client every request goes through.
	Accounts []Account
	HTTP     *http.Client
	// indexOf maps wxhub's account ids to indexes in Accounts.
	indexOf map[int64]int
}

const database = "wxhub"

// WriteMarker is in the SQL of the statement that stores a fetched credential (sqlc names
// each query in a comment), so the workers' relays can cut the connection right after it.
const WriteMarker = "CredentialWriteFenced"

// StartCluster builds the binary and starts everything, with opts.Accounts accounts created
// in wxhub and the simulator. workers and nodes say how many of each to run.
func StartCluster(ctx context.Context, opts Options, workers, nodes int) (*Cluster, error) {
	c := &Cluster{Opts: opts, HTTP: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	c.bin = filepath.Join(opts.Dir, "wxhub")
	build := exec.CommandContext(ctx, "go", "build", "-o", c.bin, "wxhub/cmd/wxhub")
	if out, err := build.CombinedOutput(); err != nil {
		return c, fmt.Errorf("build wxhub: %w\n%s", err, out)
	}
	keyBytes := make([]byte, 32)
	if _, err := rand.Read(keyBytes); err != nil {
		return c, fmt.Errorf("key ring: %w", err)
	}
	admin, _, _, err := server.NewKey()
	if err != nil {
		return c, fmt.Errorf("admin key: %w", err)
	}
	c.AdminKey = admin
	c.env = []string{"WXHUB_KEYS=e2e:" + base64.StdEncoding.EncodeToString(keyBytes), "WXHUB_BOOTSTRAP_ADMIN_KEY=" + admin}

	// Durable, as in production: an immediate stop must not lose acknowledged commits.
	c.pgOpts = localpg.Options{DataDir: filepath.Join(opts.Dir, "pg"), Durable: true}
	pg, err := localpg.Start(ctx, c.pgOpts)
	if err != nil {
		return c, err
	}
	c.pg = pg
	c.pgOpts.Port = pg.Port()
	if err := localpg.EnsureDatabase(ctx, pg, database); err != nil {
		return c, err
	}
	if out, err := exec.CommandContext(ctx, c.bin, "migrate", "up", "--database-url", c.pg.URL(database)).CombinedOutput(); err != nil {
		return c, fmt.Errorf("migrate: %w\n%s", err, out)
	}
	if c.DB, err = pgxpool.New(ctx, c.pg.URL(database)); err != nil {
		return c, fmt.Errorf("observer pool: %w", err)
	}

	if err := c.startSim(ctx); err != nil {
		return c, err
	}
	for i := range nodes {
		if err := c.addNode(ctx, i); err != nil {
			return c, fmt.Errorf("node %d: %w", i+1, err)
		}
	}
	for i := range workers {
		if err := c.addWorker(ctx, i); err != nil {
			return c, fmt.Errorf("worker %d: %w", i+1, err)
		}
	}
	if err := c.createAccounts(ctx); err != nil {
		return c, fmt.Errorf("accounts: %w", err)
	}
	return c, nil
}

func (c *Cluster) logPath(name string) string { return filepath.Join(c.Opts.Dir, name+".log") }

func (c *Cluster) startSim(ctx context.Context) error {
	addr, err := freeAddr()
	if err != nil {
		return fmt.Errorf("simulator address: %w", err)
	}
	c.SimURL = "http://" + addr
	c.SimAPI = &wechatsim.Client{BaseURL: c.SimURL, HTTP: c.HTTP}
	c.Sim = NewProc("sim", c.bin, c.logPath("sim"), nil, "sim", "--listen", addr,
		"--token-ttl", c.Opts.TokenTTL.String(), "--overlap", c.Opts.Overlap.String(), "--classic-survivors", "1")
	if err := c.Sim.Start(); err != nil {
		return err
	}
	return c.waitHTTP(ctx, c.Sim, c.SimURL+"/sim/faults")
}

func (c *Cluster) dbURL(r *Relay, app string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&application_name=%s", r.Port(), database, app)
}

func (c *Cluster) pgAddr() string { return "127.0.0.1:" + strconv.Itoa(c.pgOpts.Port) }

func (c *Cluster) addNode(ctx context.Context, i int) error {
	pool, err := NewRelay(c.pgAddr(), "")
	if err != nil {
		return err
	}
	listen, err := NewRelay(c.pgAddr(), "")
	if err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	name := fmt.Sprintf("node%d", i+1)
	p := NewProc(name, c.bin, c.logPath(name), c.env, "serve",
		"--database-url", c.dbURL(pool, "wxhub-"+name),
		"--listener-database-url", c.dbURL(listen, "wxhub-listener-"+name),
		"--listen", addr, "--staleness-bound", c.Opts.StalenessBound.String(), "--refresh-wait", "5s",
		"--overlap", c.Opts.Overlap.String(), "--rate-limit", "-1")
	c.Nodes = append(c.Nodes, p)
	c.NodeURLs = append(c.NodeURLs, "http://"+addr)
	c.NodeRelays = append(c.NodeRelays, pool)
	c.ListenRelays = append(c.ListenRelays, listen)
	if err := p.Start(); err != nil {
		return err
	}
	return c.waitHTTP(ctx, p, "http://"+addr+"/readyz")
}

func (c *Cluster) addWorker(ctx context.Context, i int) error {
	relay, err := NewRelay(c.pgAddr(), WriteMarker)
	if err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	name := fmt.Sprintf("worker%d", i+1)
	p := NewProc(name, c.bin, c.logPath(name), c.env, "worker",
		"--database-url", c.dbURL(relay, "wxhub-"+name), "--listen", addr, "--id", name,
		"--wechat-base-url", c.SimURL, "--lease", c.Opts.Lease.String(), "--call-timeout", c.Opts.CallTimeout.String(),
		"--overlap", c.Opts.Overlap.String(), "--poll-interval", "250ms", "--log-level", "debug")
	c.Workers = append(c.Workers, p)
	c.WorkerURLs = append(c.WorkerURLs, "http://"+addr)
	c.WorkerRelays = append(c.WorkerRelays, relay)
	if err := p.Start(); err != nil {
		return err
	}
	return c.waitHTTP(ctx, p, "http://"+addr+"/healthz")
}

// RestartNode stops API node i and starts it again on the same address.
func (c *Cluster) RestartNode(ctx context.Context, i int) error {
	if err := c.Nodes[i].Stop(15 * time.Second); err != nil {
		return err
	}
	if err := c.Nodes[i].Start(); err != nil {
		return err
	}
	return c.waitHTTP(ctx, c.Nodes[i], c.NodeURLs[i]+"/readyz")
}

// CrashPostgres shuts PostgreSQL down as `pg_ctl stop -m immediate` does.
func (c *Cluster) CrashPostgres() error {
	c.pgMu.Lock()
	defer c.pgMu.Unlock()
	return c.pg.StopImmediate()
}

// RestartPostgres starts PostgreSQL again on the same data folder and port; it runs crash
// recovery first.
func (c *Cluster) RestartPostgres(ctx context.Context) error {
	c.pgMu.Lock()
	defer c.pgMu.Unlock()
	pg, err := localpg.Start(ctx, c.pgOpts)
	if err != nil {
		return err
	}
	c.pg = pg
	return nil
}

// Restore undoes whatever a fault that failed half-way may have left: simulator faults,
// relay faults, frozen or stopped processes and a stopped PostgreSQL.
func (c *Cluster) Restore(ctx context.Context) error {
	var errs []error
	errs = append(errs, c.SimAPI.ClearFaults(ctx))
	for _, r := range append(append(append([]*Relay{}, c.WorkerRelays...), c.NodeRelays...), c.ListenRelays...) {
		r.Blackhole(false)
		r.HoldStatement(false)
		r.ResetAtCommit(0)
		r.CutAfterStatement(0)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	if c.DB.Ping(pingCtx) != nil {
		errs = append(errs, c.RestartPostgres(ctx))
	}
	cancel()
	for _, p := range append(append([]*Proc{}, c.Workers...), c.Nodes...) {
		if p.hasExited() {
			errs = append(errs, p.Start())
		} else {
			errs = append(errs, p.Signal(syscall.SIGCONT))
		}
	}
	return errors.Join(errs...)
}

// Close stops every process and relay, and PostgreSQL.
func (c *Cluster) Close() error {
	var errs []error
	for _, p := range append(append([]*Proc{}, c.Workers...), c.Nodes...) {
		errs = append(errs, p.Stop(15*time.Second))
	}
	if c.Sim != nil {
		errs = append(errs, c.Sim.Stop(5*time.Second))
	}
	for _, r := range append(append(append([]*Relay{}, c.WorkerRelays...), c.NodeRelays...), c.ListenRelays...) {
		errs = append(errs, r.Close())
	}
	if c.DB != nil {
		c.DB.Close()
	}
	c.pgMu.Lock()
	if c.pg != nil {
		errs = append(errs, c.pg.Stop())
	}
	c.pgMu.Unlock()
	return errors.Join(errs...)
}

// waitHTTP polls url until it answers 200, or fails quoting the process's log.
func (c *Cluster) waitHTTP(ctx context.Context, p *Proc, url string) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.HTTP.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.hasExited() || time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s not ready at %s (last error %v); its log ends:\n%s", p.Name, url, err, p.LogTail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// createAccounts makes the accounts in the simulator and, through the API, in wxhub. Every
// second account uses classic tokens and every eighth keeps a jsapi ticket; every
// QuotaEvery-th gets a small daily limit on both sides. The accounts are created evenly
// over one refresh cycle, so their refreshes are spread as a real fleet's are and every
// fault meets refreshes in progress.
func (c *Cluster) createAccounts(ctx context.Context) error {
	cycle := c.Opts.TokenTTL - c.Opts.Overlap
	start := time.Now()
	if _, err := c.API(ctx, 0, http.MethodPost, "/v1/tenants", map[string]any{"name": "e2e"}, nil); err != nil {
		return err
	}
	c.Accounts = make([]Account, c.Opts.Accounts)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range c.Accounts {
		a := Account{AppID: fmt.Sprintf("wxe2e%011d", i), Secret: fmt.Sprintf("secret-%d", i), TokenMode: "stable"}
		if i%2 == 1 {
			a.TokenMode = "classic"
		}
		if i%8 == 7 {
			a.Tickets = []string{"jsapi"}
		}
		c.Accounts[i] = a
		limited := c.QuotaLimited(i)
		time.Sleep(time.Until(start.Add(cycle * time.Duration(i) / time.Duration(len(c.Accounts)))))
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			sa := wechatsim.Account{AppID: a.AppID, Secret: a.Secret}
			body := map[string]any{"appid": a.AppID, "kind": "official_account", "secret": a.Secret, "tenant": "e2e",
				"token_mode": a.TokenMode, "tickets": a.Tickets}
			if limited {
				limits := map[string]int{"token": c.Opts.QuotaLimit, "stable_token": c.Opts.QuotaLimit}
				sa.Quotas, body["daily_limits"] = limits, limits
			}
			if err := c.SimAPI.AddAccount(gctx, sa); err != nil {
				return err
			}
			_, err := c.API(gctx, i%len(c.NodeURLs), http.MethodPost, "/v1/accounts", body, nil)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	rows, err := c.DB.Query(ctx, `SELECT id, appid FROM accounts`)
	if err != nil {
		return err
	}
	c.indexOf = map[int64]int{}
	index := map[string]int{}
	for i, a := range c.Accounts {
		index[a.AppID] = i
	}
	var id int64
	var appid string
	_, err = pgx.ForEachRow(rows, []any{&id, &appid}, func() error {
		c.indexOf[id] = index[appid]
		return nil
	})
	return err
}

// accountByID returns the campaign account with wxhub's account id.
func (c *Cluster) accountByID(id int64) Account { return c.Accounts[c.indexOf[id]] }

// QuotaLimited reports whether account i has the small daily limit.
func (c *Cluster) QuotaLimited(i int) bool { return c.Opts.QuotaEvery > 0 && i%c.Opts.QuotaEvery == 0 }

// WorkerMetric scrapes worker i's metrics and returns the sum of the series whose line
// starts with prefix (a name, or a name and the start of its labels) and contains label.
func (c *Cluster) WorkerMetric(ctx context.Context, i int, prefix, label string) (float64, error) {
	status, body, err := c.get(ctx, c.WorkerURLs[i]+"/metrics")
	if err != nil {
		return 0, fmt.Errorf("%s /metrics: %w", c.Workers[i].Name, err)
	}
	if status != http.StatusOK {
		return 0, fmt.Errorf("%s /metrics: %d", c.Workers[i].Name, status)
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, prefix) || !strings.Contains(line, label) {
			continue
		}
		f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("%s /metrics: %q: %w", c.Workers[i].Name, line, err)
		}
		sum += f
	}
	return sum, nil
}

// API calls node i with the admin key, decodes a 2xx answer into out, and returns the status.
func (c *Cluster) API(ctx context.Context, node int, method, path string, in, out any) (int, error) {
	status, b, err := c.call(ctx, node, method, path, in)
	if err != nil {
		return status, err
	}
	if status/100 != 2 {
		return status, fmt.Errorf("%s %s on %s: %d %s", method, path, c.Nodes[node].Name, status, b)
	}
	if out != nil {
		return status, json.Unmarshal(b, out)
	}
	return status, nil
}

// get fetches a URL of the cluster (a node's or a worker's) with the admin key.
func (c *Cluster) get(ctx context.Context, u string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.AdminKey)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
