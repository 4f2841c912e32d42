package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/connector"
)

func newLogger(cfg config.Observability, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// runOpts are ferry run's own flags.
type runOpts struct {
	until         connector.Until // --until; the zero Until runs until stopped
	progressEvery time.Duration   // --progress-interval
}

func runConnector(ctx context.Context, cfg config.Config, warnings []string, stderr io.Writer, ro runOpts) int {
	bounded := ro.until.Kind != connector.UntilNone
	var bar *bars
	logOut := stderr
	if bounded && isTerminal(stderr) {
		bar = newBars(stderr)
		logOut = bar
		defer bar.close(connector.Progress{}) // on the early returns: print what was logged
	}
	log := newLogger(cfg.Observability, logOut)
	log.Info("starting ferry", "version", version, "group", cfg.Kafka.Group,
		"brokers", cfg.Kafka.Brokers, "topics", cfg.Kafka.Topics, "topic_regex", cfg.Kafka.TopicRegex,
		"region", cfg.Kinesis.Region, "endpoint", cfg.Kinesis.Endpoint, "until", ro.until.String())
	logWarnings(log, warnings)

	// Tell the Go runtime what memory ferry is meant to use, so that the
	// garbage collector works harder instead of letting the heap double
	// past the byte budget (GOGC alone targets twice the live heap). The
	// budget bounds records; requests in flight, fetch buffers and the
	// runtime take the rest. GOMEMLIMIT, when set, wins.
	if os.Getenv("GOMEMLIMIT") == "" {
		limit := 2*int64(cfg.Delivery.BufferBytes) + 32<<20
		debug.SetMemoryLimit(limit)
		log.Info("memory limit set", "bytes", limit)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := connector.NewMetrics(reg)
	kin, err := connector.NewKinesisClient(ctx, cfg.Kinesis, cfg.Delivery.MaxInFlight, m)
	if err != nil && ctx.Err() != nil {
		// A SIGTERM while the credentials were fetched: a clean stop, as
		// one during the rest of the start is (nothing fetched, nothing to
		// commit).
		log.Info("stopped before starting")
		return exitOK
	}
	if err != nil {
		log.Error("cannot build the Kinesis client", "error", err.Error())
		return exitFailed
	}
	conn, err := connector.New(cfg, kin, connector.WithLogger(log), connector.WithMetrics(m), connector.WithUntil(ro.until))
	if err != nil {
		log.Error("cannot build the connector", "error", err.Error())
		return exitFailed
	}

	srv, err := serveHTTP(cfg.Observability.Listen, reg, conn, log)
	if err != nil {
		log.Error("cannot listen for health and metrics", "listen", cfg.Observability.Listen, "error", err.Error())
		return exitFailed
	}
	defer func() {
		if srv != nil {
			shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = srv.Shutdown(shutdownCtx)
			cancel()
		}
	}()

	var progress sync.WaitGroup
	progressCtx, stopProgress := context.WithCancel(context.WithoutCancel(ctx))
	switch {
	case bar != nil:
		progress.Go(func() { drawProgress(progressCtx, bar, conn.Progress) })
	case bounded:
		progress.Go(func() { logProgress(progressCtx, log, conn.Progress, ro.progressEvery) })
	}
	err = conn.Run(ctx)
	stopProgress()
	progress.Wait()
	if bar != nil {
		bar.close(conn.Progress())
	}
	if bounded {
		logSummary(log, conn.Progress())
	}
	if err != nil {
		log.Error("ferry stopped", "error", err.Error())
		return exitFailed
	}
	return exitOK
}

// logWarnings logs each of Load's warnings; they do not stop ferry.
func logWarnings(log *slog.Logger, warnings []string) {
	for _, w := range warnings {
		log.Warn("configuration warning", "warning", w)
	}
}

// serveHTTP serves /healthz, /readyz and /metrics; an empty address disables it.
func serveHTTP(addr string, reg *prometheus.Registry, conn *connector.Connector, log *slog.Logger) (*http.Server, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if !conn.Healthy() {
			http.Error(w, "failed", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !conn.Ready() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server stopped", "error", err.Error())
		}
	}()
	log.Info("serving health and metrics", "listen", ln.Addr().String())
	return srv, nil
}
