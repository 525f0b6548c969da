package activities

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// wideChecker answers every round with 16 degraded results carrying long
// error texts and full excerpts (a failing dependency degrades, never fails,
// a round), and runs onRound before round n.
type wideChecker struct {
	onRound func(n int)
	mu      sync.Mutex
	n       int
}

func (c *wideChecker) Round(context.Context, []spec.Check, []spec.Check, []string) health.Round {
	c.mu.Lock()
	c.n++
	n := c.n
	c.mu.Unlock()
	if c.onRound != nil {
		c.onRound(n)
	}
	r := health.Round{At: time.Now(), Verdict: health.Degraded}
	for i := range maxEvidence {
		r.Results = append(r.Results, health.Result{Check: fmt.Sprintf("dep-%02d", i), Target: "http://10.0.0.1:8080/healthz",
			Verdict: health.Degraded, Latency: time.Second,
			Error:   "dependency unhealthy: " + strings.Repeat("upstream connect error or disconnect/reset before headers; ", 20),
			Excerpt: strings.Repeat("x", 256)})
	}
	return r
}

func (c *wideChecker) Allowlist() []string { return nil }

// payloadBytes is v's size as the SDK's default data converter sends it.
func payloadBytes(t *testing.T, v any) int {
	t.Helper()
	p, err := converter.GetDefaultDataConverter().ToPayload(v)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return p.Size()
}

// A watch whose audit store is down for thousands of rounds keeps what it
// buffers for the store within a byte bound, so no heartbeat and no result
// nears the server's 2 MiB payload limit (past it the server refuses them
// non-retryably and the stage rolls back). What it cannot keep is counted,
// on the round kept after the gap, for the workflow to record; once the
// store is back, every round kept is written once and only that count
// stays behind.
func TestUnwrittenBoundedByBytes(t *testing.T) {
	const rounds = 2100
	// The buffer, plus the latest round and the counters.
	const bound = maxUnwrittenBytes + 64<<10
	for _, back := range []bool{false, true} {
		t.Run(fmt.Sprintf("store back at the end %v", back), func(t *testing.T) {
			rec := &fakeStore{down: true}
			checker := &wideChecker{onRound: func(n int) {
				if back && n == rounds-5 {
					rec.setDown(false)
				}
			}}
			acts := &Activities{Platforms: map[string]Platform{spec.PlatformDocker: &fakePlatform{addrs: []string{"127.0.0.1:8080"}}},
				Checker: checker, Store: rec}
			var s testsuite.WorkflowTestSuite
			env := s.NewTestActivityEnvironment()
			env.RegisterActivity(acts)
			// Every heartbeat is measured as recorded, before the SDK's
			// throttling sends only some of them.
			var mu sync.Mutex
			beats, largest := 0, 0
			env.SetWorkerOptions(worker.Options{Interceptors: []interceptor.WorkerInterceptor{&beatSizes{record: func(details []any) {
				n := payloadBytes(t, details[0])
				mu.Lock()
				defer mu.Unlock()
				beats++
				largest = max(largest, n)
			}}}})
			sp := watchSpec(func(h *spec.Health) { h.Interval = spec.Duration(time.Millisecond) })
			val, err := env.ExecuteActivity(acts.Watch, WatchInput{Spec: sp, Which: platform.WhichNew, Mode: WatchRounds,
				Rounds: rounds, Stage: "canary 5%"})
			if err != nil {
				t.Fatalf("Watch: %v", err)
			}
			var got WatchResult
			if err := val.Get(&got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if beats < rounds {
				t.Fatalf("%d heartbeats seen for %d rounds", beats, rounds)
			}
			if largest > bound {
				t.Errorf("largest heartbeat %d bytes; want at most %d", largest, bound)
			}
			if n := payloadBytes(t, got); n > bound {
				t.Errorf("result %d bytes; want at most %d", n, bound)
			}
			if !got.Healthy || got.Rounds != rounds || got.Dropped == 0 {
				t.Fatalf("healthy %v after %d rounds, %d dropped; want healthy after %d with some dropped", got.Healthy, got.Rounds, got.Dropped, rounds)
			}
			noted := 0
			for i, u := range got.Unwritten {
				noted += u.Dropped
				if i == len(got.Unwritten)-1 {
					break // the latest round keeps its evidence
				}
				for _, r := range u.Results {
					if len(r.Error) > maxUnwrittenError || r.Excerpt != "" {
						t.Fatalf("buffered round %d keeps a %d-byte error and a %d-byte excerpt", u.Seq, len(r.Error), len(r.Excerpt))
					}
				}
			}
			if noted != got.Dropped {
				t.Errorf("rounds kept note %d dropped; the watch dropped %d", noted, got.Dropped)
			}
			if !back {
				if len(got.Unwritten)+got.Dropped != rounds {
					t.Errorf("%d kept + %d dropped; want all %d rounds accounted for", len(got.Unwritten), got.Dropped, rounds)
				}
				return
			}
			// The store took every round kept, once each, in order.
			seen := map[int]bool{}
			last := 0
			for _, r := range rec.records() {
				if seen[r.Seq] || r.Seq <= last {
					t.Fatalf("round %d written again or out of order (after %d)", r.Seq, last)
				}
				seen[r.Seq], last = true, r.Seq
			}
			if len(seen)+got.Dropped != rounds || last != rounds {
				t.Errorf("%d written + %d dropped, last %d; want all %d rounds accounted for", len(seen), got.Dropped, last, rounds)
			}
			if len(got.Unwritten) != 1 || !got.Unwritten[0].Note() {
				t.Errorf("left for the workflow: %+v; want only the note of the rounds dropped", got.Unwritten)
			}
		})
	}
}

// beatSizes hands every heartbeat's details to record.
type beatSizes struct {
	interceptor.WorkerInterceptorBase
	record func(details []any)
}

func (b *beatSizes) InterceptActivity(_ context.Context, next interceptor.ActivityInboundInterceptor) interceptor.ActivityInboundInterceptor {
	return &beatInbound{ActivityInboundInterceptorBase: interceptor.ActivityInboundInterceptorBase{Next: next}, record: b.record}
}

type beatInbound struct {
	interceptor.ActivityInboundInterceptorBase
	record func(details []any)
}

func (b *beatInbound) Init(outbound interceptor.ActivityOutboundInterceptor) error {
	return b.Next.Init(&beatOutbound{ActivityOutboundInterceptorBase: interceptor.ActivityOutboundInterceptorBase{Next: outbound}, record: b.record})
}

type beatOutbound struct {
	interceptor.ActivityOutboundInterceptorBase
	record func(details []any)
}

func (b *beatOutbound) RecordHeartbeat(ctx context.Context, details ...any) {
	if len(details) > 0 {
		b.record(details)
	}
	b.Next.RecordHeartbeat(ctx, details...)
}

// The buffer's accounting: a note of dropped rounds that is itself dropped
// passes its count on without counting as a round, and cut error texts
// stay valid UTF-8 within their bound.
func TestKeepUnwrittenAccounting(t *testing.T) {
	big := func(seq int) audit.Round {
		return audit.Round{Seq: seq, Results: []health.Result{{Check: "c", Error: strings.Repeat("é", 200), Excerpt: "x"}}}
	}
	sum := WatchResult{Unwritten: []audit.Round{{Seq: 1, Dropped: 5}}} // a note left by a write
	for seq := 2; sum.Dropped == 0; seq++ {
		keepUnwritten(&sum, big(seq))
	}
	if got := sum.Unwritten[0].Dropped; got != 5+sum.Dropped {
		t.Errorf("oldest kept round notes %d dropped; want the note's 5 plus the %d rounds dropped", got, sum.Dropped)
	}
	if sum.Dropped != 1 {
		t.Errorf("Dropped = %d; want 1 (the note is no round)", sum.Dropped)
	}
	for _, u := range sum.Unwritten[:len(sum.Unwritten)-1] {
		e := u.Results[0].Error
		if len(e) > maxUnwrittenError || !utf8.ValidString(e) || u.Results[0].Excerpt != "" {
			t.Fatalf("buffered error %q (%d bytes), excerpt %q", e, len(e), u.Results[0].Excerpt)
		}
	}
	if last := sum.Unwritten[len(sum.Unwritten)-1]; last.Results[0].Excerpt == "" {
		t.Error("the newest round lost its excerpt before the store was tried")
	}
}

// keepUnwritten leaves the summary it was given as it was: a copy of it
// (what a heartbeat is sending, as Watch's beat(sum) does) keeps the
// newest round's evidence after the next round is kept. Before, it slimmed
// that round in the shared slice, under the heartbeat encoding it.
func TestKeepUnwrittenLeavesSnapshotsAlone(t *testing.T) {
	round := func(seq int) audit.Round {
		return audit.Round{Seq: seq, Results: []health.Result{{Check: "c", Error: strings.Repeat("e", 2*maxUnwrittenError), Excerpt: "body"}}}
	}
	var sum WatchResult
	keepUnwritten(&sum, round(1))
	snap := sum // what beat(sum) holds
	before := fmt.Sprintf("%+v", snap.Unwritten)
	keepUnwritten(&sum, round(2))
	if after := fmt.Sprintf("%+v", snap.Unwritten); after != before {
		t.Fatalf("the heartbeat's copy changed under it:\n  was %s\n  now %s", before, after)
	}
	if len(sum.Unwritten) != 2 || sum.Unwritten[0].Results[0].Excerpt != "" || sum.Unwritten[1].Results[0].Excerpt == "" {
		t.Errorf("kept %+v; want round 1 slimmed and round 2 whole", sum.Unwritten)
	}
}
