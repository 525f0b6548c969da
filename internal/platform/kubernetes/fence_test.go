package kubernetes

import (
	"errors"
	"maps"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stagecraft/stagecraft/internal/platform"
)

func TestFenceAnnotationRoundTrip(t *testing.T) {
	until := time.Date(2026, 12, 3, 9, 30, 0, 123456789, time.FixedZone("CET", 3600))
	f := platform.Fence{Owner: "default/deploy:kubernetes:web", Step: 1764754200123456789, Until: until}
	v := encodeFence(f)
	got, err := fenceOf(map[string]string{AnnotationFence: v})
	if err != nil {
		t.Fatal(err)
	}
	if got.Owner != f.Owner || got.Step != f.Step || !got.Until.Equal(f.Until) {
		t.Fatalf("round trip of %q: %+v, want %+v", v, got, f)
	}
	if again := encodeFence(got); again != v {
		t.Fatalf("encoding is not stable: %q then %q", v, again)
	}
	if f, err := fenceOf(map[string]string{"team": "payments"}); err != nil || !f.Zero() {
		t.Fatalf("no annotation: %+v %v, want the zero fence", f, err)
	}
	if _, err := fenceOf(map[string]string{AnnotationFence: "{not json"}); err == nil {
		t.Fatal("a malformed fence was accepted")
	}
}

func TestAdmits(t *testing.T) {
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	a1 := platform.Fence{Owner: "default/a", Step: 1, Until: now.Add(time.Minute)}
	a2 := platform.Fence{Owner: "default/a", Step: 2, Until: now.Add(2 * time.Minute)}
	b := platform.Fence{Owner: "other/a", Step: 5, Until: now.Add(time.Hour)}
	at := func(f platform.Fence) map[string]string { return map[string]string{AnnotationFence: encodeFence(f)} }
	for _, tc := range []struct {
		name   string
		mine   platform.Fence
		held   map[string]string
		now    time.Time
		fenced bool
		typed  bool // a *platform.FencedError
	}{
		{"no fence of mine", platform.Fence{}, at(a2), now, false, false},
		{"nothing held", a1, nil, now, false, false},
		{"same attempt", a1, at(a1), now, false, false},
		{"a later step of mine", a2, at(a1), now, false, false},
		{"an earlier step: the zombie", a1, at(a2), now, true, true},
		{"another owner's live lease", b, at(a2), now, true, true},
		{"another owner after the lease", b, at(a2), a2.Until, false, false},
		{"my own lease has ended", a2, at(a1), a2.Until, true, false},
		{"a malformed fence", a1, map[string]string{AnnotationFence: "x"}, now, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := admits("deployment ns/web", tc.mine, tc.held, tc.now)
			if (err != nil) != tc.fenced {
				t.Fatalf("admits: %v, want fenced=%v", err, tc.fenced)
			}
			if err == nil {
				return
			}
			var fe *platform.FencedError
			if errors.As(err, &fe) != tc.typed {
				t.Fatalf("%v: a *FencedError: %v, want %v", err, !tc.typed, tc.typed)
			}
			// A malformed fence is an error of its own, not a refusal.
			if wraps := tc.name != "a malformed fence"; errors.Is(err, platform.ErrFenced) != wraps {
				t.Fatalf("%v: wraps ErrFenced: %v, want %v", err, !wraps, wraps)
			}
		})
	}
}

func TestWithFenceCopies(t *testing.T) {
	snap := map[string]string{"team": "payments"}
	f := platform.Fence{Owner: "default/a", Step: 3}
	got := withFence(snap, f)
	if _, ok := snap[AnnotationFence]; ok {
		t.Fatal("withFence wrote into the map it was given")
	}
	if got["team"] != "payments" || got[AnnotationFence] != encodeFence(f) {
		t.Fatalf("withFence: %v", got)
	}
	if got := withFence(snap, platform.Fence{}); !maps.Equal(got, snap) {
		t.Fatalf("the zero fence changed %v to %v", snap, got)
	}
}

func TestKeepFence(t *testing.T) {
	held := encodeFence(platform.Fence{Owner: "default/a", Step: 7})
	old := encodeFence(platform.Fence{Owner: "default/a", Step: 2})
	for _, tc := range []struct {
		name       string
		live, want map[string]string
		out        map[string]string
	}{
		{"the live fence stays", map[string]string{AnnotationFence: held, "x": "1"}, map[string]string{"team": "p"},
			map[string]string{AnnotationFence: held, "team": "p"}},
		{"an old one is not brought back", map[string]string{AnnotationFence: held}, map[string]string{AnnotationFence: old, "team": "p"},
			map[string]string{AnnotationFence: held, "team": "p"}},
		{"none stays none", map[string]string{"x": "1"}, map[string]string{AnnotationFence: old, "team": "p"},
			map[string]string{"team": "p"}},
		{"nil want", map[string]string{AnnotationFence: held}, nil, map[string]string{AnnotationFence: held}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := maps.Clone(tc.want)
			if got := keepFence(tc.live, tc.want); !maps.Equal(got, tc.out) {
				t.Fatalf("keepFence: %v, want %v", got, tc.out)
			}
			if !maps.Equal(want, tc.want) {
				t.Fatalf("keepFence changed the map it was given: %v", tc.want)
			}
		})
	}
}

func TestSnapshotLeavesTheFenceOut(t *testing.T) {
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{
		"team": "payments", AnnotationFence: encodeFence(platform.Fence{Owner: "default/a", Step: 1}),
	}}}
	got := cleanDeployment(d)
	if !maps.Equal(got.Annotations, map[string]string{"team": "payments"}) {
		t.Fatalf("snapshot annotations %v, want the user's only", got.Annotations)
	}
	if _, ok := d.Annotations[AnnotationFence]; !ok {
		t.Fatal("cleanDeployment changed the live object")
	}
	d.Annotations = map[string]string{AnnotationFence: "x"}
	if got := cleanDeployment(d); got.Annotations != nil {
		t.Fatalf("snapshot annotations %v, want none", got.Annotations)
	}
}
