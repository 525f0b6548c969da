package spec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

// The fuzz targets below hold the spec package to what callers rely on:
// nothing panics, anything invalid is refused with a path to the bad field
// (before any platform is called), and anything valid is a fixed point of
// its defaults, validates the same way every time, survives a JSON round
// trip and keeps its request ID. Seeds: the example specs in
// deployments/examples (added by exampleSeeds) and the edge cases and
// past failures under testdata/fuzz/<Target>. Run one with
//
//	go test -run '^$' -fuzz '^FuzzParseSpec$' -fuzztime 30s ./internal/spec

// exampleSeeds adds every example spec and release as a seed.
func exampleSeeds(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("..", "..", "deployments", "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("want the example specs as seeds, found %d (%v)", len(files), err)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParseSpec parses any bytes as a spec, YAML or JSON.
func FuzzParseSpec(f *testing.F) {
	exampleSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(data)
		wantJSONReading(t, data, s, err)

		// Parse is unmarshal, defaults, Validate: the same problems, in
		// the same order, whichever way the spec is checked.
		var raw Spec
		if uerr := yaml.UnmarshalStrict(yamlReadable(data), &raw); uerr != nil {
			wantParseError(t, err, "spec")
			return
		}
		defaulted := raw.WithDefaults()
		if verr := defaulted.Validate(); !reflect.DeepEqual(verr, err) {
			t.Fatalf("Parse and Validate disagree:\nParse:    %v\nValidate: %v", err, verr)
		}
		checkSpec(t, defaulted, err)
		if err != nil {
			return
		}
		if !reflect.DeepEqual(s, defaulted) {
			t.Fatalf("Parse returned %+v, not the spec with defaults %+v", s, defaulted)
		}
		if raw.RequestID() != s.RequestID() {
			t.Fatalf("request ID %s as written, %s with defaults", raw.RequestID(), s.RequestID())
		}
	})
}

// wantJSONReading checks that Parse reads JSON input as a JSON decoder
// does: a spec the decoder reads as valid, Parse returns (unless it
// repeats a key, which Parse refuses and the decoder lets the last win).
func wantJSONReading(t *testing.T, data []byte, s Spec, err error) {
	t.Helper()
	if !json.Valid(data) {
		return
	}
	var j Spec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if dec.Decode(&j) != nil {
		return
	}
	j = j.WithDefaults()
	switch {
	case j.Validate() != nil:
	case err != nil && strings.Contains(err.Error(), "already set in map"):
	case err != nil:
		t.Fatalf("Parse refuses a JSON spec a JSON decoder reads as valid: %v", err)
	default:
		wantSameValue(t, j, s)
	}
}

// FuzzParseRelease parses any bytes as a release, YAML or JSON; a
// release's services' specs are validated with it.
func FuzzParseRelease(f *testing.F) {
	exampleSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRelease(data)

		var raw Release
		if uerr := yaml.UnmarshalStrict(yamlReadable(data), &raw); uerr != nil {
			wantParseError(t, err, "release")
			return
		}
		defaulted := raw.WithDefaults()
		verr := defaulted.Validate()
		if !reflect.DeepEqual(verr, err) {
			t.Fatalf("ParseRelease and Validate disagree:\nParseRelease: %v\nValidate:     %v", err, verr)
		}
		wantFieldErrors(t, defaulted, err)
		if again := defaulted.Validate(); !reflect.DeepEqual(again, verr) {
			t.Fatalf("Validate is not deterministic:\nfirst:  %v\nsecond: %v", verr, again)
		}
		if err != nil {
			return
		}
		if !reflect.DeepEqual(r, defaulted) {
			t.Fatalf("ParseRelease returned %+v, not the release with defaults %+v", r, defaulted)
		}
		if twice := r.WithDefaults(); !reflect.DeepEqual(twice, r) {
			t.Fatalf("WithDefaults is not idempotent:\nonce:  %+v\ntwice: %+v", r, twice)
		}
		id := r.RequestID()
		if raw.RequestID() != id || r.RequestID() != id {
			t.Fatalf("request ID %s as written, %s with defaults, %s again", raw.RequestID(), id, r.RequestID())
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("marshal a valid release: %v", err)
		}
		back, err := ParseRelease(b)
		if err != nil {
			t.Fatalf("a valid release does not parse back from its JSON %s: %v", b, err)
		}
		if back.RequestID() != id {
			t.Fatalf("request ID %s before a JSON round trip, %s after", id, back.RequestID())
		}
		wantSameValue(t, r, back)
		other, err := ParseRelease(escapedJSON(b))
		if err != nil {
			t.Fatalf("a valid release does not parse back from its JSON spelled with escapes %s: %v", escapedJSON(b), err)
		}
		wantSameValue(t, r, other)
	})
}

// FuzzValidate builds specs field by field, reaching values YAML rarely
// spells (any int, any float, any byte), and holds Validate, WithDefaults
// and RequestID to the properties of checkSpec, on the spec as built and
// with defaults applied.
func FuzzValidate(f *testing.F) {
	// service, image, platform, replicas, port, key, value, strategy,
	// steps, bake, batch, kind, name, target, status, interval,
	// percentile, threshold, approve, notify.
	f.Add("hello", "stagecraft-demo:v2", uint8(1), 4, 8080, "GREETING", "hello", "canary",
		[]byte{25, 50, 100}, int64(20*time.Second), 0, uint8(1), "healthz", "http://{{.Address}}/healthz", "200",
		int64(2*time.Second), 95.0, 0.05, []byte{100}, "https://hooks.example.com/x")
	f.Add("payment", "registry.example.com/team/payment:1.4.2", uint8(2), 0, 0, "X-Probe", "stagecraft", "blue-green",
		[]byte{}, int64(0), 0, uint8(4), "errors", "http://127.0.0.1:9090", "<",
		int64(0), 0.0, 0.01, []byte{0, 100}, "")
	f.Add("web", "web:v3", uint8(1|4), 6, 80, "bad key", "x\r\ny", "rolling",
		[]byte{}, int64(0), 2, uint8(2), "port", "{{.Address}}", "2xx",
		int64(0), 0.0, 0.0, []byte{}, "http://h")
	f.Add("db", "db@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", uint8(3), -1, 70000, "", "", "recreate",
		[]byte{200, 0}, int64(-1), -5, uint8(3), "", "bin/sh", "99",
		int64(-1), -1.0, math.Inf(1), []byte{255, 255}, "not a url")
	f.Fuzz(func(t *testing.T, service, image string, platform uint8, replicas, port int, key, value, strategy string,
		steps []byte, bake int64, batch int, kind uint8, name, target, status string, interval int64,
		percentile, threshold float64, approve []byte, notify string) {
		build := func() Spec {
			return fuzzSpec(service, image, platform, replicas, port, key, value, strategy, steps, bake, batch,
				kind, name, target, status, interval, percentile, threshold, approve, notify)
		}
		s := build()
		err := s.Validate()
		checkSpec(t, s, err)
		d := s.WithDefaults()
		derr := d.Validate()
		checkSpec(t, d, derr)
		if err == nil && derr != nil {
			t.Fatalf("a valid spec is invalid once defaults are applied: %v", derr)
		}
		if s.RequestID() != d.RequestID() {
			t.Fatalf("request ID %s as built, %s with defaults", s.RequestID(), d.RequestID())
		}
		// Neither Validate nor WithDefaults may write through the spec's
		// pointers, maps or slices into the caller's value.
		if !reflect.DeepEqual(s, build()) && !hasNaN(s) {
			t.Fatalf("Validate or WithDefaults changed the spec they were given")
		}
	})
}

// FuzzDuration holds Duration's JSON forms to their meaning: a number of
// seconds keeps its sign and size (or is refused), a string is a Go
// duration, and what MarshalJSON writes reads back the same.
func FuzzDuration(f *testing.F) {
	f.Add(int64(20*time.Second), 20.0, "20s")
	f.Add(int64(math.MaxInt64), 9223372036.0, "2562047h47m16.854775807s")
	f.Add(int64(math.MinInt64), 1e10, "-1.5h")
	f.Add(int64(0), -1e-10, "0")
	f.Fuzz(func(t *testing.T, n int64, secs float64, s string) {
		var d Duration
		b, err := Duration(n).MarshalJSON()
		if err != nil {
			t.Fatalf("marshal %d: %v", n, err)
		}
		if err := d.UnmarshalJSON(b); err != nil || int64(d) != n {
			t.Fatalf("Duration(%d) wrote %s, which reads back as %d (%v)", n, b, int64(d), err)
		}

		num := strconv.FormatFloat(secs, 'g', -1, 64)
		if d = 0; d.UnmarshalJSON([]byte(num)) == nil {
			want := secs * float64(time.Second)
			got := float64(d)
			if math.Abs(got-want) > 1+math.Abs(want)*1e-15 || (got < 0) != (want < 0) && got != 0 {
				t.Fatalf("%s seconds read as %v (%d ns), want about %g ns", num, d.D(), int64(d), want)
			}
		}

		q, _ := json.Marshal(s)
		_ = json.Unmarshal(q, &s) // s as JSON carries it: valid UTF-8
		want, perr := time.ParseDuration(s)
		d = 0
		err = d.UnmarshalJSON(q)
		switch {
		case (err == nil) != (perr == nil):
			t.Fatalf("%s: UnmarshalJSON says %v, time.ParseDuration %v", q, err, perr)
		case err == nil && d.D() != want:
			t.Fatalf("%s read as %v, want %v", q, d.D(), want)
		}
	})
}

// fuzzSpec builds a spec from fuzzed parts. platform's low two bits choose
// none, Docker, Kubernetes or both; bit 2 adds approval gates, bit 3
// notifications, bit 4 a dependency check, bit 5 a baseline. kind picks
// the check's kind (0 none, then http, tcp, command, prometheus; 5 all).
// Free-text fields are made valid UTF-8, as every parsed spec's are; the
// named ones (service, image, Kubernetes names, check names) are not, so
// their checks must refuse what JSON could not carry.
func fuzzSpec(service, image string, platform uint8, replicas, port int, key, value, strategy string,
	steps []byte, bake int64, batch int, kind uint8, name, target, status string, interval int64,
	percentile, threshold float64, approve []byte, notify string) Spec {
	text := func(s string) string { return strings.ToValidUTF8(s, "?") }
	s := Spec{
		Service: service,
		Image:   image,
		Timeout: Duration(bake * 7),
		Strategy: Strategy{
			Type:      strategy,
			Bake:      Duration(bake),
			BatchSize: batch,
		},
		Health: Health{
			Interval:         Duration(interval),
			FailureThreshold: replicas % 7,
			MinSamples:       port % 5,
		},
	}
	if len(steps) > 0 {
		s.Strategy.Steps = make([]int, len(steps))
		for i, b := range steps {
			s.Strategy.Steps[i] = int(int8(b)) + 28 // -100..155: mostly sane, some not
		}
	}
	if strategy == BlueGreen {
		s.Strategy.BakeBeforeSwitch = Duration(bake)
		s.Strategy.BakeAfterSwitch = Duration(interval)
		s.Strategy.KeepBlueFor = Duration(bake / 3)
	}
	if platform&1 != 0 {
		s.Platform.Docker = &Docker{
			Replicas: replicas,
			Port:     port,
			Env:      map[string]string{key: text(value), text(value): text(key)},
			Labels:   map[string]string{key: text(value)},
			Command:  []string{text(target)},
			Network:  name,
		}
		if kind&8 != 0 {
			s.Platform.Docker.Resources = &Resources{CPU: status, Memory: value}
		}
	}
	if platform&2 != 0 {
		s.Platform.Kubernetes = &Kubernetes{
			Namespace:        key,
			Deployment:       service,
			Service:          name,
			Replicas:         replicas,
			ConfigMap:        value,
			ProgressDeadline: Duration(-bake),
		}
	}
	check := Check{Name: name}
	switch kind % 6 {
	case 1:
		check.HTTP = &HTTPCheck{URL: target, ExpectStatus: StatusSet{status},
			Headers:   PlainValues(map[string]string{key: text(value), value: text(key)}),
			BodyRegex: text(value), JSON: []JSONMatch{{Path: text(key), Equals: text(value)}}}
	case 2:
		check.TCP = &TCPCheck{Address: target}
	case 3:
		check.Command = &CommandCheck{Argv: []string{target, text(value)}, ExpectExit: port}
	case 4:
		check.Prometheus = &PrometheusCheck{URL: target, Query: text(value), Op: status, Threshold: threshold}
	case 5:
		check.HTTP = &HTTPCheck{URL: target}
		check.TCP = &TCPCheck{Address: target}
	}
	if kind%6 != 0 || kind&16 != 0 {
		s.Health.Checks = []Check{check}
	}
	if platform&16 != 0 {
		dep := check
		dep.Name = text(key)
		s.Health.Dependencies = []Check{dep}
	}
	if platform&32 != 0 {
		s.Health.Baselines = []Baseline{{Check: name, Percentile: percentile, Max: Duration(interval), Window: batch}}
	}
	if platform&4 != 0 {
		a := &Approval{Timeout: Duration(bake), OnTimeout: status}
		for _, b := range approve {
			a.Before = append(a.Before, int(b)-20)
		}
		s.Approval = a
	}
	if platform&8 != 0 {
		s.Notifications = []Notification{
			{Name: text(name), Webhook: text(notify), Headers: PlainValues(map[string]string{key: text(value), text(value): "x"}),
				Events: strings.Split(text(status), ",")},
			{Slack: text(target), Events: []string{text(key)}},
		}
	}
	if platform&64 != 0 {
		s.ExecutionID = text(strings.Repeat(key, 1+len(value)%64))
		s.Environment = text(value)
	}
	return s
}

// checkSpec holds err, what Validate said of s, to the properties every
// verdict has, and a valid s to those of a valid
func checkSpec(t *testing.T, s Spec, err error) {
	t.Helper()
	wantFieldErrors(t, s, err)
	if again := s.Validate(); !reflect.DeepEqual(again, err) {
		t.Fatalf("Validate is not deterministic:\nfirst:  %v\nsecond: %v", err, again)
	}
	id := s.RequestID()
	if id == "" || s.RequestID() != id {
		t.Fatalf("request ID %q is not stable (%q)", id, s.RequestID())
	}
	if s.ExecutionID != "" && id != s.ExecutionID {
		t.Fatalf("request ID %q, want the execution ID %q", id, s.ExecutionID)
	}
	if err != nil {
		return
	}
	d := s.WithDefaults()
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatalf("marshal a valid spec: %v", err)
	}
	if twice := d.WithDefaults(); !reflect.DeepEqual(twice, d) {
		t.Fatalf("WithDefaults is not idempotent:\nonce:  %+v\ntwice: %+v", d, twice)
	}
	if d.RequestID() != id {
		t.Fatalf("request ID %s, %s with defaults applied", id, d.RequestID())
	}
	back, err := Parse(b)
	if err != nil {
		t.Fatalf("a valid spec does not parse back from its JSON %s: %v", b, err)
	}
	if back.RequestID() != id {
		t.Fatalf("request ID %s before a JSON round trip, %s after", id, back.RequestID())
	}
	wantSameValue(t, d, back)
	other, err := Parse(escapedJSON(b))
	if err != nil {
		t.Fatalf("a valid spec does not parse back from its JSON spelled with escapes %s: %v", escapedJSON(b), err)
	}
	wantSameValue(t, d, other)
}

// escapedJSON spells b, JSON as json.Marshal writes it (where only strings
// hold '/' or non-ASCII characters), as other encoders may: every '/' as
// \/ (PHP) and every non-ASCII character as a \u escape, beyond the BMP a
// surrogate pair (Python).
func escapedJSON(b []byte) []byte {
	var out []byte
	for _, r := range string(b) {
		switch {
		case r == '/':
			out = append(out, `\/`...)
		case r < utf8.RuneSelf:
			out = append(out, byte(r))
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			out = fmt.Appendf(out, `\u%04x\u%04x`, r1, r2)
		default:
			out = fmt.Appendf(out, `\u%04x`, r)
		}
	}
	return out
}

// wantParseError checks the error for input that is not a spec (or
// release) at all: one problem, on the whole document.
func wantParseError(t *testing.T, err error, root string) {
	t.Helper()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("unparsable input: got %T %v, want a *ValidationError", err, err)
	}
	if len(ve.Problems) != 1 || ve.Problems[0].Field != root || ve.Problems[0].Message == "" {
		t.Fatalf("unparsable input: got problems %+v, want one on %q", ve.Problems, root)
	}
}

// wantFieldErrors checks that err is nil or a *ValidationError whose
// every problem has a message and names a field that v (the value checked)
// has: struct fields by their JSON names, list elements by an index in
// range, map entries by a key present.
func wantFieldErrors(t *testing.T, v any, err error) {
	t.Helper()
	if err == nil {
		return
	}
	ve, ok := err.(*ValidationError)
	if !ok {
		t.Fatalf("got %T %v, want a *ValidationError", err, err)
	}
	if len(ve.Problems) == 0 {
		t.Fatal("a *ValidationError without problems")
	}
	for _, p := range ve.Problems {
		if p.Message == "" {
			t.Errorf("problem on %q has no message", p.Field)
		}
		if whole(v, p.Field) {
			continue // the whole value: its encoded size
		}
		if p.Field == "" || !hasPath(reflect.ValueOf(v), "."+p.Field) {
			t.Errorf("problem %q: %q is not a field of the %T", p.Message, p.Field, v)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// whole reports whether field names the whole of v, a Spec ("spec") or a
// Release ("release"), as the bound on its encoded size does.
func whole(v any, field string) bool {
	switch v.(type) {
	case Spec, *Spec:
		return field == "spec"
	case Release, *Release:
		return field == "release"
	}
	return false
}

// hasPath reports whether v has the field at path, a sequence of ".name"
// (a struct field's JSON name, or a map key, which may hold any character)
// and "[i]" (a list index) steps.
func hasPath(v reflect.Value, path string) bool {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			if v.Kind() == reflect.Interface {
				return true // any value: the path goes into data
			}
			v = reflect.Zero(v.Type().Elem())
			continue
		}
		v = v.Elem()
	}
	if path == "" {
		return true
	}
	switch v.Kind() {
	case reflect.Struct:
		if path[0] != '.' {
			return false
		}
		name, _, _ := strings.Cut(path[1:], ".")
		name, _, _ = strings.Cut(name, "[")
		f, ok := jsonField(v, name)
		return ok && hasPath(f, path[1+len(name):])
	case reflect.Map:
		if path[0] != '.' {
			return false
		}
		// The key ends at some later '.' or '[', or at the end.
		for i := len(path); i > 0; i-- {
			if i < len(path) && path[i] != '.' && path[i] != '[' {
				continue
			}
			e := v.MapIndex(reflect.ValueOf(path[1:i]).Convert(v.Type().Key()))
			if e.IsValid() && hasPath(e, path[i:]) {
				return true
			}
		}
		return false
	case reflect.Slice, reflect.Array:
		idx, rest, ok := strings.Cut(strings.TrimPrefix(path, "["), "]")
		if !ok || path[0] != '[' {
			return false
		}
		i, err := strconv.Atoi(idx)
		return err == nil && i >= 0 && i < v.Len() && idx == strconv.Itoa(i) && hasPath(v.Index(i), rest)
	}
	return false
}

// jsonField finds the struct field (or embedded struct's field) whose JSON
// name is name.
func jsonField(v reflect.Value, name string) (reflect.Value, bool) {
	for i := range v.NumField() {
		sf := v.Type().Field(i)
		tag, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if sf.Anonymous && tag == "" {
			if f, ok := jsonField(v.Field(i), name); ok {
				return f, true
			}
			continue
		}
		if tag == name && name != "" && name != "-" {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// wantSameValue fails unless got equals want, counting an empty list or
// map the same as none: JSON writes both alike.
func wantSameValue(t *testing.T, want, got any) {
	t.Helper()
	w, g := reflect.New(reflect.TypeOf(want)), reflect.New(reflect.TypeOf(got))
	w.Elem().Set(reflect.ValueOf(want))
	g.Elem().Set(reflect.ValueOf(got))
	emptyAsNil(w)
	emptyAsNil(g)
	if !reflect.DeepEqual(w.Interface(), g.Interface()) {
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(got)
		t.Fatalf("a JSON round trip changed the value:\nbefore: %+v\nafter:  %+v\nbefore: %s\nafter:  %s", want, got, wj, gj)
	}
}

// emptyAsNil sets every empty slice and map reachable from v to nil. It
// copies what it changes behind pointers, so the caller's values keep
// theirs.
func emptyAsNil(v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		c := reflect.New(v.Type().Elem())
		c.Elem().Set(v.Elem())
		emptyAsNil(c.Elem())
		if v.CanSet() {
			v.Set(c)
		} else {
			v.Elem().Set(c.Elem())
		}
	case reflect.Interface:
		if v.IsNil() || !v.CanSet() {
			return
		}
		c := reflect.New(v.Elem().Type()).Elem()
		c.Set(v.Elem())
		emptyAsNil(c)
		v.Set(c)
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Field(i).CanSet() {
				emptyAsNil(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		reflect.Copy(c, v)
		for i := range c.Len() {
			emptyAsNil(c.Index(i))
		}
		v.Set(c)
	case reflect.Map:
		if v.Len() == 0 {
			v.SetZero()
			return
		}
		c := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			e := reflect.New(v.Type().Elem()).Elem()
			e.Set(it.Value())
			emptyAsNil(e)
			c.SetMapIndex(it.Key(), e)
		}
		v.Set(c)
	}
}

// hasNaN reports whether s holds a NaN, which no DeepEqual finds equal to
// itself.
func hasNaN(s Spec) bool {
	for _, c := range s.Health.Checks {
		if c.Prometheus != nil && math.IsNaN(c.Prometheus.Threshold) {
			return true
		}
	}
	for _, c := range s.Health.Dependencies {
		if c.Prometheus != nil && math.IsNaN(c.Prometheus.Threshold) {
			return true
		}
	}
	for _, b := range s.Health.Baselines {
		if math.IsNaN(b.Percentile) {
			return true
		}
	}
	return false
}
