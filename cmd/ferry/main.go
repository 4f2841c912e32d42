// Command ferry replicates Kafka topics into Amazon Kinesis Data Streams,
// at least once: offsets are committed only after delivery.
//
// Usage:
//
//	ferry run    --config FILE [--set key=value ...] [--until end|timestamp:RFC3339]
//	ferry check  --config FILE [--set key=value ...]
//	ferry config --config FILE [--set key=value ...]
//	ferry status --config FILE [--json] [--watch 3s]
//	ferry preview --config FILE [--limit N] [--topic T] [--json]
//	ferry version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/connector"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `ferry replicates Kafka topics into Amazon Kinesis Data Streams.

Usage:
  ferry run    --config FILE [--set key=value ...]   run the connector
               [--until end|timestamp:RFC3339]       bounded run: stop each partition at the end offset it had
               [--progress-interval 5s]              when first assigned (the last stable offset under
                                                     read_committed), or at its first record at or after the
                                                     time; exit 0 once the group's commits reach them all.
                                                     Progress: bars on a terminal, else a log line per interval
  ferry check  --config FILE [--set key=value ...]   validate config, reach Kafka and Kinesis, report
  ferry config --config FILE [--set key=value ...]   print the effective config (secrets redacted)
  ferry status --config FILE [--json] [--watch 3s]   the group's members, partitions, offsets and lag;
                                                     exit 1 when the group has lag but no members
  ferry preview --config FILE [--limit 20] [--topic T] [--json]
                                                     what ferry would send for the next records, without
                                                     joining the group, committing or writing to Kinesis
  ferry version                                      print the version

Configuration: defaults < YAML file < FERRY_* environment < --set flags.
The file may also be named by FERRY_CONFIG.
`

// Exit codes.
const (
	exitOK      = 0
	exitFailed  = 1 // the pipeline or a check failed
	exitUsage   = 2 // bad command line
	exitInvalid = 3 // invalid configuration
)

func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "ferry %s\n", version)
		return exitOK
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "run", "check", "config", "status", "preview":
	default:
		fmt.Fprintf(stderr, "ferry: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}

	fs := flag.NewFlagSet("ferry "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", lookupEnv(environ, "FERRY_CONFIG"), "YAML configuration file")
	var sets multiFlag
	fs.Var(&sets, "set", "override one key: --set delivery.batch.linger=100ms (repeatable)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (for benchmarks)")
	asJSON := fs.Bool("json", false, "status: print JSON instead of tables")
	limit := fs.Int("limit", 20, "preview: records to read")
	topic := fs.String("topic", "", "preview: read only this topic")
	watch := fs.Duration("watch", 3*time.Second, "status: how long to watch the commits to tell moving partitions from stalled ones")
	untilFlag := fs.String("until", "", "run: stop at the end offsets (end) or at a time (timestamp:2026-06-01T00:00:00Z), then exit 0")
	progressEvery := fs.Duration("progress-interval", 5*time.Second, "run --until: how often to log progress when stderr is not a terminal")
	if err := fs.Parse(rest); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "ferry %s: unexpected argument %q\n", cmd, fs.Arg(0))
		return exitUsage
	}
	var until connector.Until
	if *untilFlag != "" {
		if cmd != "run" {
			fmt.Fprintf(stderr, "ferry %s: --until applies to ferry run only\n", cmd)
			return exitUsage
		}
		u, err := connector.ParseUntil(*untilFlag)
		if err != nil {
			fmt.Fprintf(stderr, "ferry run: invalid --until %q: %v\n", *untilFlag, err)
			return exitUsage
		}
		until = u
	}
	if *progressEvery <= 0 {
		fmt.Fprintf(stderr, "ferry %s: invalid --progress-interval %s: must be positive\n", cmd, *progressEvery)
		return exitUsage
	}

	cfg, warnings, err := loadConfig(*path, environ, sets)
	if err != nil {
		printConfigErrors(stderr, err)
		// A misspelt variable is often why a required key is missing.
		printWarnings(stderr, warnings)
		return exitInvalid
	}

	switch cmd {
	case "config":
		printWarnings(stderr, warnings)
		out, err := cfg.YAML()
		if err != nil {
			fmt.Fprintf(stderr, "ferry config: %v\n", err)
			return exitFailed
		}
		_, _ = stdout.Write(out)
		return exitOK
	case "check":
		return check(ctx, cfg, warnings, stdout)
	case "status":
		printWarnings(stderr, warnings)
		return status(ctx, cfg, *watch, *asJSON, stdout, stderr)
	case "preview":
		printWarnings(stderr, warnings)
		return preview(ctx, cfg, *limit, *topic, *asJSON, stdout, stderr)
	default:
		if *cpuProfile != "" {
			stop, err := startCPUProfile(*cpuProfile)
			if err != nil {
				fmt.Fprintf(stderr, "ferry: %v\n", err)
				return exitFailed
			}
			defer stop()
		}
		return runConnector(ctx, cfg, warnings, stderr, runOpts{until: until, progressEvery: *progressEvery})
	}
}

func loadConfig(path string, environ []string, sets []string) (config.Config, []string, error) {
	var file []byte
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return config.Config{}, nil, fmt.Errorf("read config file: %w", err)
		}
		file = b
	}
	return config.Load(config.Sources{File: file, Environ: environ, Sets: sets})
}

func printConfigErrors(w io.Writer, err error) {
	fmt.Fprintln(w, "ferry: invalid configuration:")
	for _, line := range splitJoined(err) {
		fmt.Fprintf(w, "  - %s\n", line)
	}
}

// printWarnings lists Load's warnings for the commands without a logger;
// ferry run logs them instead.
func printWarnings(w io.Writer, warnings []string) {
	for _, warning := range warnings {
		fmt.Fprintf(w, "ferry: warning: %s\n", warning)
	}
}

// splitJoined lists the errors of an errors.Join tree, one line each.
func splitJoined(err error) []string {
	var joined interface{ Unwrap() []error }
	if errors.As(err, &joined) {
		var out []string
		for _, e := range joined.Unwrap() {
			out = append(out, splitJoined(e)...)
		}
		return out
	}
	return strings.Split(err.Error(), "\n")
}

func lookupEnv(environ []string, name string) string {
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v
		}
	}
	return ""
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}
