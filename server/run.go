package server

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	diffapi "github.com/containerd/containerd/api/services/diff/v1"
	introspectionapi "github.com/containerd/containerd/api/services/introspection/v1"
	"github.com/containerd/containerd/v2/core/content"
	contentproxy "github.com/containerd/containerd/v2/core/content/proxy"
	introspectionproxy "github.com/containerd/containerd/v2/core/introspection/proxy"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/log"
	"github.com/coreos/go-systemd/v22/daemon"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthapi "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
	"github.com/chroot-applier/containerd-chroot-applier/blobfile"
	"github.com/chroot-applier/containerd-chroot-applier/config"
	"github.com/chroot-applier/containerd-chroot-applier/internal/version"
)

// Run serves the Diff service on cfg.Address until ctx is done, then shuts
// down: it stops accepting requests, lets running applies finish for up to
// cfg.ShutdownTimeout, cancels the rest (which kills their children), and
// removes the socket. configFile is only logged. When NOTIFY_SOCKET is set,
// Run sends READY=1 once the socket accepts connections and STOPPING=1 when
// the shutdown begins. It returns nil after a shutdown caused by ctx.
func Run(ctx context.Context, cfg config.Config, configFile string) error {
	conn, err := grpc.NewClient("unix://"+cfg.ContainerdAddress,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(defaults.DefaultMaxRecvMsgSize)))
	if err != nil {
		return fmt.Errorf("failed to create containerd client for %s: %w",
			cfg.ContainerdAddress, err)
	}
	defer conn.Close()

	var metrics *Metrics
	if cfg.MetricsAddress != "" {
		metrics = NewMetrics()
	}
	stopApplies, cancelApplies := context.WithCancel(context.Background())
	defer cancelApplies()
	svc := NewService(applier.New(blobProvider(conn, cfg.ContentRoot)), ServiceOptions{
		DefaultNamespace:     cfg.DefaultNamespace,
		MaxConcurrentApplies: cfg.MaxConcurrentApplies,
		Stop:                 stopApplies,
		Metrics:              metrics,
	})

	srv := grpc.NewServer(
		grpc.MaxRecvMsgSize(defaults.DefaultMaxRecvMsgSize),
		grpc.MaxSendMsgSize(defaults.DefaultMaxSendMsgSize))
	diffapi.RegisterDiffServer(srv, svc)
	healthServer := health.NewServer()
	healthapi.RegisterHealthServer(srv, healthServer)

	l, err := Listen(cfg.Address)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Address)

	metricsDone := make(chan error, 1)
	metricsCtx, stopMetrics := context.WithCancel(ctx)
	defer stopMetrics()
	if metrics != nil {
		ml, err := net.Listen("tcp", cfg.MetricsAddress)
		if err != nil {
			l.Close()
			return fmt.Errorf("failed to listen for metrics on %s: %w", cfg.MetricsAddress, err)
		}
		go func() { metricsDone <- metrics.ServeMetrics(metricsCtx, ml) }()
	}

	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(l) }()
	log.G(ctx).WithFields(log.Fields{
		"address":            cfg.Address,
		"containerd_address": cfg.ContainerdAddress,
		"content_root":       cfg.ContentRoot,
		"config":             configFile,
		"metrics_address":    cfg.MetricsAddress,
		"version":            version.Version,
		"commit":             version.Commit,
	}).Info("serving diff service")
	notify(ctx, daemon.SdNotifyReady)

	select {
	case <-ctx.Done():
	case err := <-serveDone:
		return fmt.Errorf("failed to serve on %s: %w", cfg.Address, err)
	case err := <-metricsDone:
		srv.Stop()
		return fmt.Errorf("failed to serve metrics on %s: %w", cfg.MetricsAddress, err)
	}

	log.G(ctx).WithField("timeout", cfg.ShutdownTimeout.String()).
		Info("shutting down, waiting for running applies")
	notify(ctx, daemon.SdNotifyStopping)
	healthServer.Shutdown()
	shutdown(ctx, srv, cfg.ShutdownTimeout, cancelApplies)
	stopMetrics()
	<-serveDone
	log.G(ctx).Info("stopped")
	return nil
}

// shutdown stops srv gracefully and, when that takes longer than timeout,
// cancels the running applies and stops srv at once.
func shutdown(ctx context.Context, srv *grpc.Server, timeout time.Duration, cancelApplies func()) {
	stopped := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(stopped)
	}()

	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-stopped:
		return
	case <-timer.C:
	}
	log.G(ctx).WithField("timeout", timeout.String()).
		Warn("shutdown timeout reached, cancelling running applies")
	cancelApplies()
	srv.Stop()
	<-stopped
}

// blobProvider returns the content provider for the content_root setting.
func blobProvider(conn *grpc.ClientConn, contentRoot string) content.Provider {
	store := contentproxy.NewContentStore(conn)
	switch contentRoot {
	case "":
		return store
	case config.ContentRootAuto:
		client := introspectionapi.NewIntrospectionClient(conn)
		discovery := blobfile.NewDiscovery(introspectionproxy.NewIntrospectionProxy(client))
		return blobfile.NewProvider(store, discovery)
	}
	return blobfile.NewProvider(store, blobfile.StaticRoot(contentRoot))
}

func notify(ctx context.Context, state string) {
	sent, err := daemon.SdNotify(false, state)
	if err != nil {
		log.G(ctx).WithError(err).WithField("state", state).Warn("failed to notify systemd")
		return
	}
	if sent {
		log.G(ctx).WithField("state", state).Debug("notified systemd")
	}
}
