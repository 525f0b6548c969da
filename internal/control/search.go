package control

import (
	"context"
	"fmt"
	"slices"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/stagecraft/stagecraft/internal/api"
)

// EnsureSearchAttributes registers on the namespace the search attributes
// rollouts keep current (api.SearchAttributes) that it lacks. A
// workflow that sets an unregistered attribute fails its tasks, so the
// worker calls this before it polls and refuses to start when it cannot.
// It returns the names it added.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) ([]string, error) {
	if namespace == "" {
		namespace = "default"
	}
	have, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return nil, fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range api.SearchAttributes() {
		if got, ok := have.GetCustomAttributes()[name]; ok {
			if got != typ {
				return nil, fmt.Errorf("search attribute %s on namespace %s is %s, want %s", name, namespace, got, typ)
			}
			continue
		}
		missing[name] = typ
	}
	if len(missing) == 0 {
		return nil, nil
	}
	var names []string
	for n := range missing {
		names = append(names, n)
	}
	slices.Sort(names)
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	if err != nil {
		var cmds []string
		for _, n := range names {
			cmds = append(cmds, fmt.Sprintf("temporal operator search-attribute create --namespace %s --name %s --type Keyword", namespace, n))
		}
		return nil, fmt.Errorf("search attributes %s are not registered on namespace %s and could not be added (%w); register them once:\n  %s",
			strings.Join(names, ", "), namespace, err, strings.Join(cmds, "\n  "))
	}
	return names, nil
}

// DevServerSearchAttributeArgs are the `temporal server start-dev` flags
// that register every search attribute.
func DevServerSearchAttributeArgs() []string {
	var names []string
	for n := range api.SearchAttributes() {
		names = append(names, n)
	}
	slices.Sort(names)
	var args []string
	for _, n := range names {
		args = append(args, "--search-attribute", n+"=Keyword")
	}
	return args
}
