package platform

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestFenceAdmits(t *testing.T) {
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	const a, b = "default/deploy:docker:hello", "other/deploy:docker:hello"
	held := Fence{Owner: a, Step: 200, Until: now.Add(time.Minute)}
	cases := []struct {
		name string
		mine Fence
		held Fence
		now  time.Time
		want bool
	}{
		{"nothing stored", Fence{Owner: a, Step: 1, Until: now.Add(time.Minute)}, Fence{}, now, true},
		{"unfenced caller", Fence{}, held, now, true},
		{"same attempt again", Fence{Owner: a, Step: 200, Until: held.Until}, held, now, true},
		{"a later attempt, stage or rollback", Fence{Owner: a, Step: 300, Until: now.Add(2 * time.Minute)}, held, now, true},
		{"a zombie: an earlier attempt", Fence{Owner: a, Step: 100, Until: now.Add(time.Hour)}, held, now, false},
		{"a zombie long after the holder's lease", Fence{Owner: a, Step: 100}, held, now.Add(time.Hour), false},
		{"another owner while the lease holds", Fence{Owner: b, Step: 900, Until: now.Add(time.Hour)}, held, now, false},
		{"another owner the moment the lease ends", Fence{Owner: b, Step: 1}, held, held.Until, true},
		{"another owner after the lease", Fence{Owner: b, Step: 1}, held, now.Add(time.Hour), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.mine.Admits(c.held, c.now); got != c.want {
				t.Fatalf("%+v.Admits(%+v, %s) = %v; want %v", c.mine, c.held, c.now, got, c.want)
			}
		})
	}
}

func TestFencedError(t *testing.T) {
	until := time.Date(2026, 12, 3, 9, 10, 0, 0, time.UTC)
	zombie := &FencedError{Target: "docker:hello", Mine: Fence{Owner: "ns/w", Step: 1}, Held: Fence{Owner: "ns/w", Step: 2, Until: until}}
	other := &FencedError{Target: "docker:hello", Mine: Fence{Owner: "x/w", Step: 3}, Held: Fence{Owner: "ns/w", Step: 2, Until: until}}
	for _, err := range []error{zombie, other} {
		if !errors.Is(fmt.Errorf("converge: %w", err), ErrFenced) {
			t.Fatalf("%v does not wrap ErrFenced", err)
		}
	}
	if msg := zombie.Error(); !strings.Contains(msg, "later converge attempt") || !strings.Contains(msg, "docker:hello") {
		t.Fatalf("zombie: %s", msg)
	}
	if msg := other.Error(); !strings.Contains(msg, "held by ns/w until 2026-12-03T09:10:00Z") {
		t.Fatalf("other owner: %s", msg)
	}
}
