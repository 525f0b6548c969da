//go:build faults

package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/stagecraft/stagecraft/internal/itest"
)

// Kinds of fault the apiserver proxy injects.
const (
	proxyConflict = "409 Conflict (deployment write)"
	proxyThrottle = "429 TooManyRequests (Retry-After 1)"
	proxyInternal = "500 InternalError (not forwarded)"
	proxyLost     = "500 after the write was applied"
	proxyLatency  = "latency 300ms-1s"
)

// faultProxy is a plain-HTTP proxy on 127.0.0.1 in front of the real
// kube-apiserver: it forwards with the admin kubeconfig's TLS transport and
// token, and injects faults by a fixed schedule over the requests it sees
// while on. Every injected error carries a proper Kubernetes Status body.
type faultProxy struct {
	on       atomic.Bool
	mu       sync.Mutex
	requests int
	writes   int
	injected map[string]int
}

// newFaultProxy starts the proxy and returns it with a kubeconfig (in a
// temp dir) whose server is the proxy.
func newFaultProxy(t *testing.T) (*faultProxy, string) {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	require.NoError(t, err)
	rt, err := rest.TransportFor(cfg)
	require.NoError(t, err)
	target, err := url.Parse(cfg.Host)
	require.NoError(t, err)
	p := &faultProxy{injected: map[string]int{}}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport:     rt,
		FlushInterval: -1, // watches stream
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		kind, delay := p.decide(req)
		if delay > 0 {
			time.Sleep(delay)
		}
		switch kind {
		case proxyConflict:
			name := req.URL.Path[strings.LastIndex(req.URL.Path, "/")+1:]
			writeKubeStatus(w, apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "deployments"}, name,
				errors.New("the object has been modified; please apply your changes to the latest version and try again (injected)")))
		case proxyThrottle:
			w.Header().Set("Retry-After", "1")
			writeKubeStatus(w, apierrors.NewTooManyRequests("the server has received too many requests and has asked us to try again later (injected)", 1))
		case proxyInternal:
			writeKubeStatus(w, apierrors.NewInternalError(errors.New("etcdserver: leader changed (injected)")))
		case proxyLost:
			// The write reaches the apiserver; its answer is lost.
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, req)
			writeKubeStatus(w, apierrors.NewInternalError(fmt.Errorf("connection reset after the write answered %d (injected)", rec.Code)))
		default:
			rp.ServeHTTP(w, req)
		}
	}))
	t.Cleanup(srv.Close)

	path := filepath.Join(t.TempDir(), "kubeconfig")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["proxy"] = &clientcmdapi.Cluster{Server: srv.URL}
	kc.AuthInfos["proxy"] = &clientcmdapi.AuthInfo{}
	kc.Contexts["proxy"] = &clientcmdapi.Context{Cluster: "proxy", AuthInfo: "proxy"}
	kc.CurrentContext = "proxy"
	require.NoError(t, clientcmd.WriteToFile(*kc, path))
	return p, path
}

// decide is the schedule: counted over the requests seen while on, every
// third deployment update (PUT/PATCH) from the first is refused with 409
// (the next one passes) and every fifth deployment write (creates
// included) is applied with its answer lost; every 13th request is
// throttled, every 29th fails with 500, and every 4th is delayed by 300 ms
// to 1 s. (At one 500 in 11 requests a converge, which gives up its attempt
// on any error, needed up to 7 of its 10 attempts: see the report.)
func (p *faultProxy) decide(req *http.Request) (string, time.Duration) {
	if !p.on.Load() {
		return "", 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	n := p.requests
	write := (req.Method == http.MethodPut || req.Method == http.MethodPatch) &&
		strings.Contains(req.URL.Path, "/deployments/")
	create := req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/deployments")
	if write || create {
		p.writes++
	}
	var delay time.Duration
	if n%4 == 0 {
		delay = 300*time.Millisecond + time.Duration(n*173%700)*time.Millisecond
		p.injected[proxyLatency]++
	}
	kind := ""
	switch {
	case write && p.writes%3 == 1:
		kind = proxyConflict
	case (write || create) && p.writes%5 == 0:
		kind = proxyLost
	case n%13 == 0:
		kind = proxyThrottle
	case n%29 == 0:
		kind = proxyInternal
	}
	if kind != "" {
		p.injected[kind]++
	}
	return kind, delay
}

func writeKubeStatus(w http.ResponseWriter, err *apierrors.StatusError) {
	st := err.ErrStatus
	st.Kind, st.APIVersion = "Status", "v1"
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(int(st.Code))
	_ = json.NewEncoder(w).Encode(st)
}

// report says how many requests were seen and which faults were injected.
func (p *faultProxy) report() (total int, summary string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var parts []string
	for k, n := range p.injected {
		if k != proxyLatency {
			total += n
		}
		parts = append(parts, fmt.Sprintf("%s: %d", k, n))
	}
	sort.Strings(parts)
	return total, fmt.Sprintf("%d requests, %d deployment writes; %s", p.requests, p.writes, strings.Join(parts, ", "))
}

// platKubeLeftovers checks that the namespace holds exactly the Deployment
// "web" with image at 4 ready replicas, the Service "web" selecting
// app=web, and (once the pods settle) 4 pods of image, and returns how many
// objects were beyond that.
func platKubeLeftovers(t *testing.T, cs kubernetes.Interface, ns, image string) int {
	t.Helper()
	ctx := context.Background()
	deps, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	got := map[string]string{}
	for _, d := range deps.Items {
		got[d.Name] = fmt.Sprintf("%s x%d ready %d", d.Spec.Template.Spec.Containers[0].Image, *d.Spec.Replicas, d.Status.ReadyReplicas)
	}
	svcs, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
	require.NoError(t, err)
	extra := len(deps.Items) - 1 + len(svcs.Items) - 1
	require.Equal(t, map[string]string{"web": image + " x4 ready 4"}, got, "only the original Deployment, at its replicas")
	require.Len(t, svcs.Items, 1)
	require.Equal(t, map[string]string{"app": "web"}, svcs.Items[0].Spec.Selector)
	var pods []string
	itest.Eventually(t, time.Minute, "4 pods of "+image, func() bool {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		pods = nil
		for _, p := range list.Items {
			if p.DeletionTimestamp == nil {
				pods = append(pods, p.Spec.Containers[0].Image)
			}
		}
		return len(pods) == 4 && platAllEqual(pods, image)
	})
	return extra
}

func platAllEqual(vs []string, want string) bool {
	for _, v := range vs {
		if v != want {
			return false
		}
	}
	return true
}
