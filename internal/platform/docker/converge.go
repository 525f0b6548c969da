package docker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
	"go.uber.org/zap"

	"github.com/stagecraft/stagecraft/internal/failpoint"
	"github.com/stagecraft/stagecraft/internal/plan"
	"github.com/stagecraft/stagecraft/internal/platform"
	"github.com/stagecraft/stagecraft/internal/spec"
)

// Timings of a converge. They bound waits on the engine, not the work.
const (
	stopTimeoutSeconds = 5
	runningTimeout     = 60 * time.Second
	pollInterval       = 200 * time.Millisecond
)

// want is one container the desired state calls for.
type want struct {
	name  string
	isNew bool
	slot  int                // new instances
	inst  *platform.Instance // old instances: their snapshot record
}

// convergence carries one Converge call's inputs and what it has done so far.
type convergence struct {
	p       *Platform
	log     *zap.Logger
	spec    spec.Spec
	docker  spec.Docker
	rollout string
	traffic plan.Traffic
	limits  container.Resources // the new instances' CPU and memory limits
	res     platform.ConvergeResult
	started map[string]bool // containers this call created or started
	// startedAt is when each start request returned; watch follows the
	// engine's events from before the first (stayUp).
	startedAt map[string]time.Time
	watch     *upWatch
	// secrets are the spec's secretEnv values, resolved when a new
	// instance is to be created; oldSecrets a snapshot instance's, by
	// container, when it is to be recreated. values lists them all, to cut
	// out of errors.
	secrets    map[string]string
	oldSecrets map[string]map[string]string
	values     []string
	// oldImages is what each snapshot instance to be recreated is created
	// from, by container: see recreateImage.
	oldImages map[string]string
	// fence holds the call to its attempt's place in the service's order
	// of writes: every destructive call checks it first (guard).
	fence *fencer
	// defer: the new instances this call starts are not held for their
	// stay-up window here; the stage's watch (StayedUp) and the next
	// converge check it (uptime.go).
	deferUp bool
	// mu guards what the parallel creates, starts and removals record:
	// res, started, startedAt and watch.
	mu sync.Mutex
}

// Converge brings the service to req.Desired: this rollout's new instances
// 0..New-1, the snapshot's instances 0..Old-1 (recreated exactly if gone),
// nothing else labelled for the service, and the service alias on exactly
// the instances that serve traffic. It looks before it creates, so a rerun
// after a crash or a retry finds its work done and changes nothing more.
func (p *Platform) Converge(ctx context.Context, req platform.ConvergeRequest) (platform.ConvergeResult, error) {
	s := req.Spec
	if s.Platform.Docker == nil {
		return platform.ConvergeResult{}, fmt.Errorf("converge %q: spec has no docker platform", s.Service)
	}
	if err := req.Validate(); err != nil {
		return platform.ConvergeResult{}, err
	}
	d := req.Desired
	nanoCPUs, memory, err := s.Platform.Docker.Resources.Limits()
	if err != nil {
		return platform.ConvergeResult{}, fmt.Errorf("converge %q: platform.docker.resources: %w", s.Service, err)
	}
	c := &convergence{
		p:         p,
		log:       p.log.With(zap.String("service", s.Service), zap.String("rollout", req.Rollout)),
		spec:      s,
		docker:    *s.Platform.Docker,
		rollout:   req.Rollout,
		traffic:   cmp.Or(d.Traffic, plan.TrafficShared),
		limits:    container.Resources{NanoCPUs: nanoCPUs, Memory: memory},
		started:   map[string]bool{},
		startedAt: map[string]time.Time{},
		deferUp:   len(s.Health.Checks) > 0,
	}
	defer func() {
		if c.watch != nil {
			c.watch.close()
		}
	}()
	c.fence = &fencer{p: p, log: c.log, service: s.Service, target: s.TargetKey(), mine: req.Fence}
	// Claimed before the target is read: from here on every older attempt
	// of this rollout (a zombie whose attempt timed out) and every other
	// rollout whose lease has not ended is refused at its next change.
	if err := c.fence.claim(ctx); err != nil {
		return c.res, err
	}
	if err := c.run(ctx, req.Snapshot, d); err != nil {
		// An engine's error may quote a container's config back.
		return c.res, redact(err, c.values)
	}
	return c.res, nil
}

func (c *convergence) run(ctx context.Context, snap platform.Snapshot, d plan.Desired) error {
	svc := c.spec.Service
	// What is wanted, by name.
	var wants []want
	for i := range d.New {
		wants = append(wants, want{name: instanceName(svc, c.rollout, i), isNew: true, slot: i})
	}
	snapIndex := map[string]int{}
	for i := range snap.Instances {
		snapIndex[snap.Instances[i].Name] = i
		if i < d.Old {
			wants = append(wants, want{name: snap.Instances[i].Name, inst: &snap.Instances[i]})
		}
	}
	wanted := map[string]bool{}
	for _, w := range wants {
		wanted[w.name] = true
	}

	// What is there.
	items, err := c.p.list(ctx, svc, true)
	if err != nil {
		return err
	}
	existing := map[string]container.Summary{}
	var surplus, leftovers []container.Summary
	for _, it := range items {
		name := containerName(it)
		switch {
		case isRetired(name, it.ID):
			leftovers = append(leftovers, it)
		case !wanted[name]:
			existing[name] = it
			surplus = append(surplus, it)
		default:
			existing[name] = it
		}
	}
	slices.SortFunc(surplus, func(a, b container.Summary) int {
		ga, ia := removalRank(containerName(a), a.Labels, c.rollout, snapIndex)
		gb, ib := removalRank(containerName(b), b.Labels, c.rollout, snapIndex)
		return cmp.Or(cmp.Compare(ga, gb), cmp.Compare(ib, ia), cmp.Compare(containerName(a), containerName(b)))
	})
	// What this call will change is decided: from here on it acts on what
	// it read, which a later attempt may change meanwhile (guard).
	failpoint.Hit(ctx, failpoint.ConvergeRead)

	// Refuse before any change if an image to create from is missing, and
	// make sure every network to join exists.
	if d.New > 0 {
		if err := c.p.CheckImage(ctx, c.spec.Image); err != nil {
			return err
		}
		// Prepare's snapshot checked the network; something may have
		// joined it since.
		if err := c.p.checkNetwork(ctx, c.spec); err != nil {
			return err
		}
	}
	nets := []string{c.docker.Network}
	for _, w := range wants {
		if _, ok := existing[w.name]; ok {
			continue
		}
		if w.isNew {
			if c.secrets == nil && len(c.docker.SecretEnv) > 0 {
				if c.secrets, err = resolveAll(c.p.Secrets, c.docker.SecretEnv, specField); err != nil {
					return err
				}
				c.values = append(c.values, slices.Collect(maps.Values(c.secrets))...)
			}
			continue
		}
		if w.inst.Docker == nil {
			return fmt.Errorf("recreate container %q: snapshot has no docker record", w.name)
		}
		ref, err := c.p.recreateImage(ctx, *w.inst)
		if err != nil {
			return fmt.Errorf("recreate container %q: %w", w.name, err)
		}
		if c.oldImages == nil {
			c.oldImages = map[string]string{}
		}
		c.oldImages[w.name] = ref
		if refs := w.inst.Docker.SecretEnv; len(refs) > 0 {
			vals, err := resolveAll(c.p.Secrets, refs, snapshotField(w.name))
			if err != nil {
				return fmt.Errorf("recreate container %q: %w", w.name, err)
			}
			if c.oldSecrets == nil {
				c.oldSecrets = map[string]map[string]string{}
			}
			c.oldSecrets[w.name] = vals
			c.values = append(c.values, slices.Collect(maps.Values(vals))...)
		}
		for _, n := range w.inst.Docker.Networks {
			nets = append(nets, n.Network)
		}
	}
	for _, n := range slices.Compact(slices.Sorted(slices.Values(nets))) {
		if err := c.p.ensureNetwork(ctx, n); err != nil {
			return err
		}
	}

	// A new instance started by an earlier converge of this rollout must
	// have stayed up before this one goes on (its window may not be over
	// yet: a stage without a bake, a promoted rollout, a retry).
	if d.New > 0 {
		if err := c.p.stayedUp(ctx, svc, c.rollout); err != nil {
			return err
		}
	}

	// Containers an earlier converge retired and did not see removed (its
	// worker died, or this converge follows it closely) go before any
	// other change: one may still hold a host port a recreate needs.
	if err := each(leftovers, func(it container.Summary) error {
		return c.p.removeRetired(ctx, containerName(it), it.ID, time.Now().Add(stopTimeoutSeconds*time.Second))
	}); err != nil {
		return err
	}

	// Creates, starts and removals run side by side (each an engine round
	// trip of 0.1-0.3 s); the order between the groups is the guarantee:
	// under surge every wanted container runs before any surplus one stops.
	// A stage that shares traffic retires the snapshot's containers it no
	// longer wants rather than wait for their stop (retire.go): it is
	// never a rollout's last converge.
	retire := d.Order == plan.Surge && d.New > 0 && c.traffic == plan.TrafficShared
	up := func() error {
		if err := each(wants, func(w want) error { return c.ensure(ctx, w, existing) }); err != nil {
			return err
		}
		return each(wants, func(w want) error { return c.rewire(ctx, w) })
	}
	down := func() error {
		return each(surplus, func(it container.Summary) error {
			if _, old := snapIndex[containerName(it)]; old && retire {
				return c.retire(ctx, it)
			}
			return c.remove(ctx, containerName(it))
		})
	}
	defer c.inOrder(wants, surplus)
	switch {
	case d.Order == plan.StopFirst:
		if err := down(); err != nil {
			return err
		}
		if err := up(); err != nil {
			return err
		}
	case d.New == 0:
		// A rollback: the new instances go while the snapshot's come back,
		// not after (up writes Created, Rewired and started; down only
		// Removed).
		removed := make(chan error, 1)
		go func() { removed <- down() }()
		err := up()
		if err := cmp.Or(<-removed, err); err != nil {
			return err
		}
	default:
		if err := up(); err != nil {
			return err
		}
		if err := down(); err != nil {
			return err
		}
	}

	if err := c.waitRunning(ctx, wants); err != nil {
		return err
	}
	return c.count(ctx, snapIndex)
}

// maxParallel bounds the engine calls of one kind a converge makes at once.
const maxParallel = 8

// each runs f on every item, up to maxParallel side by side, and returns
// their errors joined (the one error as it is when only one failed).
func each[T any](items []T, f func(T) error) error {
	errs := make([]error, len(items))
	sem := make(chan struct{}, maxParallel)
	var wg sync.WaitGroup
	for i, it := range items {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = f(it)
		}()
	}
	wg.Wait()
	errs = slices.DeleteFunc(errs, func(err error) bool { return err == nil })
	if len(errs) == 1 {
		return errs[0]
	}
	return errors.Join(errs...)
}

// inOrder puts the result's lists in the order of the work (wanted
// containers as asked, then the surplus in its removal order), whatever
// order the parallel calls ended in.
func (c *convergence) inOrder(wants []want, surplus []container.Summary) {
	rank := map[string]int{}
	for i, w := range wants {
		rank[w.name] = i
	}
	for i, it := range surplus {
		rank[containerName(it)] = len(wants) + i
	}
	by := func(a, b string) int { return cmp.Compare(rank[a], rank[b]) }
	slices.SortStableFunc(c.res.Created, by)
	slices.SortStableFunc(c.res.Rewired, by)
	slices.SortStableFunc(c.res.Removed, by)
}

// ensure makes w exist and run: it creates it when absent (accepting a
// container another attempt created under the same name) and starts it when
// stopped.
func (c *convergence) ensure(ctx context.Context, w want, existing map[string]container.Summary) error {
	log := c.log.With(zap.String("container", w.name))
	if it, ok := existing[w.name]; ok {
		if w.isNew && !isNewOf(it.Labels, c.spec.Service, c.rollout) {
			return fmt.Errorf("container %q exists but is not a new instance of rollout %q", w.name, c.rollout)
		}
		if it.State == container.StateRunning {
			return nil
		}
		return c.start(ctx, it.ID, w.name, log)
	}
	var (
		opts client.ContainerCreateOptions
		more []platform.NetworkAttach // networks joined after create
		err  error
	)
	if w.isNew {
		opts = c.newContainer(w)
	} else if opts, more, err = c.oldContainer(w); err != nil {
		return err
	}
	opts.Name = w.name
	if err := c.guard(ctx, "create container %q", w.name); err != nil {
		return err
	}
	res, err := c.p.cli.ContainerCreate(ctx, opts)
	id := res.ID
	switch {
	case err == nil:
		c.mu.Lock()
		c.res.Created = append(c.res.Created, w.name)
		c.mu.Unlock()
		log.Info("created container", zap.String("image", opts.Config.Image), zap.String("id", res.ID))
		if !w.isNew {
			if err := c.sameImage(ctx, *w.inst, w.name); err != nil {
				return err
			}
		}
	case cerrdefs.IsConflict(err):
		// Created meanwhile, by a previous attempt or a racing one: accept it
		// if it is ours.
		in, ierr := c.p.cli.ContainerInspect(ctx, w.name, client.ContainerInspectOptions{})
		if ierr != nil {
			return fmt.Errorf("create container %q: %w", w.name, errors.Join(err, ierr))
		}
		if !c.accepts(w, in.Container.Config) {
			return fmt.Errorf("create container %q: a container of that name exists with other labels: %w", w.name, err)
		}
		log.Info("container already exists")
		if in.Container.State != nil && in.Container.State.Running {
			return nil
		}
		id = in.Container.ID
	default:
		return fmt.Errorf("create container %q: %w", w.name, err)
	}
	for _, n := range more {
		if err := c.guard(ctx, "connect container %q", w.name); err != nil {
			return err
		}
		if err := c.p.connect(ctx, n.Network, w.name, n.Aliases); err != nil {
			return err
		}
	}
	return c.start(ctx, id, w.name, log)
}

// accepts reports whether a container found under w's name is w.
func (c *convergence) accepts(w want, cfg *container.Config) bool {
	if cfg == nil {
		return false
	}
	if w.isNew {
		return isNewOf(cfg.Labels, c.spec.Service, c.rollout)
	}
	return cfg.Labels[platform.LabelService] == c.spec.Service
}

// start starts container id (name), watched from before the request: see
// stayUp.
func (c *convergence) start(ctx context.Context, id, name string, log *zap.Logger) error {
	if err := c.guard(ctx, "start container %q", name); err != nil {
		return err
	}
	c.mu.Lock()
	if c.watch == nil {
		c.watch = c.p.watchUp(ctx, c.spec.Service, time.Now())
	}
	c.watch.starting(id, name)
	c.mu.Unlock()
	if _, err := c.p.cli.ContainerStart(ctx, name, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start container %q: %w", name, err)
	}
	c.mu.Lock()
	c.started[name] = true
	c.startedAt[name] = time.Now()
	c.mu.Unlock()
	log.Info("started container")
	return nil
}

// newContainer is the create request for a new instance, from the spec.
func (c *convergence) newContainer(w want) client.ContainerCreateOptions {
	d := c.docker
	env := maps.Clone(d.Env)
	if len(c.secrets) > 0 {
		if env == nil {
			env = map[string]string{}
		}
		maps.Copy(env, c.secrets)
	}
	labels := newLabels(d.Labels, c.spec.Service, c.spec.Image, c.rollout, w.slot)
	maps.Copy(labels, secretLabels(d.SecretEnv))
	cfg := &container.Config{
		Image:  c.spec.Image,
		Env:    renderEnv(env),
		Cmd:    d.Command,
		Labels: labels,
	}
	hc := &container.HostConfig{
		NetworkMode:   container.NetworkMode(d.Network),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		Resources:     c.limits,
	}
	if d.Port > 0 {
		port := network.MustParsePort(strconv.Itoa(d.Port) + "/tcp")
		cfg.ExposedPorts = network.PortSet{port: {}}
		hc.PortBindings = network.PortMap{port: {{HostIP: loopback}}}
	}
	return client.ContainerCreateOptions{
		Config:     cfg,
		HostConfig: hc,
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			d.Network: {Aliases: newAliases(c.traffic, c.spec.Service)},
		}},
	}
}

// oldContainer is the create request that recreates a snapshot instance
// exactly, and the networks it joins after the first. Only its aliases on the
// service network follow the desired traffic.
func (c *convergence) oldContainer(w want) (client.ContainerCreateOptions, []platform.NetworkAttach, error) {
	di := w.inst.Docker
	exposed, bindings, err := portConfig(di.Ports)
	if err != nil {
		return client.ContainerCreateOptions{}, nil, fmt.Errorf("recreate container %q: %w", w.name, err)
	}
	restart, err := parseRestart(di.RestartPolicy)
	if err != nil {
		return client.ContainerCreateOptions{}, nil, fmt.Errorf("recreate container %q: %w", w.name, err)
	}
	mounts, err := mountConfig(di.Mounts)
	if err != nil {
		return client.ContainerCreateOptions{}, nil, fmt.Errorf("recreate container %q: %w", w.name, err)
	}
	nets := c.oldNetworks(*w.inst)
	image := cmp.Or(c.oldImages[w.name], imageRef(*w.inst))
	cfg := &container.Config{
		Image:        image,
		Env:          joinSecretEnv(di.Env, c.oldSecrets[w.name]),
		Cmd:          di.Cmd,
		Entrypoint:   di.Entrypoint,
		Labels:       recreateLabels(*w.inst, image, di.Labels),
		WorkingDir:   di.WorkingDir,
		User:         di.User,
		ExposedPorts: exposed,
		Tty:          di.TTY,
		OpenStdin:    di.OpenStdin,
	}
	hc := &container.HostConfig{PortBindings: bindings, RestartPolicy: restart,
		Resources: container.Resources{NanoCPUs: di.NanoCPUs, Memory: di.Memory, MemorySwap: di.MemorySwap},
		Mounts:    mounts, Tmpfs: di.Tmpfs, ShmSize: di.ShmSize, Runtime: di.Runtime,
		LogConfig: container.LogConfig{Type: di.LogDriver, Config: di.LogOptions}}
	opts := client.ContainerCreateOptions{Config: cfg, HostConfig: hc}
	if len(nets) == 0 {
		return opts, nil, nil
	}
	// Engines before API 1.44 accept one network at create; join the rest
	// before start.
	hc.NetworkMode = container.NetworkMode(nets[0].Network)
	opts.NetworkingConfig = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		nets[0].Network: {Aliases: nets[0].Aliases},
	}}
	return opts, nets[1:], nil
}

// recreateImage returns what to create a snapshot instance from: its image
// name while that still names the bytes it ran (so the engine keeps showing
// the name), else the image ID. With an ID only those bytes will do: a
// *platform.ImageNotFoundError when they are gone (an ID cannot be pulled).
// A snapshot without an ID (recorded before IDs were) uses the name.
func (p *Platform) recreateImage(ctx context.Context, in platform.Instance) (string, error) {
	if in.ImageID == "" {
		return in.Image, p.CheckImage(ctx, in.Image)
	}
	if in.Image != "" && in.Image != in.ImageID {
		res, err := p.cli.ImageInspect(ctx, in.Image)
		if err == nil && res.ID == in.ImageID {
			return in.Image, nil
		}
		if err != nil && !cerrdefs.IsNotFound(err) {
			return "", fmt.Errorf("inspect image %q: %w", in.Image, err)
		}
	}
	_, err := p.cli.ImageInspect(ctx, in.ImageID)
	switch {
	case err == nil:
		return in.ImageID, nil
	case cerrdefs.IsNotFound(err):
		return "", fmt.Errorf("image %q as it ran (%s) is no longer on the engine: %w",
			in.Image, in.ImageID, &platform.ImageNotFoundError{Image: in.ImageID})
	default:
		return "", fmt.Errorf("inspect image %s: %w", in.ImageID, err)
	}
}

// sameImage checks that a snapshot instance just created by its image name
// runs the bytes it ran: the name may have moved since recreateImage looked.
// If not, the container goes again and the error is retryable; the retry
// creates it from the ID.
func (c *convergence) sameImage(ctx context.Context, in platform.Instance, name string) error {
	if in.ImageID == "" {
		return nil
	}
	got, err := c.p.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect container %q: %w", name, err)
	}
	if got.Container.Image == in.ImageID {
		return nil
	}
	if err := c.remove(ctx, name); err != nil {
		return err
	}
	return fmt.Errorf("recreate container %q: image %q moved to %s while it was created, not %s as it ran; removed it to create it again",
		name, in.Image, got.Container.Image, in.ImageID)
}

// oldNetworks is a snapshot instance's networks with its service-network
// aliases as the desired traffic wants them.
func (c *convergence) oldNetworks(in platform.Instance) []platform.NetworkAttach {
	snapAliases, onNet := snapshotAliases(in, c.docker.Network)
	aliases, attach := oldAliases(c.traffic, c.spec.Service, snapAliases, onNet)
	var out []platform.NetworkAttach
	for _, n := range in.Docker.Networks {
		if n.Network == c.docker.Network {
			if attach {
				out = append(out, platform.NetworkAttach{Network: n.Network, Aliases: aliases})
			}
			continue
		}
		out = append(out, n)
	}
	if attach && !onNet {
		out = append(out, platform.NetworkAttach{Network: c.docker.Network, Aliases: aliases})
	}
	return out
}

// rewire gives a container the aliases the traffic wants on the service
// network, reconnecting it only when they differ. Old instances also rejoin
// any other snapshot network they lost.
func (c *convergence) rewire(ctx context.Context, w want) error {
	var nets []platform.NetworkAttach
	if w.isNew {
		nets = []platform.NetworkAttach{{Network: c.docker.Network, Aliases: newAliases(c.traffic, c.spec.Service)}}
	} else if w.inst.Docker != nil {
		nets = c.oldNetworks(*w.inst)
	}
	in, err := c.p.cli.ContainerInspect(ctx, w.name, client.ContainerInspectOptions{})
	if err != nil {
		return fmt.Errorf("inspect container %q: %w", w.name, err)
	}
	var have map[string]*network.EndpointSettings
	if in.Container.NetworkSettings != nil {
		have = in.Container.NetworkSettings.Networks
	}
	rewired := false
	for _, n := range nets {
		ep, on := have[n.Network]
		if on && ep != nil && sameAliases(userAliases(ep.Aliases, in.Container.ID), n.Aliases) {
			continue
		}
		if err := c.guard(ctx, "rewire container %q", w.name); err != nil {
			return err
		}
		if on {
			if _, err := c.p.cli.NetworkDisconnect(ctx, n.Network, client.NetworkDisconnectOptions{Container: w.name}); err != nil && !cerrdefs.IsNotFound(err) {
				return fmt.Errorf("disconnect container %q from network %q: %w", w.name, n.Network, err)
			}
		}
		if err := c.guard(ctx, "rewire container %q", w.name); err != nil {
			return err
		}
		if err := c.p.connect(ctx, n.Network, w.name, n.Aliases); err != nil {
			return err
		}
		rewired = true
		c.log.Info("rewired container", zap.String("container", w.name), zap.String("network", n.Network),
			zap.Strings("aliases", n.Aliases))
	}
	if rewired {
		c.mu.Lock()
		c.res.Rewired = append(c.res.Rewired, w.name)
		c.mu.Unlock()
	}
	return nil
}

// guard checks the call's fence before a destructive call (what, name say
// which, for the error): see fencer.check for the window it leaves.
func (c *convergence) guard(ctx context.Context, what, name string) error {
	if err := c.fence.check(ctx); err != nil {
		return fmt.Errorf(what+": %w", name, err)
	}
	return nil
}

// remove stops and removes a container; one already gone counts as removed.
func (c *convergence) remove(ctx context.Context, name string) error {
	if err := c.guard(ctx, "stop container %q", name); err != nil {
		return err
	}
	timeout := stopTimeoutSeconds
	if _, err := c.p.cli.ContainerStop(ctx, name, client.ContainerStopOptions{Timeout: &timeout}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop container %q: %w", name, err)
	}
	if err := c.guard(ctx, "remove container %q", name); err != nil {
		return err
	}
	if _, err := c.p.cli.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove container %q: %w", name, err)
	}
	c.mu.Lock()
	c.res.Removed = append(c.res.Removed, name)
	c.mu.Unlock()
	c.log.Info("removed container", zap.String("container", name))
	return nil
}

// waitRunning waits until every wanted container runs, then makes those
// this call started prove they stay up (stayUp): with a restart policy a
// crashing process is often caught running again, so a restart counts as a
// crash.
func (c *convergence) waitRunning(ctx context.Context, wants []want) error {
	ctx, cancel := context.WithTimeout(ctx, runningTimeout)
	defer cancel()
	first := map[string]seen{}
	for _, w := range wants {
		if c.watch != nil {
			if fell, why := c.watch.fell(); fell != "" {
				return c.notRunning(ctx, fell, why)
			}
		}
		st, err := c.waitOne(ctx, w.name)
		if err != nil {
			return err
		}
		first[w.name] = st
	}
	if len(c.started) == 0 {
		return nil
	}
	return c.stayUp(ctx, wants, first)
}

// seen is what tells one run of a container from the next.
type seen struct {
	startedAt string
	restarts  int
}

// waitOne waits until a container runs and tells which run it saw.
func (c *convergence) waitOne(ctx context.Context, name string) (seen, error) {
	for {
		in, err := c.p.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
		if err != nil {
			return seen{}, fmt.Errorf("wait for container %q: %w", name, err)
		}
		st := in.Container.State
		switch {
		case st == nil:
		case st.Running && !st.Restarting:
			return seen{startedAt: st.StartedAt, restarts: in.Container.RestartCount}, nil
		case st.Restarting || st.Status == container.StateExited || st.Status == container.StateDead:
			return seen{}, c.notRunning(ctx, name, fmt.Sprintf("%s (exit code %d)", st.Status, st.ExitCode))
		}
		if err := sleep(ctx, pollInterval); err != nil {
			return seen{}, fmt.Errorf("wait for container %q to run: %w", name, err)
		}
	}
}

// notRunning is the error for a container this call started that does not
// stay up (notUp), with the secret values it resolved cut out of the log.
func (c *convergence) notRunning(ctx context.Context, name, why string) error {
	return c.p.notUp(ctx, name, why, c.values)
}

// notUp is the error for a container that does not stay up. Its last
// output goes to the worker's log, never into the error: the error reaches
// history, the status and notifications, and a container a spec controls
// could print anything it was given there (review finding 5). Secret
// values are cut out of that output: values, and those the container
// holds (a retried attempt resolved none).
func (p *Platform) notUp(ctx context.Context, name, why string, values []string) error {
	err := &NotUpError{Container: name, Why: why}
	if logs := p.lastLogs(ctx, name, 10); logs != "" {
		values := slices.Clone(values)
		if in, err := p.cli.ContainerInspect(ctx, name, client.ContainerInspectOptions{}); err == nil && in.Container.Config != nil {
			values = append(values, secretValues(in.Container.Config.Env, in.Container.Config.Labels)...)
		}
		out := redact(errors.New(logs), values).Error()
		p.log.Warn("container not running: its last output", zap.String("container", name), zap.String("why", why), zap.String("output", out))
		err.Logged = true
	}
	return err
}

// NotUpError is a container that did not stay up after it was started: the
// stage's verdict on the version it runs.
type NotUpError struct {
	Container, Why string
	// Logged: its last output is in the worker's log.
	Logged bool
}

func (e *NotUpError) Error() string {
	msg := fmt.Sprintf("container %q is not running: %s", e.Container, e.Why)
	if e.Logged {
		msg += " (its last output is in the worker's log)"
	}
	return msg
}

// count fills the result's counts from what runs now.
func (c *convergence) count(ctx context.Context, snapIndex map[string]int) error {
	items, err := c.p.list(ctx, c.spec.Service, false)
	if err != nil {
		return err
	}
	c.res.NewCount, c.res.OldCount, c.res.Total = 0, 0, 0
	for _, it := range items {
		if isRetired(containerName(it), it.ID) {
			continue // stopping, out of the service
		}
		c.res.Total++
		if c.rollout != "" && isNewOf(it.Labels, c.spec.Service, c.rollout) {
			c.res.NewCount++
		} else if _, ok := snapIndex[containerName(it)]; ok {
			c.res.OldCount++
		}
	}
	return nil
}

// networkMu serialises network creation in this process: the engine lets
// two networks share a name, and two converges racing would make both.
var networkMu sync.Mutex

// ensureNetwork creates a user-defined bridge network unless it exists. If a
// race elsewhere (another worker) made duplicates, it keeps the oldest and
// removes the rest, so the name stays unambiguous.
func (p *Platform) ensureNetwork(ctx context.Context, name string) error {
	networkMu.Lock()
	defer networkMu.Unlock()
	nets, err := p.networksNamed(ctx, name)
	if err != nil {
		return err
	}
	if len(nets) == 0 {
		_, err = p.cli.NetworkCreate(ctx, name, client.NetworkCreateOptions{
			Driver: "bridge",
			Labels: map[string]string{labelManaged: "true"},
		})
		if err != nil && !cerrdefs.IsConflict(err) {
			return fmt.Errorf("create network %q: %w", name, err)
		}
		p.log.Info("created network", zap.String("network", name))
		if nets, err = p.networksNamed(ctx, name); err != nil {
			return err
		}
	}
	if len(nets) > 1 {
		slices.SortFunc(nets, func(a, b network.Summary) int {
			if c := a.Created.Compare(b.Created); c != 0 {
				return c
			}
			return strings.Compare(a.ID, b.ID)
		})
		for _, n := range nets[1:] {
			if _, err := p.cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
				return fmt.Errorf("network name %q is ambiguous and duplicate %s could not be removed: %w", name, n.ID, err)
			}
			p.log.Warn("removed duplicate network", zap.String("network", name), zap.String("id", n.ID))
		}
	}
	return nil
}

// networksNamed lists the networks whose name is exactly name.
func (p *Platform) networksNamed(ctx context.Context, name string) ([]network.Summary, error) {
	res, err := p.cli.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
	if err != nil {
		return nil, fmt.Errorf("list networks named %q: %w", name, err)
	}
	var out []network.Summary
	for _, n := range res.Items {
		if n.Name == name {
			out = append(out, n)
		}
	}
	return out, nil
}

// connect attaches a container to a network with the given aliases.
func (p *Platform) connect(ctx context.Context, net, name string, aliases []string) error {
	_, err := p.cli.NetworkConnect(ctx, net, client.NetworkConnectOptions{
		Container:      name,
		EndpointConfig: &network.EndpointSettings{Aliases: aliases},
	})
	if err != nil {
		return fmt.Errorf("connect container %q to network %q: %w", name, net, err)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
