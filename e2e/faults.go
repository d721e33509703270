package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"wxhub/wechatsim"
)

// Fault is one failure the campaign injects. Inject starts it and returns heal, which ends
// it; recovery is timed from the end of heal.
type Fault struct {
	Name string
	// PostgresDown marks the fault in which PostgreSQL itself is down, WeChatDown those in
	// which WeChat fails calls: a credential that cannot be promised any more meanwhile
	// cannot be replaced, and a 503 is the right answer for it while the outage lasts.
	PostgresDown, WeChatDown bool
	// Inject records in r what the fault did: a note (how many calls were in flight, say),
	// the accounts whose extra new token it explains, a node it takes down.
	Inject func(ctx context.Context, c *Cluster, r *FaultResult) (heal func(ctx context.Context) error, err error)
}

// errDidNotBite is wrapped by the error of a fault that did not reach the mechanism it
// targets: the round fails, since a fault that cannot hurt proves nothing.
var errDidNotBite = errors.New("the fault did not bite")

// inFlight makes WeChat slow, so that refreshes are in the middle of their call when
// something happens to a worker, and waits until worker i has calls in flight. It notes
// how many in r and returns the function that makes WeChat fast again.
func inFlight(ctx context.Context, c *Cluster, i int, r *FaultResult) (func(context.Context) error, error) {
	if err := c.SimAPI.SetFaults(ctx, wechatsim.Faults{Latency: time.Second}); err != nil {
		return nil, err
	}
	fast := func(ctx context.Context) error { return c.SimAPI.ClearFaults(ctx) }
	deadline := time.Now().Add(20 * time.Second)
	for {
		n, err := c.WorkerMetric(ctx, i, "wxhub_worker_upstream_in_flight ", "")
		if err != nil {
			return nil, err
		}
		if n > 0 {
			r.Detail = fmt.Sprintf("%.0f WeChat calls in flight", n)
			return fast, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s made no WeChat call within 20 s", c.Workers[i].Name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func simBurst(f wechatsim.Faults, hold time.Duration) func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
	return func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
		if err := c.SimAPI.SetFaults(ctx, f); err != nil {
			return nil, err
		}
		time.Sleep(hold)
		return func(ctx context.Context) error { return c.SimAPI.ClearFaults(ctx) }, nil
	}
}

func healed(context.Context) error { return nil }

// Faults is the campaign's schedule, in order; a long campaign repeats it.
func Faults() []Fault {
	return []Fault{
		{Name: "kill -9 of a worker mid-refresh", Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			fast, err := inFlight(ctx, c, 0, r)
			if err != nil {
				return nil, err
			}
			if err := c.Workers[0].Kill(); err != nil {
				return nil, err
			}
			if err := c.strand(ctx, 0, r); err != nil {
				return nil, err
			}
			if err := fast(ctx); err != nil {
				return nil, err
			}
			time.Sleep(2 * time.Second)
			// A supervisor starts it again, as systemd or Kubernetes would.
			return func(ctx context.Context) error { return c.Workers[0].Start() }, nil
		}},
		{Name: "SIGSTOP of a worker between call and write, past its lease", Inject: freezeBetweenCallAndWrite},
		{Name: "listener backends terminated (pg_terminate_backend)", Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			var n int
			err := c.DB.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE application_name LIKE 'wxhub-listener-%'`).Scan(&n)
			if err == nil && n != len(c.Nodes) {
				err = fmt.Errorf("terminated %d listener backends, want %d", n, len(c.Nodes))
			}
			r.Detail = fmt.Sprintf("%d backends terminated", n)
			return healed, err
		}},
		{Name: "connections reset at COMMIT (proxy)", Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			// Claims are transactions ended by COMMIT; a fetched value is stored by one
			// statement outside a transaction, so its commit is the statement's end.
			recognisedBefore := c.countLogLines(c.Workers, storedEarlierLog)
			relays := append(append([]*Relay{}, c.WorkerRelays...), c.NodeRelays...)
			for _, relay := range relays {
				relay.ResetAtCommit(4)
			}
			for _, relay := range c.WorkerRelays {
				relay.CutAfterStatement(2)
			}
			deadline := time.Now().Add(20 * time.Second)
			for time.Now().Before(deadline) && cutTotal(c.WorkerRelays) < int64(6*len(c.WorkerRelays)) {
				time.Sleep(100 * time.Millisecond)
			}
			return func(context.Context) error {
				var before, after, writes int64
				for _, relay := range relays {
					relay.ResetAtCommit(0)
					relay.CutAfterStatement(0)
					b, a := relay.CommitsCut()
					before, after, writes = before+b, after+a, writes+relay.StatementsCut()
				}
				// A cut write is retried after a backoff; give the retries time to be logged.
				time.Sleep(3 * time.Second)
				recognised := c.countLogLines(c.Workers, storedEarlierLog) - recognisedBefore
				r.Detail = fmt.Sprintf("%d cut before PostgreSQL got COMMIT, %d after it committed, %d after a credential write (%d recognised as stored on retry)",
					before, after, writes, recognised)
				if before == 0 || after == 0 || writes == 0 {
					return fmt.Errorf("%w: %s", errDidNotBite, r.Detail)
				}
				return nil
			}, nil
		}},
		{Name: "half-open listener connection on node 2 (proxy blackhole, 10 s)", Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			until := time.Now().Add(10 * time.Second)
			c.ListenRelays[1].Blackhole(true)
			time.Sleep(time.Second)
			// Scheduled refreshes come late enough that the old value would expire from the
			// cache on its own; refreshes app servers ask for (min_ttl) do not, so node 2
			// must find them although no notification reaches it. Half of them are asked for
			// just after a scheduled refresh, while the value before may still be promised.
			n, recent, err := c.ForceRefreshes(ctx, 0, 10, r)
			if err != nil {
				c.ListenRelays[1].Blackhole(false)
				return nil, err
			}
			r.Detail = fmt.Sprintf("%d classic tokens refreshed early through node 1 meanwhile; %d of the 10 asked for within the overlap of their last refresh", n, recent)
			time.Sleep(time.Until(until))
			c.ListenRelays[1].Blackhole(false)
			if n == 0 {
				return nil, fmt.Errorf("%w: no token was refreshed while node 2 was blind", errDidNotBite)
			}
			return healed, nil
		}},
		{Name: "API node 3 restarted", Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			r.NodeDown = 2
			return func(ctx context.Context) error { return c.RestartNode(ctx, 2) }, nil
		}},
		// A value fetched just before the crash is stored once PostgreSQL is back, if that is
		// within the overlap; later it is discarded and fetched again.
		{Name: "PostgreSQL stopped -m immediate, restarted after 3 s", PostgresDown: true, Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			for i := range c.Workers {
				if err := c.strand(ctx, i, r); err != nil {
					return nil, err
				}
			}
			if err := c.CrashPostgres(); err != nil {
				return nil, err
			}
			time.Sleep(3 * time.Second)
			return c.RestartPostgres, nil
		}},
		{Name: "WeChat answers -1 to half the calls (8 s)", WeChatDown: true, Inject: simBurst(wechatsim.Faults{BusyRate: 0.5}, 8*time.Second)},
		{Name: "WeChat answers 1.5 s late (8 s)", WeChatDown: true, Inject: simBurst(wechatsim.Faults{Latency: 1500 * time.Millisecond}, 8*time.Second)},
		{Name: "WeChat drops half the connections (8 s)", WeChatDown: true, Inject: simBurst(wechatsim.Faults{DropRate: 0.5}, 8*time.Second)},
		{Name: "WeChat issues, then loses the answer of a third of the calls (8 s)", WeChatDown: true, Inject: lostAnswers},
		{Name: "secret of two accounts wrong for 8 s, then fixed", Inject: func(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
			victims := c.secretVictims()
			for _, a := range victims {
				if _, err := c.API(ctx, 0, http.MethodPatch, "/v1/accounts/"+a.AppID, map[string]any{"secret": "wrong-" + a.Secret}, nil); err != nil {
					return nil, err
				}
			}
			time.Sleep(8 * time.Second)
			return func(ctx context.Context) error {
				// The right secret is tried at once: a new token early, explained.
				for _, a := range victims {
					r.Excused[a.AppID] = true
					if _, err := c.API(ctx, 1, http.MethodPatch, "/v1/accounts/"+a.AppID, map[string]any{"secret": a.Secret}, nil); err != nil {
						return err
					}
				}
				return nil
			}, nil
		}},
	}
}

// strand records the claims worker i holds as stranded (the fault has not ended until
// another worker finished each) and excuses a second new token of their accounts: what the
// worker fetched may be lost, and the next claim fetches again.
func (c *Cluster) strand(ctx context.Context, i int, r *FaultResult) error {
	claims, err := c.Claims(ctx, c.Workers[i].Name)
	if err != nil {
		return err
	}
	r.Stranded = append(r.Stranded, claims...)
	for _, cl := range claims {
		r.Excused[c.accountByID(cl.AccountID).AppID] = true
	}
	r.Detail = strings.TrimPrefix(r.Detail+fmt.Sprintf(", %d claims of %s stranded", len(claims), c.Workers[i].Name), ", ")
	return nil
}

// freezeBetweenCallAndWrite freezes worker 2 between its WeChat calls and its writes, past its lease. Its
// writes are held in its relay; once worker 1 has claimed one of those credentials again and
// is still waiting for WeChat (made slow for those accounts), the frozen worker's writes
// reach PostgreSQL. They must be refused: the claim fence refuses them although the
// generation is still the one they read, and storing one would put a token WeChat is about
// to kill in place of the one worker 1 fetches.
func freezeBetweenCallAndWrite(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
	relay := c.WorkerRelays[1]
	storedBefore, refusedBefore := relay.LateAnswers()
	relay.HoldStatement(true)
	release := func() { relay.HoldStatement(false) }
	var held []HeldWrite
	deadline := time.Now().Add(30 * time.Second)
	for {
		held = relay.HeldWrites()
		if len(held) >= 4 && c.holdsRotating(held) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !c.holdsRotating(held) {
		release()
		return nil, fmt.Errorf("%w: %s held no write of a classic token or ticket within 30 s", errDidNotBite, c.Workers[1].Name)
	}
	if err := c.Workers[1].Signal(syscall.SIGSTOP); err != nil {
		release()
		return nil, err
	}
	if err := c.strand(ctx, 1, r); err != nil {
		release()
		return nil, err
	}
	held = relay.HeldWrites()
	generations, err := c.generations(ctx, held)
	if err != nil {
		release()
		return nil, err
	}
	// Worker 1's calls for these accounts take 1.5 s, so it holds their claims that long
	// before it can write. A held write whose lease ran out before the freeze may already
	// have been taken over; its account's next token is explained too.
	var slowed []string
	for _, w := range held {
		appid := c.accountByID(w.AccountID).AppID
		r.Excused[appid] = true
		slowed = append(slowed, appid)
		if err := c.SimAPI.SetFaults(ctx, wechatsim.Faults{AppID: appid, Latency: 1500 * time.Millisecond}); err != nil {
			release()
			return nil, err
		}
	}
	unslow := func(ctx context.Context) error {
		var errs []error
		for _, appid := range slowed {
			errs = append(errs, c.SimAPI.SetFaults(ctx, wechatsim.Faults{AppID: appid, Clear: true}))
		}
		return errors.Join(errs...)
	}
	taken, err := c.waitTakenOver(ctx, held, generations, c.Opts.Lease+c.Opts.Overlap+10*time.Second)
	release()
	if err == nil && taken == 0 {
		err = fmt.Errorf("%w: worker 1 claimed none of the %d credentials with a held write", errDidNotBite, len(held))
	}
	if err != nil {
		return nil, errors.Join(err, unslow(ctx), c.Workers[1].Signal(syscall.SIGCONT))
	}
	time.Sleep(500 * time.Millisecond)
	return func(ctx context.Context) error {
		if err := errors.Join(unslow(ctx), c.Workers[1].Signal(syscall.SIGCONT)); err != nil {
			return err
		}
		stored, refused := relay.LateAnswers()
		stored, refused = stored-storedBefore, refused-refusedBefore
		r.Detail += fmt.Sprintf(", %d writes arrived late, %d of them while worker 1 held the claim: %d refused by the fence, %d stored",
			len(held), taken, refused, stored)
		if refused < 1 {
			return fmt.Errorf("%w: no late write was refused by the fence (%s)", errDidNotBite, r.Detail)
		}
		return nil
	}, nil
}

// rotates reports whether every fetch of the credential kills the previous value.
func (c *Cluster) rotates(w HeldWrite) bool {
	return w.Kind != "access_token" || c.accountByID(w.AccountID).TokenMode == "classic"
}

// holdsRotating reports whether a held write stores a credential that rotates.
func (c *Cluster) holdsRotating(held []HeldWrite) bool {
	return slices.ContainsFunc(held, c.rotates)
}

// generations reads the current generation of each credential.
func (c *Cluster) generations(ctx context.Context, creds []HeldWrite) (map[HeldWrite]int64, error) {
	out := map[HeldWrite]int64{}
	for _, w := range creds {
		var g int64
		if err := c.DB.QueryRow(ctx, `SELECT generation FROM credentials WHERE account_id = $1 AND kind = $2`,
			w.AccountID, w.Kind).Scan(&g); err != nil {
			return nil, fmt.Errorf("generation of %v: %w", w, err)
		}
		out[w] = g
	}
	return out, nil
}

// waitTakenOver waits until worker 1 holds the claim of a rotating credential of held and
// has not written it yet (its generation is still the one the held write read), and
// returns how many such credentials there are at that moment.
func (c *Cluster) waitTakenOver(ctx context.Context, held []HeldWrite, generations map[HeldWrite]int64, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		n := 0
		for _, w := range held {
			if !c.rotates(w) {
				continue
			}
			var claimed bool
			if err := c.DB.QueryRow(ctx, `SELECT coalesce(claimed_by = $3 AND claimed_until > now(), false) AND generation = $4
				FROM credentials WHERE account_id = $1 AND kind = $2`,
				w.AccountID, w.Kind, c.Workers[0].Name, generations[w]).Scan(&claimed); err != nil {
				return 0, err
			}
			if claimed {
				n++
			}
		}
		if n > 0 {
			return n, nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return 0, nil
}

// lostAnswers makes WeChat issue credentials but lose a third of its answers for 8 s, and
// excuses the second new token of each account that lost one: wxhub cannot know the value
// it never got, and must fetch again without killing the stored one while it is promised.
func lostAnswers(ctx context.Context, c *Cluster, r *FaultResult) (func(context.Context) error, error) {
	before, err := c.SimAPI.Stats(ctx, "")
	if err != nil {
		return nil, err
	}
	if err := c.SimAPI.SetFaults(ctx, wechatsim.Faults{ResetAfterIssueRate: 0.33}); err != nil {
		return nil, err
	}
	time.Sleep(8 * time.Second)
	return func(ctx context.Context) error {
		if err := c.SimAPI.ClearFaults(ctx); err != nil {
			return err
		}
		after, err := c.SimAPI.Stats(ctx, "")
		if err != nil {
			return err
		}
		var lost int64
		for appid, s := range after.Accounts {
			if n := s.AnswersLost - before.Accounts[appid].AnswersLost; n > 0 {
				lost += n
				r.Excused[appid] = true
			}
		}
		r.Detail = fmt.Sprintf("%d answers lost for %d accounts", lost, len(r.Excused))
		if lost == 0 {
			return fmt.Errorf("%w: no answer was lost", errDidNotBite)
		}
		return nil
	}, nil
}

// storedEarlierLog is what a worker logs when a retried write finds its own value stored.
const storedEarlierLog = "an earlier attempt had stored the value"

// countLogLines counts the lines of the processes' logs that contain text.
func (c *Cluster) countLogLines(procs []*Proc, text string) int {
	n := 0
	for _, p := range procs {
		b, err := os.ReadFile(p.logPath)
		if err == nil {
			n += strings.Count(string(b), text)
		}
	}
	return n
}

// ForceRefreshes asks node for the tokens of n classic accounts with a min_ttl no token
// has, which makes wxhub refresh them sooner than they are due: up to half of them
// accounts refreshed within the last half overlap, the others at random. It returns how
// many were refreshed and how many of the accounts had been refreshed just before, and
// excuses their new tokens in r.
func (c *Cluster) ForceRefreshes(ctx context.Context, node, n int, r *FaultResult) (refreshed, recent int, err error) {
	victims := map[string]bool{}
	for _, a := range c.secretVictims() {
		victims[a.AppID] = true
	}
	rows, err := c.DB.Query(ctx, `SELECT a.appid FROM credentials c JOIN accounts a ON a.id = c.account_id
		WHERE c.kind = 'access_token' AND a.token_mode = 'classic' AND c.last_refreshed_at > now() - make_interval(secs => $1)
		ORDER BY random() LIMIT $2`, c.Opts.Overlap.Seconds()/2, n)
	if err != nil {
		return 0, 0, err
	}
	justRefreshed, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, 0, err
	}
	var picked []string
	for _, appid := range justRefreshed {
		i := slices.IndexFunc(c.Accounts, func(a Account) bool { return a.AppID == appid })
		if len(picked) < n/2 && !c.QuotaLimited(i) && !victims[appid] {
			picked = append(picked, appid)
		}
	}
	recent = len(picked)
	for _, i := range rand.Perm(len(c.Accounts)) {
		a := c.Accounts[i]
		if len(picked) < n && a.TokenMode == "classic" && !c.QuotaLimited(i) && !victims[a.AppID] && !slices.Contains(picked, a.AppID) {
			picked = append(picked, a.AppID)
		}
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for _, appid := range picked {
		r.Excused[appid] = true
		g.Go(func() error {
			var before, after credentialAnswer
			if _, err := c.API(gctx, node, http.MethodGet, "/v1/accounts/"+appid+"/access-token", nil, &before); err != nil {
				return err
			}
			minTTL := strconv.Itoa(int(c.Opts.TokenTTL.Seconds()))
			if _, err := c.API(gctx, node, http.MethodGet, "/v1/accounts/"+appid+"/access-token?min_ttl="+minTTL, nil, &after); err != nil {
				return err
			}
			if after.Generation > before.Generation {
				mu.Lock()
				refreshed++
				mu.Unlock()
			}
			return nil
		})
	}
	return refreshed, recent, g.Wait()
}

// secretVictims are a stable-token and a classic-token account without a small quota.
func (c *Cluster) secretVictims() []Account {
	var stable, classic *Account
	for i := range c.Accounts {
		a := &c.Accounts[i]
		if c.QuotaLimited(i) {
			continue
		}
		if a.TokenMode == "stable" && stable == nil {
			stable = a
		}
		if a.TokenMode == "classic" && classic == nil {
			classic = a
		}
	}
	return []Account{*stable, *classic}
}

func cutTotal(relays []*Relay) int64 {
	var n int64
	for _, r := range relays {
		before, after := r.CommitsCut()
		n += before + after + r.StatementsCut()
	}
	return n
}
