// Command pause is the real node's pod sandbox ("pause") container: the
// process that holds a pod's namespaces. It sleeps until SIGTERM or SIGINT
// (exit 0) and, as PID 1 of a pod that shares its process namespace, reaps
// the zombies handed to it. Built static (CGO_ENABLED=0) into a FROM scratch
// image by scripts/kube/node.sh, so no sandbox image is ever pulled.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
