// Package egress is the worker's policy for the destinations a spec names
// that are not the instances being validated: fixed-target HTTP and TCP
// checks, Prometheus servers, webhooks and Slack. It is enforced where
// connections are made: the dialer resolves a name itself, checks every
// address it would connect to, and connects to that address only, so an
// HTTP redirect (a new dial) and a name that resolves differently on the
// next lookup (DNS rebinding) meet the same check.
//
// Two modes:
//   - Open (no allow entries, the default): every address but the
//     always-denied ranges (link-local, cloud metadata, unspecified,
//     multicast). Loopback and private networks are reachable: the
//     local demo and its tests run their receivers on 127.0.0.1.
//   - Allowlist (at least one entry): only hosts named by an entry, or
//     addresses inside an allowed CIDR. Loopback, like link-local and
//     metadata, must be named by a CIDR inside its range
//     (127.0.0.1, ::1/128); 0.0.0.0/0 or a host name resolving there does
//     not unlock it.
//
// An instance address handed over by the platform ({{.Address}}) is
// allowed as such (WithInstance): it is the platform's, not the spec's.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// Guarded are the ranges an address inside of is reachable only when an
// allow entry within the same range names it, in either mode (Loopback
// only in allowlist mode).
var (
	// LinkLocal holds the link-local ranges, where cloud metadata services
	// (169.254.169.254) live.
	LinkLocal = []netip.Prefix{netip.MustParsePrefix("169.254.0.0/16"), netip.MustParsePrefix("fe80::/10")}
	// Metadata holds metadata addresses outside the link-local ranges:
	// AWS's IPv6 endpoint and Alibaba Cloud's.
	Metadata = []netip.Prefix{netip.MustParsePrefix("fd00:ec2::254/128"), netip.MustParsePrefix("100.100.100.200/32")}
	// Loopback holds the loopback ranges.
	Loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
)

// Resolver looks up a host's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Policy decides which addresses fixed targets may reach. The zero value
// (and nil) is the open mode.
type Policy struct {
	hosts []string // lower case; "*.example.com" matches subdomains
	nets  []netip.Prefix
	// Resolver resolves names; nil means net.DefaultResolver.
	Resolver Resolver
}

// Parse builds a policy from allow entries: a host name ("hooks.slack.com",
// "*.internal.example.com"), an IP address or a CIDR. No entries is the
// open mode.
func Parse(entries []string) (*Policy, error) {
	p := &Policy{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			continue
		case strings.Contains(e, "/"):
			pf, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("egress allow %q: not a CIDR: %v", e, err)
			}
			p.nets = append(p.nets, pf.Masked())
		default:
			if a, err := netip.ParseAddr(strings.Trim(e, "[]")); err == nil {
				p.nets = append(p.nets, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
				continue
			}
			h := strings.ToLower(strings.TrimSuffix(e, "."))
			name := strings.TrimPrefix(h, "*.")
			if name == "" || strings.ContainsAny(name, ":/@ *") {
				return nil, fmt.Errorf("egress allow %q: not a host name, an IP address or a CIDR", e)
			}
			p.hosts = append(p.hosts, h)
		}
	}
	return p, nil
}

// Open reports whether the policy is the open mode.
func (p *Policy) Open() bool { return p == nil || len(p.hosts)+len(p.nets) == 0 }

// String lists the allow entries, or says the mode is open.
func (p *Policy) String() string {
	if p.Open() {
		return "open (all but link-local and cloud metadata)"
	}
	var s []string
	s = append(s, p.hosts...)
	for _, n := range p.nets {
		s = append(s, n.String())
	}
	return strings.Join(s, ", ")
}

// DeniedError is a destination the policy refuses.
type DeniedError struct {
	// Host is the name dialed (or the address), Addr the address refused.
	Host   string
	Addr   netip.Addr
	Reason string
}

func (e *DeniedError) Error() string {
	if e.Host != "" && e.Host != e.Addr.String() {
		return fmt.Sprintf("egress policy: %s (%s) %s", e.Host, e.Addr, e.Reason)
	}
	return fmt.Sprintf("egress policy: %s %s", e.Addr, e.Reason)
}

func in(ranges []netip.Prefix, a netip.Addr) bool {
	for _, r := range ranges {
		if r.Contains(a) {
			return true
		}
	}
	return false
}

// explicitly reports whether an allow CIDR inside one of ranges holds a.
func (p *Policy) explicitly(ranges []netip.Prefix, a netip.Addr) bool {
	if p == nil {
		return false
	}
	for _, n := range p.nets {
		if !n.Contains(a) {
			continue
		}
		for _, r := range ranges {
			if r.Contains(n.Addr()) && n.Bits() >= r.Bits() {
				return true
			}
		}
	}
	return false
}

func (p *Policy) hostAllowed(host string) bool {
	if p == nil {
		return false
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, h := range p.hosts {
		if h == host || (strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:])) {
			return true
		}
	}
	return false
}

// Check says whether host (the name dialed, or "" when an address was
// dialed) may be reached at address a; nil means it may.
func (p *Policy) Check(host string, a netip.Addr) error {
	a = a.Unmap()
	deny := func(reason string) error {
		if host == "" {
			host = a.String()
		}
		return &DeniedError{Host: host, Addr: a, Reason: reason}
	}
	guarded := append(append([]netip.Prefix(nil), LinkLocal...), Metadata...)
	switch {
	case in(guarded, a):
		if p.explicitly(guarded, a) {
			return nil
		}
		return deny("is link-local or a cloud metadata address: denied unless --egress-allow names it (a CIDR inside its range)")
	case a.IsUnspecified() || a.IsMulticast() || !a.IsValid():
		return deny("is not a unicast address")
	case p.Open():
		return nil
	case in(Loopback, a):
		if p.explicitly(Loopback, a) {
			return nil
		}
		return deny("is loopback: not on the worker's egress allowlist (--egress-allow 127.0.0.1 allows it)")
	case in(p.nets, a) || (host != "" && p.hostAllowed(host)):
		return nil
	}
	return deny("is not on the worker's egress allowlist (--egress-allow)")
}

type instanceKey struct{}

// WithInstance returns a context whose dials to address (host:port, as the
// platform gave it) are allowed as they are: an instance being validated.
func WithInstance(ctx context.Context, address string) context.Context {
	if address == "" {
		return ctx
	}
	return context.WithValue(ctx, instanceKey{}, address)
}

func instance(ctx context.Context) string {
	s, _ := ctx.Value(instanceKey{}).(string)
	return s
}

// Dialer connects within a policy.
type Dialer struct {
	Policy *Policy
	// Timeout bounds one connection attempt; zero means none but the
	// context's.
	Timeout time.Duration
}

// DialContext resolves address's host, checks every address against the
// policy, and connects to the first allowed one that answers. A dial to the
// context's instance address (WithInstance) is not checked.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	nd := &net.Dialer{Timeout: d.Timeout}
	if inst := instance(ctx); inst != "" && inst == address {
		return nd.DialContext(ctx, network, address)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	name := ""
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		addrs = []netip.Addr{a.WithZone("")}
	} else {
		name = host
		r := d.Policy.resolver()
		ipnet := "ip"
		switch network {
		case "tcp4":
			ipnet = "ip4"
		case "tcp6":
			ipnet = "ip6"
		}
		addrs, err = r.LookupNetIP(ctx, ipnet, host)
		if err != nil {
			return nil, err
		}
	}
	// The address connected to is the one checked: Control refuses any
	// other (a resolver or a dialer that would substitute one).
	nd.Control = func(_, raddr string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(raddr)
		if err != nil {
			return fmt.Errorf("egress policy: cannot read the address %q", raddr)
		}
		return d.Policy.Check(name, ap.Addr())
	}
	var errs []error
	for _, a := range addrs {
		if err := d.Policy.Check(name, a); err != nil {
			errs = append(errs, err)
			continue
		}
		conn, err := nd.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("lookup %s: no addresses", host)
	}
	return nil, errors.Join(errs...)
}

func (p *Policy) resolver() Resolver {
	if p != nil && p.Resolver != nil {
		return p.Resolver
	}
	return net.DefaultResolver
}

// Transport returns an HTTP transport that dials through the policy, with
// no proxy (a proxy would be dialed instead of the destination) and
// without keep-alives when keepAlive is false.
func Transport(p *Policy, keepAlive bool) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&Dialer{Policy: p, Timeout: 30 * time.Second}).DialContext,
		DisableKeepAlives:   !keepAlive,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   true,
	}
}

// Denied reports whether err comes from the policy.
func Denied(err error) bool {
	var d *DeniedError
	return errors.As(err, &d)
}
