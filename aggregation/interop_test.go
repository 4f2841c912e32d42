package aggregation

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// kinesisJSON is one line of scripts/kpl-deaggregate.js's input and output.
type kinesisJSON struct {
	Aggregate       int    `json:"aggregate"`
	PartitionKey    string `json:"partitionKey"`
	ExplicitHashKey string `json:"explicitHashKey,omitempty"`
	Data            []byte `json:"data"`
}

// repoRoot walks up from the working directory to the directory of go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}

// TestInteropWithAWSKinesisAgg de-aggregates ferry's aggregates with the npm
// package aws-kinesis-agg (through scripts/kpl-deaggregate.js), an
// independent implementation of the format, MD5 checks included.
func TestInteropWithAWSKinesisAgg(t *testing.T) {
	root := repoRoot(t)
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat(filepath.Join(root, "node_modules", "aws-kinesis-agg", "package.json"))
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("node and node_modules/aws-kinesis-agg are required in CI (run npm ci): %v", err)
		}
		t.Skipf("needs node and node_modules/aws-kinesis-agg (run npm ci): %v", err)
	}

	rng := rand.New(rand.NewPCG(7, 11))
	bin := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	many := func(n int, ehk bool) []Record {
		recs := make([]Record, n)
		for i := range recs {
			recs[i] = Record{PartitionKey: fmt.Sprintf("key-%d", rng.IntN(n/3+1)), Data: bin(rng.IntN(300))}
			if ehk {
				recs[i].ExplicitHashKey = fmt.Sprint(rng.Uint64())
			}
		}
		return recs
	}
	// Records with and without explicit hash keys in one aggregate.
	mixed := []Record{
		{PartitionKey: "m", ExplicitHashKey: "99", Data: []byte("with")},
		{PartitionKey: "m", Data: []byte("without")},
		{PartitionKey: "n", ExplicitHashKey: "7", Data: []byte("with")},
	}
	aggregates := [][]Record{
		{{PartitionKey: "one", Data: []byte("single record")}},
		{{PartitionKey: "empty", Data: []byte{}}},
		{{PartitionKey: "clé-ключ-键-🔑", Data: []byte("unicode")}, {PartitionKey: "ключ", Data: []byte("ключ")}, {PartitionKey: "clé-ключ-键-🔑", Data: []byte{0}}},
		{
			{PartitionKey: "a", ExplicitHashKey: "0", Data: bin(10)},
			{PartitionKey: "b", ExplicitHashKey: "340282366920938463463374607431768211455", Data: bin(200)},
			{PartitionKey: "a", ExplicitHashKey: "0", Data: bin(0)},
		},
		{{PartitionKey: strings.Repeat("k", 256), Data: bin(16384)}, {PartitionKey: strings.Repeat("k", 128), Data: bin(127)}},
		{{PartitionKey: "binary", Data: bin(1 << 20)}},
		many(500, false),
		many(500, true),
		keys(20000, "k%d"), // indexes past 16383
		mixed,
	}

	var stdin bytes.Buffer
	enc := json.NewEncoder(&stdin)
	var want []kinesisJSON
	for i, recs := range aggregates {
		data, pk, ehk := aggregate(t, 1<<30, recs)
		if err := enc.Encode(kinesisJSON{PartitionKey: pk, ExplicitHashKey: ehk, Data: data}); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			w := kinesisJSON{Aggregate: i, PartitionKey: r.PartitionKey, ExplicitHashKey: r.ExplicitHashKey, Data: r.Data}
			if i == len(aggregates)-1 && w.ExplicitHashKey == "" {
				// aws-kinesis-agg 4.2.8 quirk: protobufjs defaults an absent
				// explicit_hash_key_index to 0, so a record without an
				// explicit hash key comes back with the table's first one.
				// (Deaggregate and the KCL check presence.)
				w.ExplicitHashKey = mixed[0].ExplicitHashKey
			}
			want = append(want, w)
		}
	}

	cmd := exec.CommandContext(t.Context(), node, filepath.Join("scripts", "kpl-deaggregate.js"))
	cmd.Dir = root
	cmd.Stdin = &stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node scripts/kpl-deaggregate.js: %v\n%s", err, stderr.Bytes())
	}

	var got []kinesisJSON
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 8<<20)
	for sc.Scan() {
		var r kinesisJSON
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("output line %d: %v: %.200s", len(got)+1, err, sc.Bytes())
		}
		got = append(got, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("aws-kinesis-agg returned %d user records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Aggregate != w.Aggregate || g.PartitionKey != w.PartitionKey || g.ExplicitHashKey != w.ExplicitHashKey || !bytes.Equal(g.Data, w.Data) {
			t.Fatalf("user record %d = {aggregate %d, %q, %q, %d bytes}, want {aggregate %d, %q, %q, %d bytes}", i,
				g.Aggregate, g.PartitionKey, g.ExplicitHashKey, len(g.Data), w.Aggregate, w.PartitionKey, w.ExplicitHashKey, len(w.Data))
		}
	}
}
