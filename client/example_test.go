package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	temporalclient "go.temporal.io/sdk/client"

	"github.com/stagecraft/stagecraft/client"
)

// Example rolls out v2 of a Docker service as a canary, waits for the
// outcome, and shows how the controls are called.
func Example() {
	ctx := context.Background()
	c, err := client.Dial(temporalclient.Options{HostPort: "127.0.0.1:7233"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	s := client.Spec{
		Service:     "hello",
		Image:       "stagecraft-demo:v2",
		ExecutionID: "ci-build-4711", // a repeat of this request returns the same rollout
		Platform: client.Platform{Docker: &client.Docker{
			Replicas: 4,
			Port:     8080,
			Env:      map[string]string{"GREETING": "hello"},
		}},
		Strategy: client.Strategy{
			Type:  client.Canary,
			Steps: []int{25, 50, 100},
			Bake:  client.Duration(20 * time.Second),
		},
		Health: client.Health{
			Interval: client.Duration(2 * time.Second),
			Checks: []client.Check{{
				Name: "healthz",
				HTTP: &client.HTTPCheck{URL: "http://{{.Address}}/healthz", ExpectStatus: client.StatusSet{"200"}},
			}},
		},
	}
	r, err := c.Deploy(ctx, s)
	var invalid *client.ValidationError
	var busy *client.BusyError
	switch {
	case errors.As(err, &invalid):
		for _, p := range invalid.Problems {
			fmt.Println(p.Field, p.Message)
		}
		return
	case errors.As(err, &busy):
		log.Fatalf("another rollout holds the target: %s", busy.WorkflowID)
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println("rollout", r.WorkflowID, "existing:", r.Existing)

	st, err := c.Status(ctx, r.WorkflowID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("phase", st.Phase, "stage", st.CurrentStage)

	// Controls validate the transition and return the new status.
	if _, err := c.Pause(ctx, r.WorkflowID, client.ControlRequest{Reason: "checking dashboards", By: "alice"}); err != nil {
		fmt.Println("pause refused:", err)
	}
	if _, err := c.Resume(ctx, r.WorkflowID, client.ControlRequest{By: "alice"}); err != nil {
		fmt.Println("resume refused:", err)
	}

	res, err := c.Wait(ctx, r.WorkflowID, r.RunID)
	if err != nil {
		log.Fatal(err)
	}
	if res.Outcome != client.OutcomeSucceeded {
		fmt.Println("not rolled out:", res.Outcome, res.Error)
		return
	}
	fmt.Println("succeeded")
}

// ExampleClient_Abort aborts a running rollout, which rolls back to what
// ran before, and waits for the rollback's result.
func ExampleClient_Abort() {
	ctx := context.Background()
	c, err := client.Dial(temporalclient.Options{HostPort: "127.0.0.1:7233"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Abort(ctx, "deploy:docker:hello", client.ControlRequest{Reason: "error rate up", By: "oncall"}); err != nil {
		log.Fatal(err)
	}
	res, err := c.Wait(ctx, "deploy:docker:hello", "")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Outcome, res.Rollback.Verified)
}
