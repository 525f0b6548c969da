package kubernetes

import (
	"encoding/json"
	"errors"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/stagecraft/stagecraft/internal/platform"
)

// obj is an object with labels and annotations.
func obj(labels, annotations map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: annotations}}
}

// stamped is an object carrying f, as a stamp leaves it.
func stamped(f platform.Fence) *appsv1.Deployment {
	d := obj(nil, nil)
	withFence(d, f)
	return d
}

func TestFenceRoundTrip(t *testing.T) {
	until := time.Date(2026, 12, 3, 9, 30, 0, 123456789, time.FixedZone("CET", 3600))
	for _, f := range []platform.Fence{
		{Owner: "default/deploy:kubernetes:web", Step: 1764754200123456789, Until: until},
		{Owner: "team ns/deploy:kubernetes:web ünïcode / \\ \" long " + strings.Repeat("x", 300), Step: 1},
		{Owner: "default/a", Step: math.MaxInt64, Until: time.Date(2262, 4, 11, 0, 0, 0, 0, time.UTC)},
	} {
		d := stamped(f)
		v := d.Labels[LabelFence]
		if errs := validation.IsValidLabelValue(v); len(errs) != 0 {
			t.Fatalf("label value %q of %+v is not one: %v", v, f, errs)
		}
		got, err := fenceOf(d)
		if err != nil {
			t.Fatal(err)
		}
		if got.Owner != f.Owner || got.Step != f.Step || !got.Until.Equal(f.Until) {
			t.Fatalf("round trip of %q: %+v, want %+v", v, got, f)
		}
		if again := encodeFence(got); again != v {
			t.Fatalf("encoding is not stable: %q then %q", v, again)
		}
		if !carries(d, f) {
			t.Fatalf("%v does not carry %+v", d.ObjectMeta, f)
		}
	}
	if f, err := fenceOf(obj(map[string]string{"app": "web"}, map[string]string{"team": "payments"})); err != nil || !f.Zero() {
		t.Fatalf("no fence: %+v %v, want the zero fence", f, err)
	}
	for _, v := range []string{"x", "1", "1.x", "x.1", "1.2.3", ""} {
		if _, err := fenceOf(obj(map[string]string{LabelFence: v}, nil)); err == nil {
			t.Fatalf("a malformed fence %q was accepted", v)
		}
	}
}

// TestFenceOfAnEarlierVersion: an object stamped by an earlier version
// holds the whole fence in an annotation; it counts until the next stamp,
// which replaces it by the label (and the label wins over it meanwhile).
func TestFenceOfAnEarlierVersion(t *testing.T) {
	old := platform.Fence{Owner: "default/a", Step: 5, Until: time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)}
	b, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	d := obj(map[string]string{"app": "web"}, map[string]string{"team": "payments", AnnotationFence: string(b)})
	got, err := fenceOf(d)
	if err != nil || got.Owner != old.Owner || got.Step != old.Step || !got.Until.Equal(old.Until) {
		t.Fatalf("fence of an earlier version: %+v %v, want %+v", got, err, old)
	}
	if _, err := fenceOf(obj(nil, map[string]string{AnnotationFence: "{not json"})); err == nil {
		t.Fatal("a malformed fence was accepted")
	}
	mine := platform.Fence{Owner: "default/a", Step: 6}
	if carries(d, mine) {
		t.Fatal("an object with no label carries a fence")
	}
	withFence(d, mine)
	if _, ok := d.Annotations[AnnotationFence]; ok || d.Annotations["team"] != "payments" || d.Labels["app"] != "web" {
		t.Fatalf("after a stamp: %v", d.ObjectMeta)
	}
	if got, err := fenceOf(d); err != nil || got.Step != 6 || !carries(d, mine) {
		t.Fatalf("after a stamp: %+v %v", got, err)
	}
	d.Annotations[AnnotationFence] = string(b)
	if got, err := fenceOf(d); err != nil || got.Step != 6 {
		t.Fatalf("label and annotation: %+v %v, want the label's", got, err)
	}
	if carries(d, mine) {
		t.Fatal("an object with an earlier version's annotation left carries the fence as a stamp leaves it")
	}
}

func TestAdmits(t *testing.T) {
	now := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	a1 := platform.Fence{Owner: "default/a", Step: 1, Until: now.Add(time.Minute)}
	a2 := platform.Fence{Owner: "default/a", Step: 2, Until: now.Add(2 * time.Minute)}
	b := platform.Fence{Owner: "other/a", Step: 5, Until: now.Add(time.Hour)}
	for _, tc := range []struct {
		name   string
		mine   platform.Fence
		held   *appsv1.Deployment
		now    time.Time
		fenced bool
		typed  bool // a *platform.FencedError
	}{
		{"no fence of mine", platform.Fence{}, stamped(a2), now, false, false},
		{"nothing held", a1, obj(nil, nil), now, false, false},
		{"same attempt", a1, stamped(a1), now, false, false},
		{"a later step of mine", a2, stamped(a1), now, false, false},
		{"an earlier step: the zombie", a1, stamped(a2), now, true, true},
		{"another owner's live lease", b, stamped(a2), now, true, true},
		{"another owner after the lease", b, stamped(a2), a2.Until, false, false},
		{"my own lease has ended", a2, stamped(a1), a2.Until, true, false},
		{"a malformed fence", a1, obj(map[string]string{LabelFence: "x"}, nil), now, true, false},
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
	labels, ann := map[string]string{"app": "web"}, map[string]string{"team": "payments"}
	d := obj(labels, ann)
	f := platform.Fence{Owner: "default/a", Step: 3}
	withFence(d, f)
	if len(labels) != 1 || len(ann) != 1 {
		t.Fatalf("withFence wrote into the maps it was given: %v %v", labels, ann)
	}
	if d.Labels["app"] != "web" || d.Annotations["team"] != "payments" || !carries(d, f) {
		t.Fatalf("withFence: %v", d.ObjectMeta)
	}
	d = obj(labels, ann)
	if withFence(d, platform.Fence{}); !maps.Equal(d.Labels, labels) || !maps.Equal(d.Annotations, ann) {
		t.Fatalf("the zero fence changed %v", d.ObjectMeta)
	}
	// A later step of the same owner changes the label alone: on a
	// Deployment, an annotation change moves its generation.
	d = stamped(f)
	before := d.Annotations
	withFence(d, platform.Fence{Owner: "default/a", Step: 4})
	if !maps.Equal(before, d.Annotations) || d.Labels[LabelFence] != "4.0" {
		t.Fatalf("a later step: %v", d.ObjectMeta)
	}
}

func TestKeepFence(t *testing.T) {
	held := stamped(platform.Fence{Owner: "default/a", Step: 7})
	old := stamped(platform.Fence{Owner: "default/b", Step: 2})
	// plus is m with the labels (or annotations) of d.
	plus := func(m, d map[string]string) map[string]string {
		out := maps.Clone(m)
		if out == nil {
			out = map[string]string{}
		}
		maps.Copy(out, d)
		return out
	}
	user := map[string]string{"team": "p"}
	for _, tc := range []struct {
		name                    string
		live                    *appsv1.Deployment
		labels, ann, outL, outA map[string]string
	}{
		{"the live fence stays", held, user, user, plus(user, held.Labels), plus(user, held.Annotations)},
		{"an old one is not brought back", held, plus(user, old.Labels), plus(user, old.Annotations), plus(user, held.Labels), plus(user, held.Annotations)},
		{"none stays none", obj(map[string]string{"x": "1"}, nil), plus(user, old.Labels), plus(user, old.Annotations), user, user},
		{"nil want", held, nil, nil, held.Labels, held.Annotations},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantL, wantA := maps.Clone(tc.labels), maps.Clone(tc.ann)
			gotL, gotA := keepFence(tc.live, tc.labels, tc.ann)
			if !maps.Equal(gotL, tc.outL) || !maps.Equal(gotA, tc.outA) {
				t.Fatalf("keepFence: %v %v, want %v %v", gotL, gotA, tc.outL, tc.outA)
			}
			if !maps.Equal(wantL, tc.labels) || !maps.Equal(wantA, tc.ann) {
				t.Fatalf("keepFence changed the maps it was given: %v %v", tc.labels, tc.ann)
			}
		})
	}
}

func TestSnapshotLeavesTheFenceOut(t *testing.T) {
	d := stamped(platform.Fence{Owner: "default/a", Step: 1})
	d.Name = "web"
	d.Labels["app"] = "web"
	d.Annotations["team"] = "payments"
	d.Annotations[AnnotationFence] = "{}"
	got := cleanDeployment(d)
	if !maps.Equal(got.Annotations, map[string]string{"team": "payments"}) || !maps.Equal(got.Labels, map[string]string{"app": "web"}) {
		t.Fatalf("snapshot labels %v, annotations %v, want the user's only", got.Labels, got.Annotations)
	}
	if _, ok := d.Labels[LabelFence]; !ok {
		t.Fatal("cleanDeployment changed the live object")
	}
	d = stamped(platform.Fence{Owner: "default/a", Step: 1})
	if got := cleanDeployment(d); got.Annotations != nil || got.Labels != nil {
		t.Fatalf("snapshot labels %v, annotations %v, want none", got.Labels, got.Annotations)
	}
}
