// Command demo-app is the tiny HTTP service Stagecraft's demo and tests roll
// out. GET /healthz reports its version; it can be told to start failing or
// slowing down after a number of seconds, by environment or by its build.
//
//	VERSION       reported version (set at build time by -ldflags, or env)
//	PORT          listen port (default 8080)
//	GREETING      greeting returned by /
//	FAIL_AFTER    seconds after start when /healthz starts answering 500
//	SLOW_AFTER    seconds after start when every answer is delayed by SLOW_BY
//	SLOW_BY       delay once slow (default 2s)
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

// Set by -ldflags "-X main.version=v2 -X main.failAfter=5".
var (
	version   = "dev"
	failAfter = ""
)

func main() {
	if v := os.Getenv("VERSION"); v != "" {
		version = v
	}
	if v := os.Getenv("FAIL_AFTER"); v != "" {
		failAfter = v
	}
	port := getenv("PORT", "8080")
	greeting := getenv("GREETING", "hello")
	start := time.Now()
	failAt := afterSeconds(start, failAfter)
	slowAt := afterSeconds(start, os.Getenv("SLOW_AFTER"))
	slowBy, err := time.ParseDuration(getenv("SLOW_BY", "2s"))
	if err != nil {
		log.Fatalf("SLOW_BY: %v", err)
	}

	mux := http.NewServeMux()
	slow := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if !slowAt.IsZero() && time.Now().After(slowAt) {
				time.Sleep(slowBy)
			}
			h(w, r)
		}
	}
	mux.HandleFunc("/healthz", slow(func(w http.ResponseWriter, r *http.Request) {
		status, code := "ok", http.StatusOK
		if !failAt.IsZero() && time.Now().After(failAt) {
			status, code = "failing", http.StatusInternalServerError
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(map[string]string{"status": status, "version": version})
	}))
	mux.HandleFunc("/", slow(func(w http.ResponseWriter, r *http.Request) {
		host, _ := os.Hostname()
		fmt.Fprintf(w, "%s from %s (%s)\n", greeting, version, host)
	}))

	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("demo-app %s listening on :%s", version, port)
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

func getenv(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func afterSeconds(start time.Time, s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	n, err := strconv.ParseFloat(s, 64)
	if err != nil {
		log.Fatalf("invalid seconds %q: %v", s, err)
	}
	return start.Add(time.Duration(n * float64(time.Second)))
}
