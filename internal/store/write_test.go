package store

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stagecraft/stagecraft/internal/audit"
	"github.com/stagecraft/stagecraft/internal/health"
)

func TestText(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		limit int
		want  string
	}{
		{"short", "hello", 10, "hello"},
		{"exactly the limit", "hello", 5, "hello"},
		{"cut with an ellipsis", "hello world", 5, "hell…"},
		{"counts characters, not bytes", "ééééé", 5, "ééééé"},
		{"cuts on a character boundary", "éééééé", 5, "éééé…"},
		{"invalid UTF-8 replaced", "a\xffb", 10, "a\uFFFDb"},
		{"NUL removed", "a\x00b\x00", 10, "ab"},
		{"limit one", "abc", 1, "…"},
		{"empty", "", 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := text(tt.in, tt.limit)
			if got != tt.want {
				t.Errorf("text(%q, %d) = %q, want %q", tt.in, tt.limit, got, tt.want)
			}
			if !utf8.ValidString(got) || utf8.RuneCountInString(got) > tt.limit {
				t.Errorf("text(%q, %d) = %q: invalid or over the limit", tt.in, tt.limit, got)
			}
		})
	}
}

func TestTextBoundsErrors(t *testing.T) {
	got := text(strings.Repeat("x", 5000), maxError)
	if n := utf8.RuneCountInString(got); n != maxError {
		t.Errorf("bounded error has %d characters, want %d", n, maxError)
	}
}

func TestCheckRows(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	exit, value := 3, 0.25
	long := strings.Repeat("e", maxError+10)
	rounds := []audit.Round{
		{ActivityID: "9", Seq: 2, Stage: "canary", Which: "new", At: at, Verdict: health.Failed, Results: []health.Result{
			{Check: "http", Target: "127.0.0.1:1", Verdict: health.Failed, Latency: 1500 * time.Microsecond,
				Code: 503, Error: long, Excerpt: "oops"},
			{Check: "cmd", Verdict: health.Healthy, Exit: &exit},
		}},
		{ActivityID: "9", Seq: 1, Stage: "canary", Which: "new", At: at, Verdict: health.NoData},
		{ActivityID: "10", Seq: 1, Stage: "verify", Which: "old", At: at, Verdict: health.Healthy, Results: []health.Result{
			{Check: "prom", Verdict: health.Healthy, Value: &value},
		}},
	}
	got := checkRows(rounds)
	type key struct {
		activity   string
		seq, index int
	}
	var keys []key
	for _, r := range got {
		keys = append(keys, key{r.ActivityID, r.RoundSeq, r.ResultIndex})
	}
	want := []key{{"10", 1, 0}, {"9", 1, -1}, {"9", 2, 0}, {"9", 2, 1}}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("row keys = %v, want %v (key order, a placeholder for the round without results)", keys, want)
	}
	empty := got[1]
	if empty.Check != "" || empty.RoundVerdict != "no-data" || empty.Stage != "canary" || !empty.At.Equal(at) {
		t.Errorf("placeholder row = %+v", empty)
	}
	http := got[2]
	if http.StatusCode == nil || *http.StatusCode != 503 || http.LatencyMS != 1.5 || http.ExitCode != nil ||
		http.Verdict != "failed" || http.RoundVerdict != "failed" || http.Excerpt != "oops" {
		t.Errorf("http row = %+v", http)
	}
	if n := utf8.RuneCountInString(http.Error); n != maxError {
		t.Errorf("http row error has %d characters, want %d", n, maxError)
	}
	if cmd := got[3]; cmd.StatusCode != nil || cmd.ExitCode == nil || *cmd.ExitCode != 3 {
		t.Errorf("command row = %+v", cmd)
	}
	if prom := got[0]; prom.Value == nil || *prom.Value != 0.25 || prom.Which != "old" {
		t.Errorf("prometheus row = %+v", prom)
	}
}

func TestSortedStagesKeepsTheLaterRecordLast(t *testing.T) {
	in := []audit.Stage{{Index: 2, Status: "running"}, {Index: 0, Status: "completed"}, {Index: 2, Status: "completed"}}
	got := sortedStages(in)
	var order []string
	for _, s := range got {
		order = append(order, s.Status)
	}
	if want := []string{"completed", "running", "completed"}; !reflect.DeepEqual(order, want) || got[1].Index != 2 {
		t.Errorf("sorted = %+v, want index 0, then index 2 running before completed", got)
	}
	if in[0].Index != 2 {
		t.Error("sortedStages changed its input")
	}
}

func TestListQuery(t *testing.T) {
	tests := []struct {
		name     string
		f        Filter
		where    string
		wantArgs []any
	}{
		{"all, default limit", Filter{}, "", []any{50}},
		{"service", Filter{Service: "hello", Limit: 5}, "WHERE p.service = $1\n", []any{"hello", 5}},
		{"status", Filter{Status: "completed"}, "WHERE p.status = $1\n", []any{"completed", 50}},
		{"both", Filter{Service: "hello", Status: "failed", Limit: 7},
			"WHERE p.service = $1 AND p.status = $2\n", []any{"hello", "failed", 7}},
		{"negative limit", Filter{Limit: -1}, "", []any{50}},
		{"limit capped", Filter{Limit: 1 << 20}, "", []any{maxLimit}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, args := listQuery(tt.f)
			if !reflect.DeepEqual(args, tt.wantArgs) {
				t.Errorf("args = %v, want %v", args, tt.wantArgs)
			}
			if tt.where != "" && !strings.Contains(q, tt.where) {
				t.Errorf("query lacks %q:\n%s", tt.where, q)
			}
			if tt.where == "" && strings.Contains(q, "\nWHERE ") {
				t.Errorf("unfiltered query has a WHERE:\n%s", q)
			}
			if !strings.HasSuffix(q, "ORDER BY p.created_at DESC, p.id DESC\nLIMIT $"+strconv.Itoa(len(tt.wantArgs))) {
				t.Errorf("query does not end with the order and the limit parameter:\n%s", q)
			}
		})
	}
}

func TestAddRounds(t *testing.T) {
	var c health.Counts
	c = addRounds(c, "healthy", 3)
	c = addRounds(c, "degraded", 2)
	c = addRounds(c, "no-data", 1)
	c = addRounds(c, "failed", 4)
	c = addRounds(c, "bogus", 1)
	if want := (health.Counts{Healthy: 3, Degraded: 2, NoData: 1, Failed: 5}); c != want {
		t.Errorf("counts = %+v, want %+v (an unknown verdict counts as failed)", c, want)
	}
}

// A plan keeps the state its writer gave; without one it is derived from
// its status, and a plan that succeeded is COMPLETED.
func TestPlanStateOfARow(t *testing.T) {
	for _, tc := range []struct {
		p    audit.Plan
		want string
	}{
		{audit.Plan{Status: "paused", State: "VALIDATING"}, "VALIDATING"},
		{audit.Plan{Status: "rolled_back", RolledBack: true}, "ROLLED_BACK"},
		{audit.Plan{Status: "rolling_back"}, "FAILED"},
		{audit.Plan{Status: "hold_cleared", Success: true}, "COMPLETED"},
		{audit.Plan{Status: "deploying"}, "IN_PROGRESS"},
		{audit.Plan{}, "PENDING"},
	} {
		if got := planState(tc.p); got != tc.want {
			t.Errorf("planState(status %q, state %q, success %v) = %q, want %q", tc.p.Status, tc.p.State, tc.p.Success, got, tc.want)
		}
	}
}

// A spec goes to jsonb as it is, or not at all (none, invalid, too big).
func TestSpecJSON(t *testing.T) {
	if got := specJSON(nil); got != nil {
		t.Errorf("no spec: %v, want NULL", got)
	}
	if got := specJSON([]byte(`{"a":`)); got != nil {
		t.Errorf("invalid spec: %v, want NULL", got)
	}
	if got := specJSON([]byte(`{"a":"x\u0000y"}`)); got != `{"a":"x\ufffdy"}` {
		t.Errorf("spec with an escaped NUL: %v", got)
	}
	if got := specJSON([]byte(`"` + strings.Repeat("x", maxSpec) + `"`)); got != nil {
		t.Errorf("spec over maxSpec kept")
	}
}

// Every statement Write queues names its row, and its column list has one
// column per parameter, so an unstorable value is named by row and field.
func TestWriteBatchNamesRowsAndFields(t *testing.T) {
	exit := 1
	b := audit.Batch{WorkflowID: "w", RunID: "r", Plan: &audit.Plan{Service: "s"},
		Stages: []audit.Stage{{Index: 1, Name: "canary-50"}},
		Events: []audit.Event{{Seq: 7}},
		Rounds: []audit.Round{{ActivityID: "11", Seq: 2, Results: []health.Result{{Check: "http", Exit: &exit}}}}}
	batch, rows := writeBatch(b)
	want := []string{"plan", "stage 1 (canary-50)", "event 7", `check round "11"/2 result 0`}
	if !reflect.DeepEqual(rows, want) {
		t.Errorf("rows = %q, want %q", rows, want)
	}
	if len(batch.QueuedQueries) != len(rows) {
		t.Fatalf("%d statements, %d rows", len(batch.QueuedQueries), len(rows))
	}
	for i, q := range batch.QueuedQueries {
		cols := insertColumns(q.SQL)
		if len(cols) != len(q.Arguments) || cols[0] != "workflow_id" || cols[1] != "run_id" {
			t.Errorf("%s: columns %q for %d parameters", rows[i], cols, len(q.Arguments))
		}
	}
	if cols := insertColumns(upsertPlan); cols[19] != "spec" {
		t.Errorf("plan parameter $20 is %q, want spec", cols[19])
	}
}
