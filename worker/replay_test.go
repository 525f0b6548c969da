package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// replay --file passes the committed histories and fails one whose
// commands this build would not issue (as a change to workflow logic left
// outside workflow.GetVersion would make it).
func TestReplayFiles(t *testing.T) {
	good := filepath.Join("..", "workflows", "testdata", "histories", "canary-succeeded.json")
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// The first Converge the history scheduled becomes an activity this
	// code never schedules there.
	re := regexp.MustCompile(`("activityType":\s*\{\s*"name":\s*)"Converge"`)
	loc := re.FindIndex(raw)
	if loc == nil {
		t.Fatal("no Converge activity in " + good)
	}
	bad := append(append(bytes.Clone(raw[:loc[0]]), re.ReplaceAll(raw[loc[0]:loc[1]], []byte(`${1}"Deploy"`))...), raw[loc[1]:]...)
	badFile := filepath.Join(t.TempDir(), "changed.json")
	if err := os.WriteFile(badFile, bad, 0o644); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (string, error) {
		cmd := replayCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&out)
		cmd.SetArgs(args)
		err := cmd.Execute()
		return out.String(), err
	}
	out, err := run("--file", good)
	if err != nil || !strings.Contains(out, "1 ok, 0 failed") {
		t.Fatalf("good history: %v\n%s", err, out)
	}
	out, err = run("--file", good, "--file", badFile)
	if err == nil || !strings.Contains(out, "FAIL "+badFile) || !strings.Contains(out, "1 ok, 1 failed") ||
		!strings.Contains(err.Error(), "do not roll it out") {
		t.Fatalf("changed history: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
