// Command exiter is a process that starts well and exits a moment later, for
// the integration tests of the Docker platform's stay-up check: it prints a
// line, sleeps EXIT_AFTER (a Go duration) and exits with EXIT_CODE. With
// IGNORE_TERM set it ignores SIGTERM, as a process that will not stop when
// asked does (only a SIGKILL ends it).
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	if os.Getenv("IGNORE_TERM") != "" {
		signal.Ignore(syscall.SIGTERM)
	}
	after, err := time.ParseDuration(os.Getenv("EXIT_AFTER"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "EXIT_AFTER:", err)
		os.Exit(2)
	}
	code, err := strconv.Atoi(os.Getenv("EXIT_CODE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "EXIT_CODE:", err)
		os.Exit(2)
	}
	fmt.Printf("exiter: up, exiting with code %d in %v\n", code, after)
	time.Sleep(after)
	os.Exit(code)
}
