package server

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	diffapi "github.com/containerd/containerd/api/services/diff/v1"
	"github.com/containerd/containerd/v2/core/mount"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
)

// serveService serves svc on a unix socket in a temporary directory and
// returns a client for it.
func serveService(t *testing.T, svc *Service) diffapi.DiffClient {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "applier.sock")
	l, err := Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	diffapi.RegisterDiffServer(srv, svc)
	go srv.Serve(l)
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient("unix://"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return diffapi.NewDiffClient(conn)
}

// applyRequest returns a request to apply desc to a bind mount of target.
func applyRequest(desc ocispec.Descriptor, target string) *diffapi.ApplyRequest {
	return &diffapi.ApplyRequest{
		Diff: oci.DescriptorToProto(desc),
		Mounts: mount.ToProto([]mount.Mount{
			{Type: "bind", Source: target, Options: []string{"rbind", "rw"}},
		}),
	}
}

// logRecorder collects the entries of the standard logger while a test runs.
type logRecorder struct {
	mu      sync.Mutex
	entries []*logrus.Entry
}

func recordLogs(t *testing.T) *logRecorder {
	t.Helper()
	r := &logRecorder{}
	logger := log.L.Logger
	level := logger.GetLevel()
	logger.AddHook(r)
	logger.SetLevel(logrus.DebugLevel)
	t.Cleanup(func() {
		logger.ReplaceHooks(make(logrus.LevelHooks))
		logger.SetLevel(level)
	})
	return r
}

func (r *logRecorder) Levels() []logrus.Level { return logrus.AllLevels }

func (r *logRecorder) Fire(e *logrus.Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.entries = append(r.entries, e)
	return nil
}

// find returns the fields of the first entry with message msg.
func (r *logRecorder) find(msg string) (logrus.Fields, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.entries {
		if e.Message == msg {
			return e.Data, true
		}
	}
	return nil, false
}

func TestApplyNamespaceRequired(t *testing.T) {
	store, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayer,
		Digest:    digest.FromString("layer"),
		Size:      5,
	}

	tests := []struct {
		name             string
		namespace        string
		defaultNamespace string
		kind             func(error) bool
		contains         string
	}{
		{"request without namespace is rejected", "", "", errdefs.IsFailedPrecondition,
			"no containerd namespace and no default_namespace"},
		{"default namespace is used", "", "k8s.io", errdefs.IsNotFound, "not found"},
		{"request namespace is used", "moby", "", errdefs.IsNotFound, "not found"},
		{"invalid namespace is rejected", "bad/name", "", errdefs.IsInvalidArgument,
			"invalid namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			svc := NewService(applier.New(store), ServiceOptions{
				DefaultNamespace:     tt.defaultNamespace,
				MaxConcurrentApplies: 1,
			})
			client := serveService(t, svc)
			ctx := context.Background()
			if tt.namespace != "" {
				ctx = namespaces.WithNamespace(ctx, tt.namespace)
			}

			_, err := client.Apply(ctx, applyRequest(desc, t.TempDir()))
			err = errgrpc.ToNative(err)
			if !tt.kind(err) {
				t.Errorf("Apply() = %v, wrong error kind", err)
			}
			if err == nil || !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("Apply() error %v does not contain %q", err, tt.contains)
			}
			if err == nil || !strings.Contains(err.Error(), desc.Digest.String()) {
				t.Errorf("Apply() error %v does not name the layer", err)
			}
		})
	}
}

func TestDiffNotImplemented(t *testing.T) {
	svc := NewService(applier.New(nil), ServiceOptions{MaxConcurrentApplies: 1})
	client := serveService(t, svc)
	ctx := namespaces.WithNamespace(context.Background(), "default")
	_, err := client.Diff(ctx, &diffapi.DiffRequest{})
	if err := errgrpc.ToNative(err); !errdefs.IsNotImplemented(err) {
		t.Errorf("Diff() = %v, want a not implemented error", err)
	}
}

// waitingRequest starts an apply that must wait for svc's only slot, which
// the test holds, and returns the channel that receives its error.
func waitingRequest(t *testing.T, svc *Service, ctx context.Context) <-chan error {
	t.Helper()
	if err := svc.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	client := serveService(t, svc)
	done := make(chan error, 1)
	go func() {
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer,
			Digest: digest.FromString("x")}
		_, err := client.Apply(ctx, applyRequest(desc, t.TempDir()))
		done <- errgrpc.ToNative(err)
	}()

	deadline := time.Now().Add(10 * time.Second)
	for gaugeValue(t, svc.metrics.queued) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the request did not start waiting for a slot within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return done
}

func TestApplyWaitsForSlot(t *testing.T) {
	store, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	svc := NewService(applier.New(store), ServiceOptions{
		MaxConcurrentApplies: 1,
		Metrics:              NewMetrics(),
	})
	done := waitingRequest(t, svc, namespaces.WithNamespace(context.Background(), "default"))

	select {
	case err := <-done:
		t.Fatalf("Apply() returned %v while the slot was taken, want it to wait", err)
	case <-time.After(200 * time.Millisecond):
	}
	svc.release()
	// The blob does not exist: reaching that error shows the request ran.
	if err := <-done; !errdefs.IsNotFound(err) {
		t.Errorf("Apply() after the slot was freed = %v, want a not found error", err)
	}
}

func TestApplyStopCancelsWaiting(t *testing.T) {
	store, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stop, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc := NewService(applier.New(store), ServiceOptions{
		MaxConcurrentApplies: 1,
		Stop:                 stop,
		Metrics:              NewMetrics(),
	})
	done := waitingRequest(t, svc, namespaces.WithNamespace(context.Background(), "default"))

	cancel()
	select {
	case err := <-done:
		if !errdefs.IsCanceled(err) {
			t.Errorf("Apply() after stop = %v, want a cancelled error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Apply() still waits 10s after stop")
	}
	svc.release()
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
