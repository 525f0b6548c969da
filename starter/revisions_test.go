package main

import (
	"bytes"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	commonpb "go.temporal.io/api/common/v1"
	enumspb "go.temporal.io/api/enums/v1"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stagecraft/stagecraft/internal/api"
)

func TestTargetID(t *testing.T) {
	for arg, want := range map[string]string{
		"deploy:docker:hello":   "deploy:docker:hello",
		"docker:hello":          "deploy:docker:hello",
		"k8s:prod/payment":      "deploy:k8s:prod/payment",
		"k8s:east/prod/payment": "deploy:k8s:east/prod/payment",
		"hello":                 "",
		"release:prod/shop":     "",
		"ci-build-42":           "",
	} {
		if got := targetID(arg); got != want {
			t.Errorf("targetID(%q) = %q, want %q", arg, got, want)
		}
	}
}

// A run as visibility lists it becomes a revision: image, strategy and
// outcome from its search attributes, who started it and what it undid
// from its memo, duration from its times; a terminated run says so.
func TestVisibleRevision(t *testing.T) {
	dc := converter.GetDefaultDataConverter()
	payload := func(v any) *commonpb.Payload {
		p, err := dc.ToPayload(v)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	e := &workflowpb.WorkflowExecutionInfo{
		Execution: &commonpb.WorkflowExecution{WorkflowId: "deploy:docker:hello", RunId: "r2"},
		StartTime: timestamppb.New(start), CloseTime: timestamppb.New(start.Add(90 * time.Second)),
		Status: enumspb.WORKFLOW_EXECUTION_STATUS_FAILED,
		SearchAttributes: &commonpb.SearchAttributes{IndexedFields: map[string]*commonpb.Payload{
			api.SearchImage.GetName(): payload("hello:v2"), api.SearchStrategy.GetName(): payload("canary"),
			api.SearchStatus.GetName(): payload("rolled_back")}},
		Memo: &commonpb.Memo{Fields: map[string]*commonpb.Payload{
			api.MemoStartedBy: payload("alice@laptop"), api.MemoUndo: payload(api.Undo{RunID: "r1", Revision: 1})}},
	}
	r := visibleRevision(2, e, dc)
	want := revision{Number: 2, WorkflowID: "deploy:docker:hello", RunID: "r2", Image: "hello:v2", Strategy: "canary",
		Outcome: "rolled_back", State: "ROLLED_BACK", StartedBy: "alice@laptop", StartedAt: start, Duration: 90, UndoOf: "r1"}
	end := start.Add(90 * time.Second)
	want.CompletedAt = &end
	if r.CompletedAt == nil || !r.CompletedAt.Equal(end) {
		t.Fatalf("completedAt %v, want %v", r.CompletedAt, end)
	}
	r.CompletedAt = want.CompletedAt
	if !reflect.DeepEqual(r, want) {
		t.Errorf("visibleRevision:\n got %+v\nwant %+v", r, want)
	}

	e.Status = enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED
	e.SearchAttributes.IndexedFields[api.SearchStatus.GetName()] = payload("validating")
	if r := visibleRevision(2, e, dc); r.Outcome != "terminated" || r.State != "" {
		t.Errorf("a terminated run: outcome %q state %q, want terminated and no state", r.Outcome, r.State)
	}
	e.Memo = nil
	e.ParentExecution = &commonpb.WorkflowExecution{WorkflowId: "release:prod/shop"}
	if r := visibleRevision(2, e, dc); r.StartedBy != "release:prod/shop" {
		t.Errorf("a release's rollout was started by %q, want the release", r.StartedBy)
	}
}

func TestPrintRevisions(t *testing.T) {
	revs := history()
	revs.Source = "temporal"
	end := time.Date(2026, 12, 3, 12, 1, 30, 0, time.UTC)
	for i := range revs.Revisions {
		revs.Revisions[i].StartedAt = end.Add(-90 * time.Second)
		revs.Revisions[i].CompletedAt, revs.Revisions[i].Duration = &end, 90
		revs.Revisions[i].Strategy, revs.Revisions[i].StartedBy = "canary", "alice@h"
	}
	revs.Revisions[1].UndoOf = "r2"
	var b bytes.Buffer
	printRevisions(&b, revs)
	out := b.String()
	for _, want := range []string{
		"revisions of deploy:docker:hello (from Temporal's visibility), newest first; * is current",
		"numbers are places among the runs Temporal's retention keeps and move as it drops old ones: undo --to takes the RUN ID",
		"REV  IMAGE",
		"4*   hello:v4  canary    succeeded    alice@h     2026-12-03T12:00:00Z  1m30s     r4      undo to revision 2",
		"3    hello:v3  canary    rolled_back",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("revisions table lacks %q:\n%s", want, out)
		}
	}
}

// Only rollouts are revisions: a ClearHold run under the target's workflow
// ID neither is listed nor moves the numbers of the runs after it.
func TestRunsNumberedWithoutClearHolds(t *testing.T) {
	start := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	run := func(id, typ string, minute int) *workflowpb.WorkflowExecutionInfo {
		return &workflowpb.WorkflowExecutionInfo{
			Execution: &commonpb.WorkflowExecution{WorkflowId: "deploy:docker:hello", RunId: id},
			Type:      &commonpb.WorkflowType{Name: typ},
			StartTime: timestamppb.New(start.Add(time.Duration(minute) * time.Minute)),
			Status:    enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED,
		}
	}
	execs := []*workflowpb.WorkflowExecutionInfo{
		run("r3", api.CanaryWorkflow, 3), run("clear", api.ClearHoldWorkflow, 2),
		run("r2", api.RollingWorkflow, 1), run("r1", api.RecreateWorkflow, 0),
	}
	var got []string
	for _, r := range numberRuns(execs, converter.GetDefaultDataConverter()) {
		got = append(got, strconv.Itoa(r.Number)+":"+r.RunID)
	}
	if want := []string{"3:r3", "2:r2", "1:r1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("numbered runs %v, want %v (no clear-hold)", got, want)
	}
}

// A run after the current that may have left the target mid-way says so,
// and which revision undo restores.
func TestPrintRevisionsLeftMidway(t *testing.T) {
	revs := history()
	revs.Revisions = append([]revision{{Number: 6, RunID: "r6", Image: "hello:v6", Outcome: "rollback_failed"}}, revs.Revisions...)
	var b bytes.Buffer
	printRevisions(&b, revs)
	if want := "may have left the target mid-way: undo restores revision 4"; !strings.Contains(b.String(), want) ||
		strings.Count(b.String(), "mid-way") != 1 {
		t.Errorf("revisions table lacks %q once:\n%s", want, b.String())
	}
	b.Reset()
	printRevisions(&b, history())
	if strings.Contains(b.String(), "mid-way") {
		t.Errorf("rolled back and rejected runs noted as mid-way:\n%s", b.String())
	}
}

// A name from a raw client (a memo or a signal is not validated) cannot
// forge a row: one holding a control character is printed quoted, on its
// own row.
func TestPrintRevisionsQuotesControlCharacters(t *testing.T) {
	revs := history()
	forged := "alice\t2026-12-03T21:00:00Z\t1m0s\trun-1\t\n9*\tevil:v9\tcanary\tsucceeded\tbob@ci"
	revs.Revisions[0].StartedBy = forged
	var b bytes.Buffer
	printRevisions(&b, revs)
	out := b.String()
	if !strings.Contains(out, strconv.Quote(forged)) {
		t.Errorf("the name is not printed quoted:\n%s", out)
	}
	if strings.Contains(out, "evil:v9\tcanary") || strings.Contains(out, "\n9*") {
		t.Errorf("a forged row:\n%s", out)
	}
}
