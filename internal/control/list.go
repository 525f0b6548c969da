package control

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/stagecraft/stagecraft/internal/api"
)

// ListFilter selects rollouts and releases by their search attributes;
// empty fields match anything. Query, if set, is a raw visibility query
// ANDed with the rest.
type ListFilter struct {
	Service, Environment, Strategy, Platform, Status, Image string
	Query                                                   string
	Limit                                                   int
}

// Listed is one rollout or release as Temporal's visibility lists it.
type Listed struct {
	WorkflowID  string     `json:"workflowId"`
	RunID       string     `json:"runId"`
	Workflow    string     `json:"workflow"`
	Service     string     `json:"service"`
	Environment string     `json:"environment,omitempty"`
	Strategy    string     `json:"strategy"`
	Platform    string     `json:"platform"`
	Status      string     `json:"status"`
	Image       string     `json:"image,omitempty"`
	StartedAt   time.Time  `json:"startedAt"`
	ClosedAt    *time.Time `json:"closedAt,omitempty"`
}

// VisibilityQuery is the list filter as a visibility query.
func (f ListFilter) VisibilityQuery() string {
	var parts []string
	for _, c := range []struct{ name, value string }{
		{api.SearchService.GetName(), f.Service}, {api.SearchEnvironment.GetName(), f.Environment},
		{api.SearchStrategy.GetName(), f.Strategy}, {api.SearchPlatform.GetName(), f.Platform},
		{api.SearchStatus.GetName(), f.Status}, {api.SearchImage.GetName(), f.Image},
	} {
		if c.value != "" {
			parts = append(parts, fmt.Sprintf("%s = %q", c.name, c.value))
		}
	}
	if len(parts) == 0 {
		// Only what Stagecraft started: every run of ours has a service.
		parts = append(parts, api.SearchService.GetName()+" IS NOT NULL")
	}
	if f.Query != "" {
		parts = append(parts, "("+f.Query+")")
	}
	return strings.Join(parts, " AND ")
}

// List lists rollouts and releases, newest first, from Temporal's
// visibility, filtered on their search attributes.
func List(ctx context.Context, c client.Client, f ListFilter) ([]Listed, error) {
	if f.Limit <= 0 {
		f.Limit = 50
	}
	query := f.VisibilityQuery()
	var out []Listed
	var token []byte
	for len(out) < f.Limit {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, NextPageToken: token,
			PageSize: int32(min(f.Limit-len(out), 100))})
		if err != nil {
			return nil, fmt.Errorf("list (%s): %w", query, err)
		}
		for _, e := range resp.GetExecutions() {
			l := Listed{WorkflowID: e.GetExecution().GetWorkflowId(), RunID: e.GetExecution().GetRunId(),
				Workflow: e.GetType().GetName(), StartedAt: e.GetStartTime().AsTime()}
			if e.GetCloseTime() != nil {
				t := e.GetCloseTime().AsTime()
				l.ClosedAt = &t
			}
			fields := e.GetSearchAttributes().GetIndexedFields()
			for name, dst := range map[string]*string{
				api.SearchService.GetName(): &l.Service, api.SearchEnvironment.GetName(): &l.Environment,
				api.SearchStrategy.GetName(): &l.Strategy, api.SearchPlatform.GetName(): &l.Platform,
				api.SearchStatus.GetName(): &l.Status, api.SearchImage.GetName(): &l.Image,
			} {
				if p, ok := fields[name]; ok {
					_ = converter.GetDefaultDataConverter().FromPayload(p, dst)
				}
			}
			out = append(out, l)
		}
		token = resp.GetNextPageToken()
		if len(token) == 0 {
			break
		}
	}
	return out, nil
}
