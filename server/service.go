// Package server serves the applier as containerd's Diff gRPC service on a
// unix socket, so that a stock containerd can use it as a proxy diff plugin.
//
// Each request is applied in the containerd namespace it arrives with (the
// containerd-namespace gRPC header), and its blob is read through
// containerd's content API in that same namespace, so a namespace can only
// apply blobs it can see. Run adds the daemon's lifecycle: the socket, the
// connection to containerd, systemd notification and a bounded shutdown.
package server

import (
	"context"
	"fmt"

	diffapi "github.com/containerd/containerd/api/services/diff/v1"
	"github.com/containerd/containerd/v2/core/diff"
	"github.com/containerd/containerd/v2/core/leases"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/identifiers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
)

// Service is containerd's Diff service backed by an applier. Apply applies
// layers. Diff returns errdefs.ErrNotImplemented, so that containerd's diff
// service moves on to the next differ.
type Service struct {
	diffapi.UnimplementedDiffServer

	applier          *applier.Applier
	defaultNamespace string
	// slots bounds the applies that run at once. A request waits for a
	// free slot for as long as its context allows.
	slots chan struct{}
	// stop is done when running applies are to be cancelled.
	stop context.Context
	// metrics records applies; it may be nil.
	metrics *Metrics
}

// ServiceOptions configures a Service.
type ServiceOptions struct {
	// DefaultNamespace is the namespace assumed for a request that carries
	// none. When empty, such requests are rejected.
	DefaultNamespace string
	// MaxConcurrentApplies is the number of applies that run at once. A
	// value below 1 is taken as 1.
	MaxConcurrentApplies int
	// Stop, when done, cancels every running and waiting apply. Nil means
	// never.
	Stop context.Context
	// Metrics, if set, records every apply.
	Metrics *Metrics
}

// NewService returns a Service that applies layers with a.
func NewService(a *applier.Applier, opts ServiceOptions) *Service {
	stop := opts.Stop
	if stop == nil {
		stop = context.Background()
	}
	return &Service{
		applier:          a,
		defaultNamespace: opts.DefaultNamespace,
		slots:            make(chan struct{}, max(opts.MaxConcurrentApplies, 1)),
		stop:             stop,
		metrics:          opts.Metrics,
	}
}

// Apply applies the layer in the request to its mounts. The namespace comes
// from the request's containerd-namespace header, or else is the default
// namespace. Without either, the request fails with
// errdefs.ErrFailedPrecondition before any blob is read.
func (s *Service) Apply(ctx context.Context, req *diffapi.ApplyRequest) (*diffapi.ApplyResponse,
	error) {
	desc := oci.DescriptorFromProto(req.Diff)
	ns, err := s.namespace(ctx)
	if err != nil {
		log.G(ctx).WithError(err).WithField("digest", desc.Digest).Warn("rejected apply request")
		return nil, errgrpc.ToGRPC(fmt.Errorf("layer %s: %w", desc.Digest, err))
	}
	lease, _ := leases.FromContext(ctx)

	// WithNamespace also puts the namespace on outgoing gRPC calls, which
	// is how the content API reads the blob in the request's namespace.
	ctx = namespaces.WithNamespace(ctx, ns)
	ctx = log.WithLogger(ctx, log.G(ctx).WithFields(log.Fields{"namespace": ns, "lease": lease}))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.stop, cancel)()

	if err := s.acquire(ctx); err != nil {
		log.G(ctx).WithError(err).WithField("digest", desc.Digest).
			Warn("apply request cancelled while waiting for a free slot")
		return nil, errgrpc.ToGRPC(fmt.Errorf("layer %s: %w", desc.Digest, err))
	}
	defer s.release()

	s.metrics.started()
	res, err := s.applier.ApplyLayer(ctx, desc, mount.FromProto(req.Mounts), applyOptions(req)...)
	s.metrics.observe(desc.MediaType, res, err)
	if err != nil {
		log.G(ctx).WithError(err).
			WithFields(log.Fields{"digest": desc.Digest, "media": desc.MediaType}).
			Warn("failed to apply layer")
		return nil, errgrpc.ToGRPC(err)
	}
	return &diffapi.ApplyResponse{Applied: oci.DescriptorToProto(res.Diff)}, nil
}

// Diff returns errdefs.ErrNotImplemented: the applier creates no diffs.
func (s *Service) Diff(context.Context, *diffapi.DiffRequest) (*diffapi.DiffResponse, error) {
	return nil, errgrpc.ToGRPC(fmt.Errorf("chroot applier does not create diffs: %w",
		errdefs.ErrNotImplemented))
}

func (s *Service) namespace(ctx context.Context) (string, error) {
	ns, _ := namespaces.Namespace(ctx)
	if ns == "" {
		ns = s.defaultNamespace
	}
	if ns == "" {
		return "", fmt.Errorf("request carries no containerd namespace and no default_namespace "+
			"is configured: %w", errdefs.ErrFailedPrecondition)
	}
	if err := identifiers.Validate(ns); err != nil {
		return "", fmt.Errorf("invalid namespace: %w", err)
	}
	return ns, nil
}

func (s *Service) acquire(ctx context.Context) error {
	select {
	case s.slots <- struct{}{}:
		return nil
	default:
	}
	s.metrics.waiting(1)
	defer s.metrics.waiting(-1)
	select {
	case s.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Service) release() { <-s.slots }

// applyOptions converts the request's payloads and sync_fs flag, as
// containerd's own diff service does.
func applyOptions(req *diffapi.ApplyRequest) []diff.ApplyOpt {
	var opts []diff.ApplyOpt
	if req.Payloads != nil {
		payloads := make(map[string]typeurl.Any, len(req.Payloads))
		for k, v := range req.Payloads {
			payloads[k] = v
		}
		opts = append(opts, diff.WithPayloads(payloads))
	}
	return append(opts, diff.WithSyncFs(req.SyncFs))
}
