package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"wxhub/db"
)

// batchWriter stores the values the worker's refreshes fetched, many per statement.
// PostgreSQL serialises notifying commits, disk flush included, so one commit per token caps
// a database at about a thousand refreshes a second whatever the number of workers; one
// commit per batch does not. Each value of a batch is still fenced on its own claim and
// generation (db.WriteCredentials).
type batchWriter struct {
	store    *db.Store
	requests chan writeRequest
	maxRows  int
	delay    time.Duration
	metrics  *metrics
	// stopped is closed when run has returned: nothing takes requests any more.
	stopped chan struct{}
}

// writeRequest is one value waiting for its batch, and where its outcome goes.
type writeRequest struct {
	write db.ClaimWrite
	done  chan writeResult
}

type writeResult struct {
	outcome db.WriteOutcome
	err     error
}

// writeTimeout bounds one batch statement: a half-open connection must not outlast the
// overlap, and the caller retries.
const writeTimeout = 5 * time.Second

func newBatchWriter(store *db.Store, maxRows int, delay time.Duration, m *metrics) *batchWriter {
	return &batchWriter{store: store, requests: make(chan writeRequest), maxRows: maxRows, delay: delay, metrics: m,
		stopped: make(chan struct{})}
}

// run flushes batches on conns connections at once until ctx ends. A batch starts with the
// first value that arrives and closes when it holds maxRows values or delay has passed since,
// so under load batches fill up while a lone refresh waits only delay.
func (b *batchWriter) run(ctx context.Context, conns int) {
	defer close(b.stopped)
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for {
				batch, ok := b.gather(ctx)
				if !ok {
					return
				}
				b.flush(batch)
			}
		})
	}
	wg.Wait()
}

func (b *batchWriter) gather(ctx context.Context) ([]writeRequest, bool) {
	var batch []writeRequest
	select {
	case <-ctx.Done():
		return nil, false
	case r := <-b.requests:
		batch = append(batch, r)
	}
	timer := time.NewTimer(b.delay)
	defer timer.Stop()
	for len(batch) < b.maxRows {
		select {
		case r := <-b.requests:
			batch = append(batch, r)
		case <-timer.C:
			return batch, true
		}
	}
	return batch, true
}

func (b *batchWriter) flush(batch []writeRequest) {
	writes := make([]db.ClaimWrite, len(batch))
	for i, r := range batch {
		writes[i] = r.write
	}
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	start := time.Now()
	out, err := b.store.WriteCredentials(ctx, writes)
	cancel()
	b.metrics.writeBatches.Observe(float64(len(batch)))
	b.metrics.writeSeconds.Observe(time.Since(start).Seconds())
	for i, r := range batch {
		if err != nil {
			r.done <- writeResult{err: err}
			continue
		}
		r.done <- writeResult{outcome: out[i]}
	}
}

// errWriterStopped means the worker stopped storing values: its shutdown grace ran out.
var errWriterStopped = errors.New("the worker has stopped storing values")

// write stores one value through the next batch and returns its outcome. It waits for its
// turn however long the batches ahead take, each of which is bounded by writeTimeout.
func (b *batchWriter) write(c db.Claim, w db.Write) (generation int64, replayed bool, err error) {
	done := make(chan writeResult, 1)
	select {
	case b.requests <- writeRequest{write: db.ClaimWrite{Claim: c, Write: w}, done: done}:
	case <-b.stopped:
		return 0, false, errWriterStopped
	}
	res := <-done
	if res.err != nil {
		return 0, false, res.err
	}
	if res.outcome.Err != nil {
		return 0, false, fmt.Errorf("write %s of %s: %w", c.Kind, c.AppID, res.outcome.Err)
	}
	return res.outcome.Generation, res.outcome.Replayed, nil
}
