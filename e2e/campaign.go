// Package e2e runs wxhub the way users deploy it, as separate processes of the real binary
// against a real PostgreSQL and the WeChat simulator, and injects faults while simulated
// application servers work. The campaign passes only if no application server was handed
// a credential WeChat rejects while wxhub still promised it, and every fault proved it
// reached the mechanism it targets.
package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"

	"wxhub/wechatsim"
)

// FaultResult is what happened around one injected fault.
type FaultResult struct {
	Fault
	// Start is when the fault began, Healed when it ended and Recovered when the system was
	// healthy again.
	Start, Healed, Recovered time.Time
	// Detail is what the fault noted about itself.
	Detail string
	// Excused holds the appids whose second new token within a refresh cycle the fault
	// explains, from its start until a second after it recovered: a crashed worker's lost
	// value, a refresh the fault asked for, a secret that was fixed.
	Excused map[string]bool
	// NodeDown is the index of the API node the fault takes down, or -1.
	NodeDown int
	// Stranded are the claims a crashed or frozen worker held: the fault has not ended until
	// another worker has taken each over and finished it.
	Stranded []Claim
	// RecoveryErr is set when the system did not become healthy in time or the fault did not
	// bite.
	RecoveryErr error
}

// end is when the system had recovered from the fault, or now if it never did.
func (r FaultResult) end() time.Time {
	if r.Recovered.IsZero() {
		return time.Now()
	}
	return r.Recovered
}

// Campaign injects faults one after another into a running cluster while application
// servers work, and judges the outcome.
type Campaign struct {
	// C is the cluster under test and Rec what its application servers saw.
	C   *Cluster
	Rec *Recorder
	// Results has one entry per injected fault, in order.
	Results []FaultResult
	// RecoveryTimeout bounds the wait for health after each fault.
	RecoveryTimeout time.Duration
	// Settle is the quiet time after recovery, before the next fault.
	Settle time.Duration
	Log    io.Writer
	// before and genBefore are what the simulator and the database had counted when the
	// campaign began.
	before    wechatsim.Stats
	genBefore map[CredentialKey]int64
}

// Begin records the simulator's counters, then wxhub's generations, so the verdict counts
// the campaign's values only.
func (cp *Campaign) Begin(ctx context.Context) error {
	var err error
	if cp.before, err = cp.C.SimAPI.Stats(ctx, ""); err != nil {
		return err
	}
	cp.genBefore, err = cp.C.Generations(ctx)
	return err
}

// Health is a snapshot of the system's state as an operator would check it.
type Health struct {
	NodesReady int
	// Retrying counts credentials whose last refresh attempt failed; Overdue those past
	// their refresh time by more than 2 s; Expired those without a live value; Unpromised
	// rotating values whose promise (replace_not_before plus the overlap) has passed.
	Retrying, Overdue, Expired, Unpromised, NotActive int
	// Stranded counts claims of a crashed or frozen worker nobody has finished yet.
	Stranded int
}

// OK reports whether every node is ready and every credential is fresh.
func (h Health) OK(nodes int) bool {
	return h.NodesReady == nodes && h.Retrying == 0 && h.Overdue == 0 && h.Expired == 0 && h.Unpromised == 0 &&
		h.NotActive == 0 && h.Stranded == 0
}

func (h Health) String() string {
	return fmt.Sprintf("nodes ready %d, retrying %d, overdue %d, expired %d, past their promise %d, accounts not active %d, stranded claims %d",
		h.NodesReady, h.Retrying, h.Overdue, h.Expired, h.Unpromised, h.NotActive, h.Stranded)
}

// Health reads the nodes' /readyz and the credentials' state.
func (c *Cluster) Health(ctx context.Context) (Health, error) {
	var h Health
	for _, u := range c.NodeURLs {
		if status, _, err := c.get(ctx, u+"/readyz"); err == nil && status == http.StatusOK {
			h.NodesReady++
		}
	}
	err := c.DB.QueryRow(ctx, `
		SELECT count(*) FILTER (WHERE c.attempts > 0),
		       count(*) FILTER (WHERE greatest(s.refresh_at, c.claimed_until) < now() - interval '2 seconds'),
		       count(*) FILTER (WHERE c.expires_at IS NULL OR c.expires_at < now()),
		       count(*) FILTER (WHERE (c.kind <> 'access_token' OR a.token_mode = 'classic')
		                          AND c.replace_not_before + make_interval(secs => $1) < now()),
		       count(DISTINCT a.id) FILTER (WHERE a.status <> 'active')
		FROM credentials c JOIN accounts a ON a.id = c.account_id
		JOIN credential_schedule s ON s.account_id = c.account_id AND s.kind = c.kind`, c.Opts.Overlap.Seconds()).
		Scan(&h.Retrying, &h.Overdue, &h.Expired, &h.Unpromised, &h.NotActive)
	return h, err
}

// Claim identifies one claim of a credential, and the generation it read.
type Claim struct {
	AccountID  int64
	Kind       string
	Seq        int64
	Generation int64
}

// Claims returns the claims worker holds now.
func (c *Cluster) Claims(ctx context.Context, worker string) ([]Claim, error) {
	rows, err := c.DB.Query(ctx, `SELECT account_id, kind, claim_seq, generation FROM credentials
		WHERE claimed_by = $1 AND claimed_until > now()`, worker)
	if err != nil {
		return nil, fmt.Errorf("claims of %s: %w", worker, err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[Claim])
}

// Generations reads every credential's generation.
func (c *Cluster) Generations(ctx context.Context) (map[CredentialKey]int64, error) {
	rows, err := c.DB.Query(ctx, `SELECT a.appid, c.kind, c.generation FROM credentials c JOIN accounts a ON a.id = c.account_id`)
	if err != nil {
		return nil, fmt.Errorf("read generations: %w", err)
	}
	out := map[CredentialKey]int64{}
	var k CredentialKey
	var g int64
	_, err = pgx.ForEachRow(rows, []any{&k.AppID, &k.Kind, &g}, func() error {
		out[k] = g
		return nil
	})
	return out, err
}

// unfinished counts the claims that have not ended: neither written by their own worker
// (late) nor taken over and finished by another claim.
func (c *Cluster) unfinished(ctx context.Context, claims []Claim) (int, error) {
	if len(claims) == 0 {
		return 0, nil
	}
	ids, kinds := make([]int64, len(claims)), make([]string, len(claims))
	seqs, gens := make([]int64, len(claims)), make([]int64, len(claims))
	for i, cl := range claims {
		ids[i], kinds[i], seqs[i], gens[i] = cl.AccountID, cl.Kind, cl.Seq, cl.Generation
	}
	var n int
	err := c.DB.QueryRow(ctx, `SELECT count(*) FROM credentials c
		JOIN unnest($1::bigint[], $2::text[], $3::bigint[], $4::bigint[]) AS s(account_id, kind, seq, generation)
		  ON s.account_id = c.account_id AND s.kind = c.kind
		WHERE c.generation = s.generation AND (c.claim_seq <= s.seq OR c.claimed_by IS NOT NULL)`, ids, kinds, seqs, gens).Scan(&n)
	return n, err
}

// WaitHealthy polls Health until it is OK and every stranded claim is finished, and returns
// when that was.
func (c *Cluster) WaitHealthy(ctx context.Context, timeout time.Duration, stranded []Claim) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last Health
	var lastErr error
	for time.Now().Before(deadline) {
		h, err := c.Health(ctx)
		if err == nil {
			h.Stranded, err = c.unfinished(ctx, stranded)
		}
		if err == nil && h.OK(len(c.Nodes)) {
			return time.Now(), nil
		}
		last, lastErr = h, err
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if lastErr != nil {
		return time.Time{}, fmt.Errorf("not healthy after %s: %w", timeout, lastErr)
	}
	return time.Time{}, fmt.Errorf("not healthy after %s: %s", timeout, last)
}

// Inject runs one fault: it waits for a healthy system, injects the fault, heals it and
// times the recovery.
func (cp *Campaign) Inject(ctx context.Context, f Fault) error {
	if _, err := cp.C.WaitHealthy(ctx, cp.RecoveryTimeout, nil); err != nil {
		return fmt.Errorf("before %q: %w", f.Name, err)
	}
	r := FaultResult{Fault: f, Start: time.Now(), Excused: map[string]bool{}, NodeDown: -1}
	fmt.Fprintf(cp.Log, "%s  fault: %s\n", r.Start.Format("15:04:05.000"), f.Name)
	heal, err := f.Inject(ctx, cp.C, &r)
	if err == nil {
		err = heal(ctx)
	}
	r.Healed = time.Now()
	if err != nil {
		// Leave nothing of the fault behind for the next one, and keep its window.
		err = errors.Join(fmt.Errorf("%q: %w", f.Name, err), cp.C.Restore(ctx))
		r.RecoveryErr = err
		r.Recovered = time.Now()
		cp.Results = append(cp.Results, r)
		return err
	}
	r.Recovered, r.RecoveryErr = cp.C.WaitHealthy(ctx, cp.RecoveryTimeout, r.Stranded)
	if r.RecoveryErr == nil {
		fmt.Fprintf(cp.Log, "%s  healthy %.1f s after the fault ended\n", r.Recovered.Format("15:04:05.000"), r.Recovered.Sub(r.Healed).Seconds())
	} else {
		fmt.Fprintf(cp.Log, "%s  %v\n", time.Now().Format("15:04:05.000"), r.RecoveryErr)
	}
	cp.Results = append(cp.Results, r)
	time.Sleep(cp.Settle)
	return r.RecoveryErr
}

// Judge reads what the database and the simulator counted at the end (the generations
// first, so every value they count was issued before the simulator's count) and judges the
// campaign's history. Faults were injected from from to to.
func (cp *Campaign) Judge(ctx context.Context, from, to time.Time, stale []string) (History, Verdict, error) {
	h := History{From: from, To: to, TokenTTL: cp.C.Opts.TokenTTL, Overlap: cp.C.Opts.Overlap,
		Accounts: cp.C.Accounts, Faults: cp.Results, Uses: cp.Rec.Uses(), Before: cp.before,
		GenBefore: cp.genBefore, Stale: stale}
	var err error
	if h.GenAfter, err = cp.C.Generations(ctx); err != nil {
		return h, Verdict{}, err
	}
	if h.After, err = cp.C.SimAPI.Stats(ctx, ""); err != nil {
		return h, Verdict{}, fmt.Errorf("simulator stats: %w", err)
	}
	return h, Judge(h), nil
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// countUses counts the uses asked for in [from, to) that came to o.
func countUses(uses []Use, o Outcome, from, to time.Time) int {
	n := 0
	for _, u := range uses {
		if !u.Asked.Before(from) && u.Asked.Before(to) && u.Outcome() == o {
			n++
		}
	}
	return n
}

// Report prints the final tables: one row per kind of fault (a long campaign injects each
// many times), then the campaign's totals.
func Report(w io.Writer, h History, v Verdict) {
	var names []string
	byName := map[string][]FaultResult{}
	for _, r := range h.Faults {
		if byName[r.Name] == nil {
			names = append(names, r.Name)
		}
		byName[r.Name] = append(byName[r.Name], r)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\tinjected\theld (s)\trecovered after (s), median / max\tuses accepted\trejected\t503\tnode unreachable\tnotes (last injection)\t")
	for _, name := range names {
		rs := byName[name]
		var held, recovered []float64
		var accepted, rejected, unavailable, unreachable, failed int
		for _, r := range rs {
			held = append(held, r.Healed.Sub(r.Start).Seconds())
			if r.RecoveryErr != nil {
				failed++
			} else {
				recovered = append(recovered, r.Recovered.Sub(r.Healed).Seconds())
			}
			accepted += countUses(h.Uses, Accepted, r.Start, r.end())
			rejected += countUses(h.Uses, Rejected, r.Start, r.end())
			unavailable += countUses(h.Uses, Unavailable, r.Start, r.end())
			unreachable += countUses(h.Uses, Unreachable, r.Start, r.end())
		}
		rec := "-"
		if len(recovered) > 0 {
			rec = fmt.Sprintf("%.1f / %.1f", median(recovered), slices.Max(recovered))
		}
		if failed > 0 {
			rec += fmt.Sprintf(" (%d failed)", failed)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%s\t%d\t%d\t%d\t%d\t%s\t\n", name, len(rs), median(held), rec,
			accepted, rejected, unavailable, unreachable, rs[len(rs)-1].Detail)
	}
	tw.Flush()
	fmt.Fprintln(w)

	byRequest := map[Request]int{}
	for _, u := range h.Uses {
		byRequest[u.Request]++
	}
	perCycle := func(n float64) float64 { return n / float64(len(h.Accounts)) / max(v.ScheduledCycles, 1) }
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "campaign\t%s of faults, then %s of checks; %d accounts, token lifetime %s, overlap %s\t\n",
		h.To.Sub(h.From).Round(time.Second), h.After.At.Sub(h.To).Round(time.Second), len(h.Accounts), h.TokenTTL, h.Overlap)
	fmt.Fprintf(tw, "app server requests\t%d access tokens, %d jsapi tickets, %d JS-SDK configs; %d credentials used late, up to just before their expires_at\t\n",
		byRequest[TokenRequest], byRequest[TicketRequest], byRequest[JSSDKRequest], v.Held)
	fmt.Fprintf(tw, "outcomes\t%d accepted, %d rejected, %d answered 503, %d other answers, %d to an unreachable node, %d not used\t\n",
		v.Outcomes[Accepted], v.Outcomes[Rejected], v.Outcomes[Unavailable], v.Outcomes[OtherStatus], v.Outcomes[Unreachable], v.Outcomes[NotUsed])
	fmt.Fprintf(tw, "rejected while promised (answered before expires_at)\t%d\t\n", v.Outcomes[Rejected])
	fmt.Fprintf(tw, "rejected only after expires_at (the use was slowed past it)\t%d\t\n", v.Outcomes[LateUse])
	fmt.Fprintf(tw, "503 outside PostgreSQL's and WeChat's outages\t%d\t\n", v.Unavailable503)
	fmt.Fprintf(tw, "node unreachable outside its restart\t%d\t\n", v.Unreachable)
	fmt.Fprintf(tw, "new tokens issued by WeChat\t%d in %.1f scheduled refresh cycles: %.2f per account per cycle\t\n",
		v.TokensIssued, v.ScheduledCycles, perCycle(float64(v.TokensIssued)))
	fmt.Fprintf(tw, "second new token within one cycle\t%d explained by a fault for that account; %d otherwise\t\n",
		v.Excused, countPrefix(v.Violations, "two new tokens"))
	fmt.Fprintf(tw, "token API calls per account per cycle\t%.2f (failed and faulted calls included)\t\n", perCycle(float64(v.TokenCalls)))
	fmt.Fprintf(tw, "credentials that did not refresh after the campaign\t%d\t\n", len(h.Stale))
	tw.Flush()
	if len(v.Violations) > 0 {
		fmt.Fprintln(w, "\nviolations:")
		for _, s := range v.Violations {
			fmt.Fprintln(w, "  -", s)
		}
	}
}

func countPrefix(ss []string, prefix string) int {
	n := 0
	for _, s := range ss {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// CredentialsNotRefreshed waits until every credential has a newer generation than it had
// when called, and returns those that had not by the timeout: lost or stuck by the faults.
func (cp *Campaign) CredentialsNotRefreshed(ctx context.Context, timeout time.Duration) ([]string, error) {
	first, err := cp.C.Generations(ctx)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		now, err := cp.C.Generations(ctx)
		if err != nil {
			return nil, err
		}
		var stale []string
		for k, g := range now {
			if g <= first[k] {
				stale = append(stale, fmt.Sprintf("%s %s still at generation %d", k.AppID, k.Kind, g))
			}
		}
		if len(stale) == 0 || time.Now().After(deadline) {
			slices.Sort(stale)
			return stale, nil
		}
		time.Sleep(time.Second)
	}
}
