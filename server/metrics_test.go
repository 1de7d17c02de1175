package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/plugins/content/local"
	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
)

func TestMetrics(t *testing.T) {
	store, err := local.NewStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	metrics := NewMetrics()
	svc := NewService(applier.New(store), ServiceOptions{MaxConcurrentApplies: 1, Metrics: metrics})
	client := serveService(t, svc)
	desc := ocispec.Descriptor{
		MediaType: ocispec.MediaTypeImageLayerGzip,
		Digest:    digest.FromString("absent"),
	}
	ctx := namespaces.WithNamespace(context.Background(), "default")
	if _, err := client.Apply(ctx, applyRequest(desc, t.TempDir())); err == nil {
		t.Fatal("Apply() of a missing blob succeeded")
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- metrics.ServeMetrics(serveCtx, l) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("ServeMetrics() = %v after stop, want nil", err)
		}
	}()

	resp, err := http.Get("http://" + l.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`containerd_chroot_applier_applies_total{media="` + desc.MediaType +
			`",result="failure"} 1`,
		"containerd_chroot_applier_applies_running 0",
		"containerd_chroot_applier_applies_waiting 0",
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics do not contain %q\n%s", want, body)
		}
	}
}
