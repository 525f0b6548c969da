package main

import (
	"fmt"
	"io"
	"os"

	"sigs.k8s.io/yaml"

	"github.com/stagecraft/stagecraft/internal/spec"
)

// The -f input of every verb that takes one (deploy, release, validate;
// clear's spec file) is read here: once, since standard input cannot be
// read twice, and a failure to read or parse it is invalid input (exit 2).

// stdin is what "-f -" reads (tests set it).
var stdin io.Reader = os.Stdin

// readFile reads path once ("-" is standard input); a failure is invalid
// input naming what was read (a spec, a release).
func readFile(path, what string) ([]byte, error) {
	var (
		data []byte
		err  error
	)
	if path == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, &exitError{exitInvalid, fmt.Errorf("read %s: %w", what, err)}
	}
	return data, nil
}

// readParsed reads path once ("-" is standard input) and parses it, e.g.
// readParsed(file, "spec", spec.Parse); both failures are invalid input.
func readParsed[T any](path, what string, parse func([]byte) (T, error)) (T, error) {
	data, err := readFile(path, what)
	if err != nil {
		var zero T
		return zero, err
	}
	return parseInput(path, data, parse)
}

// parseInput parses data read from path; a failure is invalid input.
func parseInput[T any](path string, data []byte, parse func([]byte) (T, error)) (T, error) {
	v, err := parse(data)
	if err != nil {
		var zero T
		return zero, &exitError{exitInvalid, fmt.Errorf("%s: %w", path, err)}
	}
	return v, nil
}

// isRelease tells a release file (top-level "services") from a rollout spec.
func isRelease(data []byte) bool {
	var top map[string]any
	if yaml.Unmarshal(data, &top) != nil {
		return false
	}
	_, ok := top["services"]
	return ok
}

// readEither reads path once and parses it as a release (a top-level
// "services") or else as a rollout spec: exactly one of the results is
// set. Both failures are invalid input.
func readEither(path string) (*spec.Spec, *spec.Release, error) {
	data, err := readFile(path, "spec or release")
	if err != nil {
		return nil, nil, err
	}
	if isRelease(data) {
		r, err := parseInput(path, data, spec.ParseRelease)
		if err != nil {
			return nil, nil, err
		}
		return nil, &r, nil
	}
	s, err := parseInput(path, data, spec.Parse)
	if err != nil {
		return nil, nil, err
	}
	return &s, nil, nil
}
