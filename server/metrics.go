package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/containerd/log"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chroot-applier/containerd-chroot-applier/applier"
)

const metricsNamespace = "containerd_chroot_applier"

// Metrics are the daemon's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	registry     *prometheus.Registry
	applies      *prometheus.CounterVec
	duration     prometheus.Histogram
	uncompressed prometheus.Counter
	running      prometheus.Gauge
	queued       prometheus.Gauge
}

// NewMetrics returns the daemon's metrics in a registry of their own, with
// the Go runtime and process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		applies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "applies_total",
			Help:      "Layers applied, by media type and result (success or failure).",
		}, []string{"media", "result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: metricsNamespace,
			Name:      "apply_duration_seconds",
			Help:      "Wall time of successful applies, in seconds.",
			Buckets:   prometheus.ExponentialBuckets(0.01, 2, 16),
		}),
		uncompressed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: metricsNamespace,
			Name:      "applied_uncompressed_bytes_total",
			Help:      "Uncompressed tar bytes of successfully applied layers.",
		}),
		running: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace,
			Name:      "applies_running",
			Help:      "Applies in progress.",
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: metricsNamespace,
			Name:      "applies_waiting",
			Help:      "Apply requests waiting for a free slot (max_concurrent_applies).",
		}),
	}
	m.registry.MustRegister(m.applies, m.duration, m.uncompressed, m.running, m.queued,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) waiting(delta float64) {
	if m != nil {
		m.queued.Add(delta)
	}
}

func (m *Metrics) started() {
	if m != nil {
		m.running.Inc()
	}
}

func (m *Metrics) observe(media string, res applier.Result, err error) {
	if m == nil {
		return
	}
	m.running.Dec()
	if err != nil {
		m.applies.WithLabelValues(media, "failure").Inc()
		return
	}
	m.applies.WithLabelValues(media, "success").Inc()
	m.duration.Observe(res.Duration.Seconds())
	m.uncompressed.Add(float64(res.Diff.Size))
}

// ServeMetrics serves the metrics in the Prometheus text format on l at
// /metrics until ctx is done.
func (m *Metrics) ServeMetrics(ctx context.Context, l net.Listener) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	stop := context.AfterFunc(ctx, func() {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			log.G(ctx).WithError(err).Warn("failed to shut down the metrics listener")
		}
	})
	defer stop()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
