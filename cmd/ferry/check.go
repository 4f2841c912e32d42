package main

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ferrylabs/ferry/config"
	"github.com/ferrylabs/ferry/connector"
)

// check validates what ferry run would need, without joining the group:
// Kafka answers and has the topics, every stream is ACTIVE. The
// configuration warnings are shown but are not problems: ferry run starts
// with them.
func check(ctx context.Context, cfg config.Config, warnings []string, w io.Writer) int {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	problems := 0
	report := func(ok bool, format string, args ...any) {
		mark := "ok  "
		if !ok {
			mark = "FAIL"
			problems++
		}
		fmt.Fprintf(w, "[%s] %s\n", mark, fmt.Sprintf(format, args...))
	}
	report(true, "configuration is valid")
	reportWarnings(w, warnings)

	topics := checkKafka(ctx, cfg, report)
	if len(topics) > 0 {
		fmt.Fprintf(w, "       topics consumed: %v\n", topics)
	}

	if cfg.Decode.Value == config.DecodeAuto {
		if types, err := connector.RegistryTypes(ctx, cfg.Decode); err != nil {
			report(false, "schema registry %s: %v", cfg.Decode.Registry.URL, err)
		} else {
			report(true, "schema registry %s answers (schema types %v)", cfg.Decode.Registry.URL, types)
		}
	}

	kin, err := connector.NewKinesisClient(ctx, cfg.Kinesis, 1, nil)
	if err != nil {
		report(false, "kinesis client: %v", err)
	} else {
		seen := map[string]bool{}
		for _, r := range cfg.Routes {
			if seen[r.Stream] {
				continue
			}
			seen[r.Stream] = true
			st, err := connector.StreamStatus(ctx, kin, r.Stream)
			switch {
			case err != nil:
				report(false, "kinesis stream %q: %v", r.Stream, err)
			case st != "ACTIVE" && st != "UPDATING":
				report(false, "kinesis stream %q is %s, not ACTIVE", r.Stream, st)
			default:
				report(true, "kinesis stream %q is %s", r.Stream, st)
			}
		}
	}
	if problems > 0 {
		fmt.Fprintf(w, "%d problem(s) found%s\n", problems, warningCount(warnings))
		return exitFailed
	}
	fmt.Fprintf(w, "all checks passed%s\n", warningCount(warnings))
	return exitOK
}

// reportWarnings prints each configuration warning in check's format.
func reportWarnings(w io.Writer, warnings []string) {
	for _, warning := range warnings {
		fmt.Fprintf(w, "[WARN] %s\n", warning)
	}
}

// warningCount is the " (N warning(s))" suffix of check's verdict.
func warningCount(warnings []string) string {
	if len(warnings) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d warning(s))", len(warnings))
}

func checkKafka(ctx context.Context, cfg config.Config, report func(bool, string, ...any)) []string {
	opts, err := connector.KafkaClientOpts(ctx, cfg, nil)
	if err != nil {
		report(false, "kafka client: %v", err)
		return nil
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		report(false, "kafka client: %v", err)
		return nil
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	details, err := adm.ListTopics(ctx)
	if err != nil {
		// The wording of ferry run's start check: the cause and what to set.
		report(false, "kafka brokers %v: %v", cfg.Kafka.Brokers, connector.ClassifyKafkaError(err, cfg.Kafka))
		return nil
	}
	report(true, "kafka brokers %v answer", cfg.Kafka.Brokers)
	var consumed []string
	if cfg.Kafka.TopicRegex != "" {
		re := regexp.MustCompile(cfg.Kafka.TopicRegex) // validated
		for _, t := range details.Names() {
			if re.MatchString(t) {
				consumed = append(consumed, t)
			}
		}
		report(len(consumed) > 0, "topic_regex %q matches %d topic(s)", cfg.Kafka.TopicRegex, len(consumed))
	} else {
		for _, t := range cfg.Kafka.Topics {
			d, ok := details[t]
			if !ok || d.Err != nil {
				report(false, "kafka topic %q does not exist", t)
				continue
			}
			report(true, "kafka topic %q has %d partition(s)", t, len(d.Partitions))
			consumed = append(consumed, t)
		}
	}
	if cfg.UsesDLQ() {
		_, ok := details[cfg.Delivery.DLQTopic]
		report(ok, "dead-letter topic %q exists", cfg.Delivery.DLQTopic)
	}
	sort.Strings(consumed)
	return consumed
}
