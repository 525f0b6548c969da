package activities

import (
	"context"
	"errors"
	"fmt"
	"github.com/stagecraft/stagecraft/internal/audit"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/stagecraft/stagecraft/internal/health"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// watchInterval keeps rounds fast; no test asserts on elapsed time.
const watchInterval = 10 * time.Millisecond

// fakePlatform answers Endpoints with fixed addresses or an error; the
// other methods are not used by Watch.
type fakePlatform struct {
	addrs []string
	err   error

	mu    sync.Mutex
	calls int
}

func (p *fakePlatform) CheckImage(context.Context, string) error { return nil }

func (p *fakePlatform) Snapshot(context.Context, spec.Spec) (platform.Snapshot, error) {
	return platform.Snapshot{}, nil
}

func (p *fakePlatform) Converge(context.Context, platform.ConvergeRequest) (platform.ConvergeResult, error) {
	return platform.ConvergeResult{}, nil
}

func (p *fakePlatform) Endpoints(context.Context, spec.Spec, string, platform.Snapshot, platform.Which) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	return p.addrs, p.err
}

// scriptChecker answers each round with the next verdict of its script
// (H healthy, D degraded, F failed, N no data) and records what it was given.
type scriptChecker struct {
	t      *testing.T
	script string
	// onRound, if set, runs before round n (1-based) answers.
	onRound func(n int)

	mu     sync.Mutex
	n      int
	checks [][]string
	deps   [][]string
	addrs  [][]string
}

var scriptVerdicts = map[byte]health.Verdict{
	'H': health.Healthy, 'D': health.Degraded, 'F': health.Failed, 'N': health.NoData,
	'5': health.Failed, // an HTTP answer: status 500
}

func (c *scriptChecker) Round(_ context.Context, checks, dependencies []spec.Check, addresses []string) health.Round {
	c.mu.Lock()
	c.n++
	n := c.n
	c.checks = append(c.checks, checkNames(checks))
	c.deps = append(c.deps, checkNames(dependencies))
	c.addrs = append(c.addrs, slices.Clone(addresses))
	c.mu.Unlock()
	if c.onRound != nil {
		c.onRound(n)
	}
	if n > len(c.script) {
		// A watch that outlives its script is a test failure; a failed
		// round ends it under any policy the tests use.
		c.t.Errorf("round %d asked for, script %q has %d", n, c.script, len(c.script))
		return health.Round{At: time.Now(), Verdict: health.Failed,
			Results: []health.Result{{Check: "script", Verdict: health.Failed, Error: "script exhausted"}}}
	}
	v, ok := scriptVerdicts[c.script[n-1]]
	if !ok {
		c.t.Errorf("script %q: unknown verdict %q", c.script, c.script[n-1])
	}
	r := health.Round{At: time.Now(), Verdict: v}
	for _, ch := range checks {
		res := health.Result{Check: ch.Name, Target: "127.0.0.1:8080", Verdict: v}
		if v != health.Healthy {
			res.Error = "boom"
		}
		if c.script[n-1] == '5' {
			res.Code = 500
		}
		r.Results = append(r.Results, res)
	}
	return r
}

func (c *scriptChecker) Allowlist() []string { return nil }

func (c *scriptChecker) rounds() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func checkNames(cs []spec.Check) []string {
	names := []string{}
	for _, c := range cs {
		names = append(names, c.Name)
	}
	return names
}

// storedRound is a round as the fake store received it.
type storedRound struct {
	WorkflowID, RunID string
	audit.Round
}

// fakeStore keeps every round it is given, or refuses writes while down.
type fakeStore struct {
	mu     sync.Mutex
	down   bool
	writes int
	recs   []storedRound
}

func (r *fakeStore) Write(_ context.Context, b audit.Batch) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes++
	if r.down {
		return errors.New("connect: connection refused")
	}
	for _, rd := range b.Rounds {
		r.recs = append(r.recs, storedRound{WorkflowID: b.WorkflowID, RunID: b.RunID, Round: rd})
	}
	return nil
}

func (r *fakeStore) setDown(down bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = down
}

func (r *fakeStore) records() []storedRound {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.recs)
}

// watchSpec is a docker spec with one HTTP check "web" and a policy already
// defaulted (Watch applies the policy as given); edit adjusts it.
func watchSpec(edit func(h *spec.Health)) spec.Spec {
	h := spec.Health{
		Interval:         spec.Duration(watchInterval),
		Timeout:          spec.Duration(time.Second),
		FailureThreshold: 1,
		MinSamples:       1,
		OnNoData:         spec.NoDataFail,
		OnDegraded:       spec.DegradedContinue,
		Checks:           []spec.Check{{Name: "web", HTTP: &spec.HTTPCheck{URL: "http://{{.Address}}/healthz"}}},
	}
	if edit != nil {
		edit(&h)
	}
	return spec.Spec{Service: "web", Image: "web:2",
		Platform: spec.Platform{Docker: &spec.Docker{Replicas: 1, Port: 8080}}, Health: h}
}

// watchFixture is one Watch run's fakes.
type watchFixture struct {
	plat    *fakePlatform
	checker *scriptChecker
	rec     *fakeStore
	acts    *Activities
	env     *testsuite.TestActivityEnvironment
}

func newWatchFixture(t *testing.T, script string) *watchFixture {
	t.Helper()
	f := &watchFixture{
		plat:    &fakePlatform{addrs: []string{"127.0.0.1:8080"}},
		checker: &scriptChecker{t: t, script: script},
		rec:     &fakeStore{},
	}
	f.acts = &Activities{Platforms: map[string]Platform{spec.PlatformDocker: f.plat}, Checker: f.checker, Store: f.rec}
	var s testsuite.WorkflowTestSuite
	f.env = s.NewTestActivityEnvironment()
	f.env.RegisterActivity(f.acts)
	return f
}

// run executes Watch and decodes its result; an activity error fails the test.
func (f *watchFixture) run(t *testing.T, in WatchInput) WatchResult {
	t.Helper()
	val, err := f.env.ExecuteActivity(f.acts.Watch, in)
	if err != nil {
		t.Fatalf("Watch: %v", err)
	}
	var res WatchResult
	if err := val.Get(&res); err != nil {
		t.Fatalf("decode WatchResult: %v", err)
	}
	return res
}

// watchWant is what a table case expects of a WatchResult; LastFailure is
// matched as a substring ("" expects none at all).
type watchWant struct {
	healthy, paused bool
	rounds, passed  int
	failed          int
	tally           health.Tally
	lastFailure     string
	settled         bool
	settleTries     int
}

func checkWatch(t *testing.T, got WatchResult, want watchWant) {
	t.Helper()
	if got.Healthy != want.healthy || got.Paused != want.paused {
		t.Errorf("Healthy, Paused = %v, %v; want %v, %v (lastFailure %q)", got.Healthy, got.Paused, want.healthy, want.paused, got.LastFailure)
	}
	if got.Rounds != want.rounds || got.Passed != want.passed || got.Failed != want.failed {
		t.Errorf("Rounds, Passed, Failed = %d, %d, %d; want %d, %d, %d", got.Rounds, got.Passed, got.Failed, want.rounds, want.passed, want.failed)
	}
	if got.Tally != want.tally {
		t.Errorf("Tally = %+v; want %+v", got.Tally, want.tally)
	}
	switch {
	case want.lastFailure == "" && got.LastFailure != "":
		t.Errorf("LastFailure = %q; want none", got.LastFailure)
	case !strings.Contains(got.LastFailure, want.lastFailure):
		t.Errorf("LastFailure = %q; want it to contain %q", got.LastFailure, want.lastFailure)
	}
	if got.Settled != want.settled || got.SettleTries != want.settleTries {
		t.Errorf("Settled, SettleTries = %v, %d; want %v, %d", got.Settled, got.SettleTries, want.settled, want.settleTries)
	}
	if got.Latest == nil {
		t.Errorf("Latest is nil after %d rounds", got.Rounds)
	}
}

// tally builds a Tally from verdict counts and the streak figures.
func tally(healthy, degraded, failed, noData, samples, streak, failing int) health.Tally {
	return health.Tally{
		Counts: health.Counts{Healthy: healthy, Degraded: degraded, Failed: failed, NoData: noData},
		Rounds: healthy + degraded + failed + noData, Samples: samples, Streak: streak, Failing: failing,
	}
}

func TestWatchPolicy(t *testing.T) {
	cases := []struct {
		name   string
		script string
		edit   func(h *spec.Health)
		in     WatchInput
		want   watchWant
	}{
		{
			name: "rounds all healthy", script: "HHH",
			in:   WatchInput{Mode: WatchRounds, Rounds: 3},
			want: watchWant{healthy: true, rounds: 3, passed: 3, tally: tally(3, 0, 0, 0, 3, 0, 0)},
		},
		{
			name: "threshold 2 absorbs isolated failures", script: "HFHFH",
			edit: func(h *spec.Health) { h.FailureThreshold = 2 },
			in:   WatchInput{Mode: WatchRounds, Rounds: 5},
			want: watchWant{healthy: true, rounds: 5, passed: 3, failed: 2, tally: tally(3, 0, 2, 0, 3, 0, 2),
				lastFailure: `check "web" on 127.0.0.1:8080: boom`},
		},
		{
			name: "threshold 2 fails on two in a row", script: "HFF",
			edit: func(h *spec.Health) { h.FailureThreshold = 2 },
			in:   WatchInput{Mode: WatchRounds, Rounds: 5},
			want: watchWant{rounds: 3, passed: 1, failed: 2, tally: tally(1, 0, 2, 0, 1, 2, 2),
				lastFailure: `check "web" on 127.0.0.1:8080: boom`},
		},
		{
			name: "minSamples outlasts rounds", script: "HHH",
			in:   WatchInput{Mode: WatchRounds, Rounds: 1, MinSamples: 3},
			want: watchWant{healthy: true, rounds: 3, passed: 3, tally: tally(3, 0, 0, 0, 3, 0, 0)},
		},
		{
			name: "onNoData hold waits for samples", script: "NNHHH",
			edit: func(h *spec.Health) { h.OnNoData = spec.NoDataHold },
			in:   WatchInput{Mode: WatchRounds, Rounds: 2, MinSamples: 3},
			want: watchWant{healthy: true, rounds: 5, passed: 3, tally: tally(3, 0, 0, 2, 3, 0, 0),
				lastFailure: `no-data: check "web"`},
		},
		{
			name: "onNoData hold keeps the streak", script: "FNF",
			edit: func(h *spec.Health) { h.OnNoData, h.FailureThreshold = spec.NoDataHold, 2 },
			in:   WatchInput{Mode: WatchRounds, Rounds: 5},
			want: watchWant{rounds: 3, failed: 2, tally: tally(0, 0, 2, 1, 0, 2, 2), lastFailure: `check "web"`},
		},
		{
			name: "onNoData fail by default", script: "N",
			edit: func(h *spec.Health) { h.OnNoData = "" },
			in:   WatchInput{Mode: WatchRounds, Rounds: 3},
			want: watchWant{rounds: 1, failed: 1, tally: tally(0, 0, 0, 1, 0, 1, 1), lastFailure: `no-data: check "web"`},
		},
		{
			name: "onNoData pass counts a sample", script: "NN",
			edit: func(h *spec.Health) { h.OnNoData = spec.NoDataPass },
			in:   WatchInput{Mode: WatchRounds, Rounds: 2, MinSamples: 2},
			want: watchWant{healthy: true, rounds: 2, passed: 2, tally: tally(0, 0, 0, 2, 2, 0, 0), lastFailure: `no-data: check "web"`},
		},
		{
			name: "onDegraded continue by default", script: "DHD",
			edit: func(h *spec.Health) { h.OnDegraded = "" },
			in:   WatchInput{Mode: WatchRounds, Rounds: 3},
			want: watchWant{healthy: true, rounds: 3, passed: 3, tally: tally(1, 2, 0, 0, 3, 0, 0), lastFailure: `degraded: check "web"`},
		},
		{
			name: "onDegraded pause pauses a rounds watch", script: "HD",
			edit: func(h *spec.Health) { h.OnDegraded = spec.DegradedPause },
			in:   WatchInput{Mode: WatchRounds, Rounds: 5},
			want: watchWant{healthy: true, paused: true, rounds: 2, passed: 2, tally: tally(1, 1, 0, 0, 2, 0, 0),
				lastFailure: `degraded: check "web"`},
		},
		{
			name: "onDegraded pause after the operator resumed", script: "DHD",
			edit: func(h *spec.Health) { h.OnDegraded = spec.DegradedPause },
			in:   WatchInput{Mode: WatchRounds, Rounds: 3, AcceptDegraded: true},
			want: watchWant{healthy: true, rounds: 3, passed: 3, tally: tally(1, 2, 0, 0, 3, 0, 0), lastFailure: `degraded: check "web"`},
		},
		{
			name: "onDegraded pause keeps observing", script: "DDHF",
			edit: func(h *spec.Health) { h.OnDegraded = spec.DegradedPause },
			in:   WatchInput{Mode: WatchObserve},
			want: watchWant{rounds: 4, passed: 3, failed: 1, tally: tally(1, 2, 1, 0, 3, 1, 1), lastFailure: `check "web"`},
		},
		{
			name: "observe ends only on failure", script: "HHF",
			in:   WatchInput{Mode: WatchObserve, Rounds: 1},
			want: watchWant{rounds: 3, passed: 2, failed: 1, tally: tally(2, 0, 1, 0, 2, 1, 1), lastFailure: `check "web"`},
		},
		{
			name: "onDegraded fail counts toward the streak", script: "DHDD",
			edit: func(h *spec.Health) { h.OnDegraded, h.FailureThreshold = spec.DegradedFail, 2 },
			in:   WatchInput{Mode: WatchRounds, Rounds: 5},
			want: watchWant{rounds: 4, passed: 1, failed: 3, tally: tally(1, 3, 0, 0, 1, 2, 3), lastFailure: `degraded: check "web"`},
		},
		{
			name: "verify settles then watches the window", script: "FFHHH",
			edit: func(h *spec.Health) { h.VerifyWindow = spec.Duration(3 * watchInterval) },
			in:   WatchInput{Mode: WatchVerify, Rounds: 5},
			want: watchWant{healthy: true, rounds: 5, passed: 3, tally: tally(3, 0, 0, 0, 3, 0, 0),
				lastFailure: `check "web"`, settled: true, settleTries: 2},
		},
		{
			name: "verify window zero ends at minSamples", script: "FHH",
			edit: func(h *spec.Health) { h.MinSamples = 2 },
			in:   WatchInput{Mode: WatchVerify, Rounds: 5},
			want: watchWant{healthy: true, rounds: 3, passed: 2, tally: tally(2, 0, 0, 0, 2, 0, 0),
				lastFailure: `check "web"`, settled: true, settleTries: 1},
		},
		{
			name: "verify never settles", script: "FFFFF",
			edit: func(h *spec.Health) { h.VerifyWindow = spec.Duration(3 * watchInterval) },
			in:   WatchInput{Mode: WatchVerify, Rounds: 5},
			want: watchWant{rounds: 5, lastFailure: `no passing round in 5 tries: check "web"`, settleTries: 5},
		},
		{
			name: "verify relapse after settling", script: "FHFF",
			edit: func(h *spec.Health) { h.FailureThreshold, h.VerifyWindow = 2, spec.Duration(time.Hour) },
			in:   WatchInput{Mode: WatchVerify, Rounds: 5},
			want: watchWant{rounds: 4, passed: 1, failed: 2, tally: tally(1, 0, 2, 0, 1, 2, 2),
				lastFailure: `check "web"`, settled: true, settleTries: 1},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newWatchFixture(t, c.script)
			in := c.in
			in.Spec, in.Which, in.Stage = watchSpec(c.edit), platform.WhichNew, "canary"
			got := f.run(t, in)
			checkWatch(t, got, c.want)
			if n := f.checker.rounds(); n != len(c.script) {
				t.Errorf("checker ran %d rounds; script has %d", n, len(c.script))
			}
			if got.Latest != nil && got.Latest.Verdict != scriptVerdicts[c.script[len(c.script)-1]] {
				t.Errorf("Latest verdict %q; want the last round's %q", got.Latest.Verdict, c.script[len(c.script)-1:])
			}
		})
	}
}

func TestWatchVerifySkipsChecks(t *testing.T) {
	edit := func(h *spec.Health) {
		h.Checks = []spec.Check{
			{Name: "web", HTTP: &spec.HTTPCheck{URL: "http://{{.Address}}/healthz"}},
			{Name: "version", SkipVerify: true, HTTP: &spec.HTTPCheck{URL: "http://{{.Address}}/version"}},
			{Name: "port", TCP: &spec.TCPCheck{Address: "{{.Address}}"}},
		}
		h.Dependencies = []spec.Check{{Name: "db", TCP: &spec.TCPCheck{Address: "127.0.0.1:5432"}}}
	}
	cases := []struct {
		mode WatchMode
		want []string
	}{
		{WatchVerify, []string{"web", "port"}},
		{WatchRounds, []string{"web", "version", "port"}},
	}
	for _, c := range cases {
		t.Run(string(c.mode), func(t *testing.T) {
			f := newWatchFixture(t, "HH")
			f.plat.addrs = []string{"127.0.0.1:8080", "127.0.0.1:8081"}
			got := f.run(t, WatchInput{Spec: watchSpec(edit), Which: platform.WhichOld, Mode: c.mode, Rounds: 2})
			if !got.Healthy {
				t.Fatalf("unhealthy: %+v", got)
			}
			for i := range f.checker.checks {
				if !slices.Equal(f.checker.checks[i], c.want) {
					t.Errorf("round %d checks %v; want %v", i+1, f.checker.checks[i], c.want)
				}
				if !slices.Equal(f.checker.deps[i], []string{"db"}) {
					t.Errorf("round %d dependencies %v; want [db]", i+1, f.checker.deps[i])
				}
				if !slices.Equal(f.checker.addrs[i], f.plat.addrs) {
					t.Errorf("round %d addresses %v; want %v", i+1, f.checker.addrs[i], f.plat.addrs)
				}
			}
		})
	}
}

func TestWatchEndpointsError(t *testing.T) {
	f := newWatchFixture(t, "")
	f.plat.err = errors.New("list containers: connection refused")
	got := f.run(t, WatchInput{Spec: watchSpec(nil), Which: platform.WhichNew, Mode: WatchRounds, Rounds: 3})
	checkWatch(t, got, watchWant{rounds: 1, failed: 1, tally: tally(0, 0, 0, 1, 0, 1, 1),
		lastFailure: `no-data: check "endpoints": list containers: connection refused`})
	if n := f.checker.rounds(); n != 0 {
		t.Errorf("checker ran %d rounds without addresses", n)
	}
	if got.Latest == nil || got.Latest.Verdict != health.NoData {
		t.Errorf("Latest = %+v; want a no-data round", got.Latest)
	}
}

func TestWatchRecordsRounds(t *testing.T) {
	f := newWatchFixture(t, "FHHH")
	in := WatchInput{Spec: watchSpec(nil), Which: platform.WhichOld, Mode: WatchVerify, Rounds: 5, Stage: "rollback"}
	in.Spec.Health.MinSamples = 3
	got := f.run(t, in)
	if !got.Healthy {
		t.Fatalf("unhealthy: %+v", got)
	}
	recs := f.rec.records()
	if len(recs) != got.Rounds {
		t.Fatalf("%d records for %d rounds", len(recs), got.Rounds)
	}
	for i, r := range recs {
		if r.Seq != i+1 {
			t.Errorf("record %d: Seq %d; want %d", i, r.Seq, i+1)
		}
		if r.Stage != "rollback" || r.Which != string(platform.WhichOld) {
			t.Errorf("record %d: Stage %q Which %q", i, r.Stage, r.Which)
		}
		if r.WorkflowID == "" || r.RunID == "" {
			t.Errorf("record %d: no workflow ID or run ID: %+v", i, r)
		}
		if want := scriptVerdicts[f.checker.script[i]]; r.Verdict != want {
			t.Errorf("record %d: verdict %q; want %q", i, r.Verdict, want)
		}
	}
}

func TestWatchCancelled(t *testing.T) {
	f := newWatchFixture(t, "HFHH")
	bg, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	f.env.SetWorkerOptions(worker.Options{BackgroundActivityContext: bg})
	// Cancelled while the third round runs: that round is not counted.
	f.checker.onRound = func(n int) {
		if n == 3 {
			cancel(temporal.NewCanceledError())
		}
	}
	in := WatchInput{Spec: watchSpec(nil), Which: platform.WhichNew, Mode: WatchObserve}
	in.Spec.Health.FailureThreshold = 2
	_, err := f.env.ExecuteActivity(f.acts.Watch, in)
	var canceled *temporal.CanceledError
	if !errors.As(err, &canceled) {
		t.Fatalf("Watch returned %v; want a CanceledError", err)
	}
	if !canceled.HasDetails() {
		t.Fatal("CanceledError carries no details")
	}
	var sum WatchResult
	if err := canceled.Details(&sum); err != nil {
		t.Fatalf("decode details: %v", err)
	}
	checkWatch(t, sum, watchWant{rounds: 2, passed: 1, failed: 1, tally: tally(1, 0, 1, 0, 1, 1, 1), lastFailure: `check "web"`})
	if n := len(f.rec.records()); n != 2 {
		t.Errorf("%d rounds recorded; want 2", n)
	}
}

func TestWatchResumesFromHeartbeat(t *testing.T) {
	cases := []struct {
		name   string
		prev   WatchResult
		mode   WatchMode
		rounds int
		script string
		want   watchWant
	}{
		{
			name: "streak carries over",
			prev: WatchResult{Rounds: 2, Passed: 1, Failed: 1, Tally: tally(1, 0, 1, 0, 1, 1, 1), LastFailure: "earlier"},
			mode: WatchRounds, rounds: 5, script: "F",
			want: watchWant{rounds: 3, passed: 1, failed: 2, tally: tally(1, 0, 2, 0, 1, 2, 2), lastFailure: `check "web"`},
		},
		{
			name: "rounds count from the previous attempt",
			prev: WatchResult{Rounds: 2, Passed: 2, Tally: tally(2, 0, 0, 0, 2, 0, 0)},
			mode: WatchRounds, rounds: 3, script: "H",
			want: watchWant{healthy: true, rounds: 3, passed: 3, tally: tally(3, 0, 0, 0, 3, 0, 0)},
		},
		{
			name: "settled verify stays settled",
			prev: WatchResult{Rounds: 3, Passed: 1, Tally: tally(1, 0, 0, 0, 1, 0, 0), LastFailure: "earlier", Settled: true, SettleTries: 2},
			mode: WatchVerify, rounds: 5, script: "H",
			want: watchWant{healthy: true, rounds: 4, passed: 2, tally: tally(2, 0, 0, 0, 2, 0, 0),
				lastFailure: "earlier", settled: true, settleTries: 2},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newWatchFixture(t, c.script)
			f.env.SetHeartbeatDetails(c.prev)
			s := watchSpec(func(h *spec.Health) { h.FailureThreshold, h.MinSamples = 2, 2 })
			got := f.run(t, WatchInput{Spec: s, Which: platform.WhichNew, Mode: c.mode, Rounds: c.rounds})
			checkWatch(t, got, c.want)
			if n := f.checker.rounds(); n != len(c.script) {
				t.Errorf("checker ran %d rounds; want %d", n, len(c.script))
			}
			recs := f.rec.records()
			if len(recs) != 1 || recs[0].Seq != c.prev.Rounds+1 {
				t.Errorf("records %+v; want one with Seq %d", recs, c.prev.Rounds+1)
			}
		})
	}
}

// A retried watch whose last recorded round is more than an interval ago
// checks at once instead of an interval after the retry: a lost worker
// (or lost heartbeats) delays one round, it does not open a gap.
func TestWatchRetryKeepsTheSchedule(t *testing.T) {
	const interval = 5 * time.Second
	for _, c := range []struct {
		name  string
		until time.Time
	}{
		{name: "no deadline"},
		{name: "before the bake's deadline", until: time.Now().Add(time.Hour)},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newWatchFixture(t, "H")
			last := time.Now().Add(-3 * interval)
			f.env.SetHeartbeatDetails(WatchResult{Rounds: 1, Passed: 1, Tally: tally(1, 0, 0, 0, 1, 0, 0),
				Latest: &health.Round{At: last, Verdict: health.Healthy}})
			start := time.Now()
			var firstAt time.Time
			f.checker.onRound = func(n int) {
				if n == 1 {
					firstAt = time.Now()
				}
			}
			s := watchSpec(func(h *spec.Health) { h.Interval = spec.Duration(interval) })
			got := f.run(t, WatchInput{Spec: s, Which: platform.WhichNew, Mode: WatchRounds, Rounds: 2, Until: c.until})
			if !got.Healthy || got.Rounds != 2 {
				t.Fatalf("healthy=%v after %d rounds; want the 1 round left", got.Healthy, got.Rounds)
			}
			if wait := firstAt.Sub(start); wait > interval/2 {
				t.Errorf("first round %s after the retry began; want it at once (the last was %s ago)", wait, start.Sub(last))
			}
		})
	}
}

func TestWatchUnknownPlatform(t *testing.T) {
	f := newWatchFixture(t, "")
	s := watchSpec(nil)
	s.Platform = spec.Platform{Kubernetes: &spec.Kubernetes{}}
	_, err := f.env.ExecuteActivity(f.acts.Watch, WatchInput{Spec: s, Mode: WatchRounds, Rounds: 1})
	var app *temporal.ApplicationError
	if !errors.As(err, &app) || !app.NonRetryable() || app.Type() != platform.ErrTypeInvalidSpec {
		t.Fatalf("Watch = %v; want a non-retryable %s error", err, platform.ErrTypeInvalidSpec)
	}
	if f.checker.rounds() != 0 {
		t.Error("checker ran without a platform")
	}
}

// Under onNoData: pass a round that found no instance is still no sample:
// a rollback whose restored instances cannot be listed is never verified.
func TestWatchEndpointsErrorUnderPass(t *testing.T) {
	f := newWatchFixture(t, "")
	f.plat.err = errors.New("list containers: connection refused")
	s := watchSpec(nil)
	s.Health.OnNoData = spec.NoDataPass
	got := f.run(t, WatchInput{Spec: s, Which: platform.WhichOld, Mode: WatchVerify, Rounds: 3})
	if got.Healthy || got.Settled || got.Passed != 0 {
		t.Fatalf("verified a rollback without instances: %+v", got)
	}
	if !strings.Contains(got.LastFailure, "no passing round in 3 tries") {
		t.Errorf("LastFailure = %q", got.LastFailure)
	}
}

// While the audit store is down, rounds wait in the summary and are written,
// in order and once each, when it is back; never holding up the checks.
func TestWatchKeepsRoundsWhileTheStoreIsDown(t *testing.T) {
	t.Run("store back mid-watch", func(t *testing.T) {
		f := newWatchFixture(t, "HHHHH")
		f.rec.setDown(true)
		f.checker.onRound = func(n int) {
			if n == 4 {
				f.rec.setDown(false)
			}
		}
		got := f.run(t, WatchInput{Spec: watchSpec(nil), Which: platform.WhichNew, Mode: WatchRounds, Rounds: 5})
		if !got.Healthy || len(got.Unwritten) != 0 {
			t.Fatalf("healthy %v, %d unwritten; want healthy with everything written", got.Healthy, len(got.Unwritten))
		}
		var seqs []int
		for _, r := range f.rec.records() {
			seqs = append(seqs, r.Seq)
		}
		if fmt.Sprint(seqs) != "[1 2 3 4 5]" {
			t.Errorf("stored rounds %v, want [1 2 3 4 5] once each", seqs)
		}
	})
	t.Run("store down throughout", func(t *testing.T) {
		f := newWatchFixture(t, "HHH")
		f.rec.setDown(true)
		got := f.run(t, WatchInput{Spec: watchSpec(nil), Which: platform.WhichNew, Mode: WatchRounds, Rounds: 3, Stage: "canary 5%"})
		if !got.Healthy || len(got.Unwritten) != 3 || got.Unwritten[2].Seq != 3 || got.Unwritten[0].Stage != "canary 5%" {
			t.Fatalf("result %+v; want healthy with rounds 1-3 left for the workflow's audit writer", got)
		}
		if got.Unwritten[0].ActivityID == "" || len(got.Unwritten[0].Results) == 0 {
			t.Errorf("unwritten round lacks its key or evidence: %+v", got.Unwritten[0])
		}
	})
}

// A retried watch given the bake's deadline ends once it passes (with its
// samples), however many rounds it was asked for: a watcher retried after
// a worker crash does not stretch the bake to make up missed rounds. Short
// of its samples at the deadline, it goes on until it has them. A first
// attempt runs the rounds it was asked for.
func TestWatchEndsAtTheBakeDeadline(t *testing.T) {
	// A first attempt runs its rounds as asked, deadline or not.
	f := newWatchFixture(t, "HHHH")
	s := watchSpec(nil)
	res := f.run(t, WatchInput{Spec: s, Mode: WatchRounds, Rounds: 4, MinSamples: 1, Until: time.Now()})
	if !res.Healthy || res.Rounds != 4 {
		t.Errorf("first attempt: healthy=%v after %d rounds; want its 4 rounds", res.Healthy, res.Rounds)
	}

	// A retried one (it resumes from a heartbeat) stops at the deadline.
	f = newWatchFixture(t, "HHHHHHHHHH")
	f.env.SetHeartbeatDetails(WatchResult{})
	start := time.Now()
	res = f.run(t, WatchInput{Spec: s, Mode: WatchRounds, Rounds: 1000, MinSamples: 1, Until: start.Add(3 * watchInterval)})
	if !res.Healthy || res.Rounds > 3 || time.Since(start) > 10*watchInterval {
		t.Errorf("with a deadline 3 intervals away: healthy=%v after %d rounds and %s", res.Healthy, res.Rounds, time.Since(start))
	}

	f = newWatchFixture(t, "FFHHH")
	f.env.SetHeartbeatDetails(WatchResult{})
	s = watchSpec(func(h *spec.Health) { h.FailureThreshold = 3 })
	res = f.run(t, WatchInput{Spec: s, Mode: WatchRounds, Rounds: 1000, MinSamples: 2, Until: time.Now().Add(-time.Second)})
	if !res.Healthy || res.Rounds != 4 || res.Passed != 2 {
		t.Errorf("past its deadline without samples: healthy=%v rounds=%d passed=%d; want the 4 rounds that give 2 samples", res.Healthy, res.Rounds, res.Passed)
	}
}

// A retried watch past the bake's deadline ends at once only on a recent
// round that was not failing; otherwise a round now decides. Before, it
// passed on its samples alone: a version that stopped answering after its
// first samples passed the stage with no failed round recorded.
func TestWatchPastTheDeadlineNeedsAPassingRound(t *testing.T) {
	const interval = time.Second
	failedAgo := func(d time.Duration) *health.Round {
		return &health.Round{At: time.Now().Add(-d), Verdict: health.Failed}
	}
	healthyAgo := func(d time.Duration) *health.Round {
		return &health.Round{At: time.Now().Add(-d), Verdict: health.Healthy}
	}
	for _, c := range []struct {
		name       string
		prev       WatchResult
		threshold  int
		minSamples int
		script     string
		healthy    bool
	}{
		{name: "samples but no latest round: the round now fails", prev: WatchResult{Rounds: 1, Passed: 1, Tally: tally(1, 0, 0, 0, 1, 0, 0)},
			threshold: 1, minSamples: 1, script: "F"},
		{name: "no sample needed, none taken: the round now fails", threshold: 1, script: "F"},
		{name: "failing streak: the next failure fails", threshold: 2, minSamples: 1, script: "F",
			prev: WatchResult{Rounds: 2, Passed: 1, Failed: 1, Tally: tally(1, 0, 1, 0, 1, 1, 1), Latest: failedAgo(10 * time.Millisecond)}},
		{name: "failing streak: a passing round passes", threshold: 2, minSamples: 1, script: "H", healthy: true,
			prev: WatchResult{Rounds: 2, Passed: 1, Failed: 1, Tally: tally(1, 0, 1, 0, 1, 1, 1), Latest: failedAgo(10 * time.Millisecond)}},
		{name: "healthy but an interval old: the round now fails", threshold: 1, minSamples: 1, script: "F",
			prev: WatchResult{Rounds: 1, Passed: 1, Tally: tally(1, 0, 0, 0, 1, 0, 0), Latest: healthyAgo(3 * interval)}},
		{name: "recent healthy round: ends at once", threshold: 1, minSamples: 1, script: "", healthy: true,
			prev: WatchResult{Rounds: 1, Passed: 1, Tally: tally(1, 0, 0, 0, 1, 0, 0), Latest: healthyAgo(10 * time.Millisecond)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newWatchFixture(t, c.script)
			f.env.SetHeartbeatDetails(c.prev)
			s := watchSpec(func(h *spec.Health) { h.Interval, h.FailureThreshold = spec.Duration(interval), c.threshold })
			got := f.run(t, WatchInput{Spec: s, Which: platform.WhichNew, Mode: WatchRounds, Rounds: 10,
				MinSamples: c.minSamples, Until: time.Now().Add(-time.Second)})
			if got.Healthy != c.healthy || f.checker.rounds() != len(c.script) {
				t.Errorf("healthy=%v after %d rounds of its own (rounds=%d passed=%d failed=%d); want healthy=%v after %d",
					got.Healthy, f.checker.rounds(), got.Rounds, got.Passed, got.Failed, c.healthy, len(c.script))
			}
		})
	}
}

// A round that was running when its attempt was lost (the heartbeat marked
// it in flight) counts as a round without data under the spec's policy;
// it never vanishes. Before, the retried attempt ignored it.
func TestWatchCountsALostRound(t *testing.T) {
	started := time.Now().Add(-2 * time.Second)
	prev := WatchResult{Rounds: 2, Passed: 2, Tally: tally(2, 0, 0, 0, 2, 0, 0), OwedSince: 1,
		Latest: &health.Round{At: started.Add(-time.Second), Verdict: health.Healthy}, RoundStarted: started}
	for _, c := range []struct {
		name   string
		edit   func(h *spec.Health)
		script string
		want   watchWant
	}{
		{name: "onNoData fail (default) fails it", script: "",
			want: watchWant{rounds: 3, passed: 2, failed: 1, tally: tally(2, 0, 0, 1, 2, 1, 1), lastFailure: "was lost with its attempt"}},
		{name: "threshold 2: the next failure fails", script: "F", edit: func(h *spec.Health) { h.FailureThreshold = 2 },
			want: watchWant{rounds: 4, passed: 2, failed: 2, tally: tally(2, 0, 1, 1, 2, 2, 2), lastFailure: `check "web"`}},
		{name: "onNoData hold: neither sample nor failure", script: "H", edit: func(h *spec.Health) { h.OnNoData = spec.NoDataHold },
			want: watchWant{healthy: true, rounds: 4, passed: 3, tally: tally(3, 0, 0, 1, 3, 0, 0), lastFailure: "was lost with its attempt"}},
		{name: "onNoData pass: not a sample either", script: "H", edit: func(h *spec.Health) { h.OnNoData = spec.NoDataPass },
			want: watchWant{healthy: true, rounds: 4, passed: 3, tally: tally(3, 0, 0, 1, 3, 0, 0), lastFailure: "was lost with its attempt"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newWatchFixture(t, c.script)
			f.env.SetHeartbeatDetails(prev)
			s := watchSpec(func(h *spec.Health) {
				h.Interval = spec.Duration(time.Second)
				if c.edit != nil {
					c.edit(h)
				}
			})
			got := f.run(t, WatchInput{Spec: s, Which: platform.WhichNew, Mode: WatchRounds, Rounds: 4, Stage: "canary 10%"})
			checkWatch(t, got, c.want)
			if got.Lost != 1 || !got.RoundStarted.IsZero() {
				t.Errorf("Lost=%d RoundStarted=%v; want 1 and cleared", got.Lost, got.RoundStarted)
			}
			if n := f.checker.rounds(); n != len(c.script) {
				t.Errorf("checker ran %d rounds; want %d", n, len(c.script))
			}
			recs := f.rec.records()
			if len(recs) == 0 || recs[0].Seq != 3 || recs[0].Verdict != health.NoData || !recs[0].At.Equal(started) {
				t.Fatalf("audit records %+v; want the lost round first, as round 3, no-data, at %s", recs, started)
			}
		})
	}
}

// lostAttempts counts the attempts lost with a round owed since the one
// that completed the latest round; the watch fails at maxLostAttempts.
// Attempts lost while no round was due yet are not counted.
func TestLostAttempts(t *testing.T) {
	const interval = 30 * time.Second
	now := time.Now()
	ago := func(d time.Duration) *health.Round { return &health.Round{At: now.Add(-d), Verdict: health.Healthy} }
	for _, c := range []struct {
		name    string
		sum     WatchResult
		attempt int32
		want    int
	}{
		{"first attempt", WatchResult{}, 1, 0},
		{"no heartbeat ever reached the server", WatchResult{}, 3, 2},
		{"started, no round yet, none due", WatchResult{Started: now.Add(-10 * time.Second)}, 4, 0},
		{"started, no round completed, one due", WatchResult{Started: now.Add(-2 * interval)}, 4, 3},
		{"the attempt before completed a round", WatchResult{Rounds: 4, OwedSince: 2, Started: now.Add(-time.Hour), Latest: ago(2 * interval)}, 3, 0},
		{"five lost since the last round", WatchResult{Rounds: 4, OwedSince: 2, Started: now.Add(-time.Hour), Latest: ago(5 * interval)}, 8, 5},
		{"lost while the next round was not due", WatchResult{Rounds: 4, OwedSince: 2, Started: now.Add(-time.Hour), Latest: ago(interval / 2)}, 8, 0},
		{"a summary from before OwedSince", WatchResult{Rounds: 4, Latest: ago(2 * interval)}, 9, 0},
	} {
		if got := lostAttempts(c.sum, c.attempt, now, interval); got != c.want {
			t.Errorf("%s: lostAttempts(attempt %d) = %d; want %d", c.name, c.attempt, got, c.want)
		}
	}
}

// A round longer than the heartbeat timeout (a check that waits out its
// timeout on a version that accepts and never answers) keeps beating: the
// round is counted, failed, and the attempt is not lost. Before, the round
// blocked the heartbeats and the attempt timed out with its round.
func TestWatchHeartbeatsThroughALongRound(t *testing.T) {
	const hb = time.Second
	f := newWatchFixture(t, "F")
	f.checker.onRound = func(int) { time.Sleep(3 * hb) }
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(time.Minute)
	env.RegisterActivity(f.acts)
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in WatchInput) (WatchResult, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
			HeartbeatTimeout: hb, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1}})
		var res WatchResult
		err := workflow.ExecuteActivity(ctx, f.acts.Watch, in).Get(ctx, &res)
		return res, err
	}, workflow.RegisterOptions{Name: "watch"})
	var mu sync.Mutex
	var marked bool
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		var d WatchResult
		if details.HasValues() && details.Get(&d) == nil && !d.RoundStarted.IsZero() {
			mu.Lock()
			marked = true
			mu.Unlock()
		}
	})
	in := WatchInput{Spec: watchSpec(nil), Which: platform.WhichNew, Mode: WatchRounds, Rounds: 3}
	env.ExecuteWorkflow("watch", in)
	if err := env.GetWorkflowError(); err != nil {
		t.Fatalf("the watch lost its attempt to a %s round: %v", 3*hb, err)
	}
	var got WatchResult
	if err := env.GetWorkflowResult(&got); err != nil {
		t.Fatal(err)
	}
	checkWatch(t, got, watchWant{rounds: 1, failed: 1, tally: tally(0, 0, 1, 0, 0, 1, 1), lastFailure: `check "web"`})
	mu.Lock()
	defer mu.Unlock()
	if !marked {
		t.Error("no heartbeat marked the round in flight")
	}
}

// runKeepAlive runs body as an activity with heartbeat timeout hb (its
// keepAlive beats every 500 ms) and returns the details of every heartbeat
// the server saw, decoded as strings (no details: "").
func runKeepAlive(t *testing.T, hb time.Duration, opts worker.Options, body func(ctx context.Context) error) ([]string, error) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(time.Minute)
	env.SetWorkerOptions(opts)
	env.RegisterActivityWithOptions(body, activity.RegisterOptions{Name: "keep"})
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
			HeartbeatTimeout: hb, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1}})
		return workflow.ExecuteActivity(ctx, "keep").Get(ctx, nil)
	}, workflow.RegisterOptions{Name: "keep"})
	var mu sync.Mutex
	var beats []string
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		var d string
		if details.HasValues() {
			var v any
			if err := details.Get(&v); err != nil {
				d = "undecodable: " + err.Error()
			} else {
				d = fmt.Sprint(v)
			}
		}
		mu.Lock()
		beats = append(beats, d)
		mu.Unlock()
	})
	env.ExecuteWorkflow("keep")
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(beats), env.GetWorkflowError()
}

// A heartbeat carries the details as they were when set was called: the
// caller may change what it passed at once (Watch's summary shares its
// slices with the copy it heartbeats, and keepUnwritten rewrites them),
// and the ticker's beats never see it. Before, set kept the value and
// every beat encoded it again, in the ticker's goroutine, racing with the
// caller (go test -race reports it) and sending what the caller wrote.
func TestKeepAliveBeatsASnapshot(t *testing.T) {
	beats, err := runKeepAlive(t, time.Second, worker.Options{}, func(ctx context.Context) error {
		set, stop := keepAlive(ctx)
		defer stop()
		words := []string{"set"}
		set(words)
		words[0] = "changed after set"
		time.Sleep(1200 * time.Millisecond) // two beats of the ticker
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(beats) == 0 {
		t.Fatal("no heartbeat")
	}
	for _, b := range beats {
		if b != "[set]" {
			t.Fatalf("heartbeats %q; want each to carry [set]", beats)
		}
	}
}

// A watch whose audit store is down keeps its unwritten rounds in the
// summary it heartbeats while the ticker beats: run with -race, it must
// report nothing. Before, the ticker encoded a copy of the summary whose
// Unwritten shared memory with the loop's, which keepUnwritten rewrote.
func TestWatchHeartbeatsWhileTheStoreIsDownRaceFree(t *testing.T) {
	rec := &fakeStore{down: true}
	acts := &Activities{Platforms: map[string]Platform{spec.PlatformDocker: &fakePlatform{addrs: []string{"127.0.0.1:8080"}}},
		Checker: &wideChecker{}, Store: rec}
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetTestTimeout(time.Minute)
	env.RegisterActivity(acts)
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, in WatchInput) (WatchResult, error) {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute,
			HeartbeatTimeout: time.Second, RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1}})
		var res WatchResult
		err := workflow.ExecuteActivity(ctx, acts.Watch, in).Get(ctx, &res)
		return res, err
	}, workflow.RegisterOptions{Name: "watch"})
	var mu sync.Mutex
	beats := 0
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		var d WatchResult
		if details.HasValues() && details.Get(&d) == nil {
			mu.Lock()
			beats++
			mu.Unlock()
		}
	})
	sp := watchSpec(func(h *spec.Health) { h.Interval = spec.Duration(5 * time.Millisecond) })
	// About 2 s of rounds: four beats of the ticker.
	deadline := time.Now().Add(2 * time.Second)
	acts.Checker.(*wideChecker).onRound = func(int) {
		if time.Now().After(deadline) {
			rec.setDown(false) // the rounds left are written at last
		}
	}
	env.ExecuteWorkflow("watch", WatchInput{Spec: sp, Which: platform.WhichNew, Mode: WatchRounds, Rounds: 300})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var got WatchResult
	if err := env.GetWorkflowResult(&got); err != nil {
		t.Fatal(err)
	}
	if !got.Healthy || got.Rounds != 300 {
		t.Fatalf("healthy %v after %d rounds; want healthy after 300", got.Healthy, got.Rounds)
	}
	mu.Lock()
	defer mu.Unlock()
	if beats == 0 {
		t.Error("no heartbeat decoded as a WatchResult")
	}
}

// badDetails encode once, then their encoding panics (or fails): details
// a beat cannot encode.
type badDetails struct {
	n     *atomic.Int32
	panic bool
}

func (b badDetails) MarshalJSON() ([]byte, error) {
	if b.n.Add(1) == 1 {
		return []byte(`"good"`), nil
	}
	if b.panic {
		panic("cannot encode")
	}
	return nil, errors.New("cannot encode")
}

// Details that cannot be encoded, or a heartbeat that panics, never end
// the attempt or the worker: the failure is logged and the beats go on
// with the last details that encoded. Before, the ticker's goroutine
// encoded the details at every beat and a panic there (the SDK panics when
// heartbeat details do not encode) was unrecovered: the process exited.
func TestKeepAliveSurvivesDetailsThatDoNotEncode(t *testing.T) {
	for _, panics := range []bool{false, true} {
		t.Run(fmt.Sprintf("marshal panics %v", panics), func(t *testing.T) {
			beats, err := runKeepAlive(t, time.Second, worker.Options{}, func(ctx context.Context) error {
				set, stop := keepAlive(ctx)
				defer stop()
				set(badDetails{n: new(atomic.Int32), panic: panics}) // encodes once
				time.Sleep(1200 * time.Millisecond)
				set(badDetails{n: new(atomic.Int32), panic: panics}) // encodes once again
				set(badDetails{n: func() *atomic.Int32 { n := new(atomic.Int32); n.Store(1); return n }(), panic: panics})
				time.Sleep(600 * time.Millisecond)
				return nil
			})
			if err != nil {
				t.Fatalf("the attempt failed: %v", err)
			}
			if len(beats) < 3 || beats[len(beats)-1] != "good" {
				t.Errorf("heartbeats %q; want some, the last carrying the last details that encoded", beats)
			}
		})
	}
	t.Run("heartbeat panics", func(t *testing.T) {
		var calls atomic.Int32
		opts := worker.Options{Interceptors: []interceptor.WorkerInterceptor{&beatSizes{record: func([]any) {
			if calls.Add(1) > 1 {
				panic("heartbeat exploded")
			}
		}}}}
		// The panicking beats never reach the server: a heartbeat timeout
		// of 3 s (beats every 750 ms) outlasts them.
		_, err := runKeepAlive(t, 3*time.Second, opts, func(ctx context.Context) error {
			set, stop := keepAlive(ctx)
			defer stop()
			set("first")
			time.Sleep(1600 * time.Millisecond) // the ticker's beats panic
			set("second")                       // and so does this one
			return nil
		})
		if err != nil {
			t.Fatalf("the attempt failed: %v", err)
		}
		if calls.Load() < 3 {
			t.Errorf("%d heartbeats; want the ticker to go on beating", calls.Load())
		}
	})
}
