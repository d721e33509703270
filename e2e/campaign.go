// Package e2e runs wxhub the way users deploy it, as separate processes of the real binary
// against a real PostgreSQL and the WeChat simulator, and injects faults while simulated
// application servers work. The campaign passes only if no application server was handed
// a token WeChat rejects.
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
	// Forced holds the appids whose refresh the fault asked for: their new tokens count as
	// forced refreshes.
	Forced map[string]bool
	// Stranded are the claims a crashed or frozen worker held: the fault has not ended until
	// another worker has taken each over and finished it.
	Stranded []Claim
	// RecoveryErr is set when the system did not become healthy in time.
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
	// before is what the simulator had counted when the campaign began.
	before wechatsim.Stats
}

// Begin records the simulator's counters, so the verdict counts the campaign's calls only.
func (cp *Campaign) Begin(ctx context.Context) error {
	var err error
	cp.before, err = cp.C.SimAPI.Stats(ctx, "")
	return err
}

// Health is a snapshot of the system's state as an operator would check it.
type Health struct {
	NodesReady int
	// Retrying counts credentials whose last refresh attempt failed; Overdue those past
	// their refresh time by more than 2 s; Expired those without a live value.
	Retrying, Overdue, Expired, NotActive int
	// Stranded counts claims of a crashed or frozen worker nobody has finished yet.
	Stranded int
}

// OK reports whether every node is ready and every credential is fresh.
func (h Health) OK(nodes int) bool {
	return h.NodesReady == nodes && h.Retrying == 0 && h.Overdue == 0 && h.Expired == 0 && h.NotActive == 0 && h.Stranded == 0
}

func (h Health) String() string {
	return fmt.Sprintf("nodes ready %d, retrying %d, overdue %d, expired %d, accounts not active %d, stranded claims %d",
		h.NodesReady, h.Retrying, h.Overdue, h.Expired, h.NotActive, h.Stranded)
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
		       count(*) FILTER (WHERE c.refresh_at < now() - interval '2 seconds'),
		       count(*) FILTER (WHERE c.expires_at IS NULL OR c.expires_at < now()),
		       count(DISTINCT a.id) FILTER (WHERE a.status <> 'active')
		FROM credentials c JOIN accounts a ON a.id = c.account_id`).
		Scan(&h.Retrying, &h.Overdue, &h.Expired, &h.NotActive)
	return h, err
}

// Claim identifies one claim of a credential.
type Claim struct {
	AccountID int64
	Kind      string
	Seq       int64
}

// Claims returns the claims worker holds now.
func (c *Cluster) Claims(ctx context.Context, worker string) ([]Claim, error) {
	rows, err := c.DB.Query(ctx, `SELECT account_id, kind, claim_seq FROM credentials
		WHERE claimed_by = $1 AND claimed_until > now()`, worker)
	if err != nil {
		return nil, fmt.Errorf("claims of %s: %w", worker, err)
	}
	defer rows.Close()
	var out []Claim
	for rows.Next() {
		var cl Claim
		if err := rows.Scan(&cl.AccountID, &cl.Kind, &cl.Seq); err != nil {
			return nil, err
		}
		out = append(out, cl)
	}
	return out, rows.Err()
}

// unfinished counts the claims that no later claim has taken over and finished.
func (c *Cluster) unfinished(ctx context.Context, claims []Claim) (int, error) {
	if len(claims) == 0 {
		return 0, nil
	}
	ids, kinds, seqs := make([]int64, len(claims)), make([]string, len(claims)), make([]int64, len(claims))
	for i, cl := range claims {
		ids[i], kinds[i], seqs[i] = cl.AccountID, cl.Kind, cl.Seq
	}
	var n int
	err := c.DB.QueryRow(ctx, `SELECT count(*) FROM credentials c
		JOIN unnest($1::bigint[], $2::text[], $3::bigint[]) AS s(account_id, kind, seq)
		  ON s.account_id = c.account_id AND s.kind = c.kind
		WHERE c.claim_seq <= s.seq OR c.claimed_by IS NOT NULL`, ids, kinds, seqs).Scan(&n)
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
	r := FaultResult{Fault: f, Start: time.Now()}
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

// window is a span of time; a zero end means "until now".
type window struct{ from, to time.Time }

func (w window) contains(t time.Time) bool {
	return !t.Before(w.from) && (w.to.IsZero() || t.Before(w.to))
}

// postgresDown returns the spans in which PostgreSQL was down: from the crash to the end
// of its restart.
func (cp *Campaign) postgresDown() []window {
	var out []window
	for _, r := range cp.Results {
		if r.PostgresDown {
			out = append(out, window{r.Start, r.Healed})
		}
	}
	return out
}

// lastFaultBefore names the fault injected last before t.
func (cp *Campaign) lastFaultBefore(t time.Time) string {
	name := "none"
	for _, r := range cp.Results {
		if r.Start.Before(t) {
			name = r.Name
		}
	}
	return name
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// forced reports whether a fault asked for a refresh of appid around t.
func (cp *Campaign) forced(appid string, t time.Time) bool {
	return slices.ContainsFunc(cp.Results, func(r FaultResult) bool {
		return r.Forced[appid] && (window{r.Start, r.end().Add(time.Second)}).contains(t)
	})
}

func within(ws []window, t time.Time) bool {
	return slices.ContainsFunc(ws, func(w window) bool { return w.contains(t) })
}

// Verdict is the campaign's outcome: the numbers of the final table and the violations.
// Requests counts the application servers' requests by outcome; the Rejected fields split
// the rejections by whether PostgreSQL was down; Unavailable counts 503s while it was up;
// the Early fields count accounts given a second new token within one refresh cycle, with
// and without a fault to explain it; TokenCalls counts calls to WeChat's token APIs;
// Violations lists every broken promise.
type Verdict struct {
	Requests           map[Outcome]int
	RejectedOutsidePG  []Rejection
	RejectedInsidePG   int
	OtherAnswers       []string
	Unavailable        int // 503s outside PostgreSQL's down time and the recovery after it
	TokensIssued       int
	EarlyExplained     int
	EarlyUnexplained   []string
	TokenCalls         int64
	Cycles             float64
	OverQuota          []string
	StaleAfterCampaign []string
	Violations         []string
	// At is when the verdict was taken: the counts cover the campaign's start to then.
	At time.Time
}

// Failed reports whether any promise was broken.
func (v Verdict) Failed() bool { return len(v.Violations) > 0 }

// Report prints the final tables: one row per kind of fault (a long campaign injects each
// many times), then the campaign's totals.
func (cp *Campaign) Report(w io.Writer, v Verdict, from, to time.Time) {
	var names []string
	byName := map[string][]FaultResult{}
	for _, r := range cp.Results {
		if byName[r.Name] == nil {
			names = append(names, r.Name)
		}
		byName[r.Name] = append(byName[r.Name], r)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault	injected	held (s)	recovered after (s), median / max	uses accepted	rejected	503	node unreachable	notes (last injection)	")
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
			accepted += cp.Rec.Count(Accepted, r.Start, r.end())
			rejected += cp.Rec.Count(Rejected, r.Start, r.end())
			unavailable += cp.Rec.Count(Unavailable, r.Start, r.end())
			unreachable += cp.Rec.Count(Unreachable, r.Start, r.end())
		}
		rec := "-"
		if len(recovered) > 0 {
			rec = fmt.Sprintf("%.1f / %.1f", median(recovered), slices.Max(recovered))
		}
		if failed > 0 {
			rec += fmt.Sprintf(" (%d did not recover)", failed)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%s\t%d\t%d\t%d\t%d\t%s\t\n", name, len(rs), median(held), rec,
			accepted, rejected, unavailable, unreachable, rs[len(rs)-1].Detail)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "campaign\t%s of faults, then %s of checks; %d accounts, token lifetime %s, overlap %s\t\n",
		to.Sub(from).Round(time.Second), v.At.Sub(to).Round(time.Second), len(cp.C.Accounts), cp.C.Opts.TokenTTL, cp.C.Opts.Overlap)
	fmt.Fprintf(tw, "app server requests\t%d accepted, %d rejected, %d answered 503, %d other answers, %d to an unreachable node\t\n",
		v.Requests[Accepted], v.Requests[Rejected], v.Requests[Unavailable], v.Requests[OtherStatus], v.Requests[Unreachable])
	fmt.Fprintf(tw, "rejected uses outside PostgreSQL's down time\t%d (inside it: %d)\t\n", len(v.RejectedOutsidePG), v.RejectedInsidePG)
	fmt.Fprintf(tw, "tokens WeChat saw only after the expires_at wxhub gave\t%d (slowed by the latency faults; not wxhub's doing)\t\n", v.Requests[LateUse])
	fmt.Fprintf(tw, "503 outside PostgreSQL's and WeChat's outages and their recovery\t%d\t\n", v.Unavailable)
	fmt.Fprintf(tw, "new tokens issued by WeChat\t%d in %.1f refresh cycles: %.2f per account per cycle\t\n", v.TokensIssued, v.Cycles,
		float64(v.TokensIssued)/float64(len(cp.C.Accounts))/max(v.Cycles, 1))
	fmt.Fprintf(tw, "second new token within one cycle\t%d forced or during a crash, freeze or secret change; %d otherwise\t\n", v.EarlyExplained, len(v.EarlyUnexplained))
	fmt.Fprintf(tw, "token API calls per account per cycle\t%.2f (failed and faulted calls included)\t\n",
		float64(v.TokenCalls)/float64(len(cp.C.Accounts))/max(v.Cycles, 1))
	fmt.Fprintf(tw, "accounts over quota\t%d\t\n", len(v.OverQuota))
	fmt.Fprintf(tw, "credentials that did not refresh after the campaign\t%d\t\n", len(v.StaleAfterCampaign))
	tw.Flush()
	if len(v.Violations) > 0 {
		fmt.Fprintln(w, "\nviolations:")
		for _, s := range v.Violations {
			fmt.Fprintln(w, "  -", s)
		}
	}
}

// Judge compares what the application servers and WeChat saw with wxhub's promises. Faults
// were injected from from to to; what the application servers saw after to counts too.
// stale lists the credentials that did not refresh after the campaign.
func (cp *Campaign) Judge(ctx context.Context, from, to time.Time, stale []string) (Verdict, error) {
	v := Verdict{Requests: map[Outcome]int{}, StaleAfterCampaign: stale}
	for _, o := range []Outcome{Accepted, Rejected, Unavailable, OtherStatus, Unreachable, LateUse} {
		v.Requests[o] = cp.Rec.Count(o, from, time.Time{})
	}
	down := cp.postgresDown()
	for _, x := range cp.Rec.Rejections() {
		if within(down, x.At) {
			v.RejectedInsidePG++
		} else {
			v.RejectedOutsidePG = append(v.RejectedOutsidePG, x)
		}
	}
	// A 503 is the right answer while PostgreSQL is down and until the nodes have their
	// connections back, and for a token that expired while WeChat refused to issue the next
	// one; anywhere else it is an outage wxhub caused.
	var excused []window
	for _, r := range cp.Results {
		if r.PostgresDown || r.WeChatDown {
			excused = append(excused, window{r.Start, r.end()})
		}
	}
	v.Unavailable = cp.Rec.CountOutside(Unavailable, from, excused)
	v.OtherAnswers = cp.Rec.OddAnswers()

	stats, err := cp.C.SimAPI.Stats(ctx, "")
	if err != nil {
		return v, fmt.Errorf("simulator stats: %w", err)
	}
	v.At = stats.At
	var costly []window
	for _, r := range cp.Results {
		if r.ExtraCalls {
			costly = append(costly, window{r.Start, r.end().Add(time.Second)})
		}
	}
	half := cp.C.Opts.TokenTTL / 2
	// The refresh cycle is measured: the mean time between two tokens of an account.
	var gaps int
	var gapSum time.Duration
	for _, a := range cp.C.Accounts {
		s, ok := stats.Accounts[a.AppID]
		if !ok {
			return v, fmt.Errorf("the simulator has no stats for %s", a.AppID)
		}
		for _, t := range s.TokenIssueTimes {
			if !t.Before(from) && t.Before(stats.At) {
				v.TokensIssued++
			}
		}
		was := cp.before.Accounts[a.AppID]
		v.TokenCalls += s.Calls["token"] + s.Calls["stable_token"] - was.Calls["token"] - was.Calls["stable_token"]
		for k := 1; k < len(s.TokenIssueTimes); k++ {
			t, gap := s.TokenIssueTimes[k], s.TokenIssueTimes[k].Sub(s.TokenIssueTimes[k-1])
			if gap >= half {
				gaps, gapSum = gaps+1, gapSum+gap
			}
			if gap >= half || t.Before(from) {
				continue
			}
			if within(costly, t) || cp.forced(a.AppID, t) {
				v.EarlyExplained++
			} else {
				v.EarlyUnexplained = append(v.EarlyUnexplained, fmt.Sprintf("%s (%s): new tokens at %s and %s",
					a.AppID, a.TokenMode, s.TokenIssueTimes[k-1].Format("15:04:05.000"), t.Format("15:04:05.000")))
			}
		}
		for api, codes := range s.Errors {
			if codes[45009] > 0 {
				v.OverQuota = append(v.OverQuota, fmt.Sprintf("%s: %d calls to %s answered 45009", a.AppID, codes[45009], api))
			}
		}
	}
	if gaps > 0 {
		v.Cycles = float64(stats.At.Sub(from)) / float64(gapSum/time.Duration(gaps))
	}

	// Rejections while PostgreSQL is down are reported apart, as the promise allows them;
	// with the staleness bound under the overlap there should be none either.
	for _, x := range cp.Rec.Rejections() {
		where := ""
		if within(down, x.At) {
			where = " while PostgreSQL was down"
		}
		v.Violations = append(v.Violations, fmt.Sprintf("%s: %s served generation %d of %s, WeChat answered %d%s (last fault: %s)",
			x.At.Format("15:04:05.000"), x.Node, x.Generation, x.AppID, x.ErrCode, where, cp.lastFaultBefore(x.At)))
	}
	if v.Unavailable > 0 {
		v.Violations = append(v.Violations, fmt.Sprintf("%d requests answered 503 while PostgreSQL and WeChat were up", v.Unavailable))
	}
	for _, s := range v.OtherAnswers {
		v.Violations = append(v.Violations, "unexpected answer: "+s)
	}
	for _, s := range v.EarlyUnexplained {
		v.Violations = append(v.Violations, "two new tokens in one cycle: "+s)
	}
	v.Violations = append(v.Violations, v.OverQuota...)
	for _, r := range cp.Results {
		if r.RecoveryErr != nil {
			v.Violations = append(v.Violations, fmt.Sprintf("%s: %v", r.Name, r.RecoveryErr))
		}
	}
	if len(stale) > 0 {
		v.Violations = append(v.Violations, fmt.Sprintf("%d credentials did not refresh after the campaign, e.g. %s",
			len(stale), strings.Join(stale[:min(3, len(stale))], "; ")))
	}
	return v, nil
}

// CredentialsNotRefreshed waits until every credential has a newer generation than it had
// when called, and returns those that had not by the timeout: lost or stuck by the faults.
func (cp *Campaign) CredentialsNotRefreshed(ctx context.Context, timeout time.Duration) ([]string, error) {
	type row struct {
		AccountID  int64
		Kind       string
		Generation int64
		AppID      string
	}
	read := func() ([]row, error) {
		rows, err := cp.C.DB.Query(ctx, `SELECT c.account_id, c.kind, c.generation, a.appid
			FROM credentials c JOIN accounts a ON a.id = c.account_id ORDER BY a.appid, c.kind`)
		if err != nil {
			return nil, fmt.Errorf("read generations: %w", err)
		}
		return pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	}
	first, err := read()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		now, err := read()
		if err != nil {
			return nil, err
		}
		var stale []string
		for i, r := range now {
			if i < len(first) && r.Generation <= first[i].Generation {
				stale = append(stale, fmt.Sprintf("%s %s still at generation %d", r.AppID, r.Kind, r.Generation))
			}
		}
		if len(stale) == 0 || time.Now().After(deadline) {
			return stale, nil
		}
		time.Sleep(time.Second)
	}
}
