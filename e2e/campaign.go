// Package e2e runs wxhub the way users deploy it, as separate processes of the real binary
// against a real PostgreSQL and the WeChat simulator, and injects faults while simulated
// application servers work. The campaign passes only if no application server was handed
// a token WeChat rejects.
package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"wxhub/wechatsim"
)

// FaultResult is what happened around one injected fault.
type FaultResult struct {
	Fault
	Start, Healed, Recovered time.Time
	// Detail is what the fault noted about itself.
	Detail string
	// RecoveryErr is set when the system did not become healthy in time.
	RecoveryErr error
}

// Campaign injects faults one after another into a running cluster while application
// servers work, and judges the outcome.
type Campaign struct {
	C       *Cluster
	Rec     *Recorder
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
}

// OK reports whether every node is ready and every credential is fresh.
func (h Health) OK(nodes int) bool {
	return h.NodesReady == nodes && h.Retrying == 0 && h.Overdue == 0 && h.Expired == 0 && h.NotActive == 0
}

func (h Health) String() string {
	return fmt.Sprintf("nodes ready %d, retrying %d, overdue %d, expired %d, accounts not active %d",
		h.NodesReady, h.Retrying, h.Overdue, h.Expired, h.NotActive)
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

// WaitHealthy polls Health until it is OK, and returns when that was.
func (c *Cluster) WaitHealthy(ctx context.Context, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	var last Health
	var lastErr error
	for time.Now().Before(deadline) {
		h, err := c.Health(ctx)
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
	if _, err := cp.C.WaitHealthy(ctx, cp.RecoveryTimeout); err != nil {
		return fmt.Errorf("before %q: %w", f.Name, err)
	}
	r := FaultResult{Fault: f, Start: time.Now()}
	fmt.Fprintf(cp.Log, "%s  fault: %s\n", r.Start.Format("15:04:05.000"), f.Name)
	heal, err := f.Inject(ctx, cp.C, &r)
	if err != nil {
		return fmt.Errorf("inject %q: %w", f.Name, err)
	}
	if err := heal(ctx); err != nil {
		return fmt.Errorf("heal %q: %w", f.Name, err)
	}
	r.Healed = time.Now()
	r.Recovered, r.RecoveryErr = cp.C.WaitHealthy(ctx, cp.RecoveryTimeout)
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

func within(ws []window, t time.Time) bool {
	return slices.ContainsFunc(ws, func(w window) bool { return w.contains(t) })
}

// Verdict is the campaign's outcome: the numbers of the final table and the violations.
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
}

// Failed reports whether any promise was broken.
func (v Verdict) Failed() bool { return len(v.Violations) > 0 }

// Report prints the final tables.
func (cp *Campaign) Report(w io.Writer, v Verdict, from, to time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "fault\theld (s)\trecovered after (s)\tuses accepted\trejected\t503\tnode unreachable\tnotes\t")
	for _, r := range cp.Results {
		end := r.Recovered
		if end.IsZero() {
			end = time.Now()
		}
		rec := "did not recover"
		if r.RecoveryErr == nil {
			rec = fmt.Sprintf("%.1f", r.Recovered.Sub(r.Healed).Seconds())
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%d\t%d\t%d\t%d\t%s\t\n", r.Name, r.Healed.Sub(r.Start).Seconds(), rec,
			cp.Rec.Count(Accepted, r.Start, end), cp.Rec.Count(Rejected, r.Start, end),
			cp.Rec.Count(Unavailable, r.Start, end), cp.Rec.Count(Unreachable, r.Start, end), r.Detail)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "campaign\t%s, %d accounts, token lifetime %s, overlap %s\t\n", to.Sub(from).Round(time.Second),
		len(cp.C.Accounts), cp.C.Opts.TokenTTL, cp.C.Opts.Overlap)
	fmt.Fprintf(tw, "app server requests\t%d accepted, %d rejected, %d answered 503, %d other answers, %d to an unreachable node\t\n",
		v.Requests[Accepted], v.Requests[Rejected], v.Requests[Unavailable], v.Requests[OtherStatus], v.Requests[Unreachable])
	fmt.Fprintf(tw, "rejected uses outside PostgreSQL's down time\t%d (inside it: %d)\t\n", len(v.RejectedOutsidePG), v.RejectedInsidePG)
	fmt.Fprintf(tw, "503 outside PostgreSQL's down time and recovery\t%d\t\n", v.Unavailable)
	fmt.Fprintf(tw, "new tokens issued by WeChat\t%d in %.1f refresh cycles: %.2f per account per cycle\t\n", v.TokensIssued, v.Cycles,
		float64(v.TokensIssued)/float64(len(cp.C.Accounts))/max(v.Cycles, 1))
	fmt.Fprintf(tw, "second new token within one cycle\t%d during a crash, freeze or secret change; %d otherwise\t\n", v.EarlyExplained, len(v.EarlyUnexplained))
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

// Judge compares what the application servers and WeChat saw with wxhub's promises.
func (cp *Campaign) Judge(ctx context.Context, from, to time.Time) (Verdict, error) {
	v := Verdict{Requests: map[Outcome]int{}}
	for _, o := range []Outcome{Accepted, Rejected, Unavailable, OtherStatus, Unreachable} {
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
	// connections back; anywhere else it is an outage wxhub caused.
	var pgFault []window
	for _, r := range cp.Results {
		if r.PostgresDown {
			pgFault = append(pgFault, window{r.Start, r.Recovered})
		}
	}
	total := cp.Rec.Count(Unavailable, from, time.Time{})
	for _, w := range pgFault {
		total -= cp.Rec.Count(Unavailable, w.from, w.to)
	}
	v.Unavailable = total
	v.OtherAnswers = cp.Rec.OddAnswers()

	stats, err := cp.C.SimAPI.Stats(ctx, "")
	if err != nil {
		return v, err
	}
	var costly []window
	for _, r := range cp.Results {
		if r.ExtraCalls {
			costly = append(costly, window{r.Start, r.Recovered.Add(time.Second)})
		}
	}
	half := cp.C.Opts.TokenTTL / 2
	// The refresh cycle is measured: the mean time between two tokens of an account.
	var gaps int
	var gapSum time.Duration
	for i, a := range cp.C.Accounts {
		s, ok := stats.Accounts[a.AppID]
		if !ok {
			return v, fmt.Errorf("the simulator has no stats for %s", a.AppID)
		}
		for _, t := range s.TokenIssueTimes {
			if !t.Before(from) && t.Before(to) {
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
			if within(costly, t) {
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
		if cp.C.QuotaLimited(i) {
			for _, api := range []string{"token", "stable_token"} {
				if used := s.QuotaUsed[api]; used > cp.C.Opts.QuotaLimit {
					v.OverQuota = append(v.OverQuota, fmt.Sprintf("%s: %d successful %s calls, limit %d", a.AppID, used, api, cp.C.Opts.QuotaLimit))
				}
			}
		}
	}
	if gaps > 0 {
		v.Cycles = float64(to.Sub(from)) / float64(gapSum/time.Duration(gaps))
	}

	for _, x := range v.RejectedOutsidePG {
		v.Violations = append(v.Violations, fmt.Sprintf("%s: %s served generation %d of %s, WeChat answered %d",
			x.At.Format("15:04:05.000"), x.Node, x.Generation, x.AppID, x.ErrCode))
	}
	if v.Unavailable > 0 {
		v.Violations = append(v.Violations, fmt.Sprintf("%d requests answered 503 while PostgreSQL was up", v.Unavailable))
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
	return v, nil
}

// CheckEveryCredentialRefreshes waits until every credential has a newer generation than
// it had when called: nothing was lost or left stuck by the faults.
func (cp *Campaign) CheckEveryCredentialRefreshes(ctx context.Context, v *Verdict, timeout time.Duration) error {
	type key struct {
		id   int64
		kind string
	}
	gens := map[key]int64{}
	rows, err := cp.C.DB.Query(ctx, `SELECT account_id, kind, generation FROM credentials`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var k key
		var g int64
		if err := rows.Scan(&k.id, &k.kind, &g); err != nil {
			return err
		}
		gens[k] = g
	}
	if err := rows.Err(); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	var stale []string
	for {
		stale = stale[:0]
		rows, err := cp.C.DB.Query(ctx, `SELECT c.account_id, c.kind, c.generation, a.appid
			FROM credentials c JOIN accounts a ON a.id = c.account_id`)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k key
			var g int64
			var appid string
			if err := rows.Scan(&k.id, &k.kind, &g, &appid); err != nil {
				return err
			}
			if g <= gens[k] {
				stale = append(stale, fmt.Sprintf("%s %s still at generation %d", appid, k.kind, g))
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if len(stale) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	slices.Sort(stale)
	v.StaleAfterCampaign = stale
	if len(stale) > 0 {
		v.Violations = append(v.Violations, fmt.Sprintf("%d credentials did not refresh within %s after the campaign, e.g. %s",
			len(stale), timeout, strings.Join(stale[:min(3, len(stale))], "; ")))
	}
	return nil
}
