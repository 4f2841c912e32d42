// Command fastsink runs the fast Kinesis sink (integration/internal/fastsink) as a process of its
// own, so that a benchmark can count the CPU of the process under test without the sink's.
//
//	fastsink [-listen 127.0.0.1:0] [-shards 4] [-kpl]
//
// It prints its base URL (http://127.0.0.1:PORT, the Kinesis endpoint) as the first line on
// stdout. GET /stats on that URL answers the counters as JSON; on SIGTERM or SIGINT it prints them
// as one JSON line on stdout and exits 0. GET /progress answers {"UserRecords":N} cheaply, for
// polling (user records accepted, duplicates included). Every other request goes to the sink (PutRecords and
// friends; the SDK posts to /).
//
// With -kpl, records in the KPL aggregated format (magic F3 89 9A C2) are unpacked and every user
// record inside is counted by its id (the prefix up to and including the second '|'); the User*
// fields count user records, plain and aggregated together (merged when they are asked for, which
// costs a copy of every id: ask once, at the end). The sink's own counters count Kinesis records:
// an aggregate's identity is its first and last user id and its size, a plain record's its user
// id. Without -kpl the sink's default identity is used and the User* fields equal the sink's.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"hash/maphash"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferrylabs/ferry/aggregation"
	"github.com/ferrylabs/ferry/integration/internal/fastsink"
	"github.com/ferrylabs/ferry/integration/internal/history"
)

// Stats is what GET /stats and the exit line report.
type Stats struct {
	fastsink.Stats
	KPL                bool  // -kpl was given
	Aggregated         int64 // Kinesis records in the KPL aggregated format
	BadAggregates      int64 // aggregated records that did not parse
	UserRecords        int64 // user records (plain records plus the contents of aggregates)
	UserDistinct       int64 // distinct user record ids
	UserDuplicates     int64 // user records whose id had been seen before
	UptimeMilliseconds int64
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	shards := flag.Int("shards", 4, "shards per stream")
	kpl := flag.Bool("kpl", false, "unpack KPL aggregated records and count the user records inside")
	throttleEvery := flag.Int("throttle-every", 0, "throttle one entry in N (per-entry ProvisionedThroughputExceededException); 0: none")
	flag.Parse()
	if err := run(*listen, *shards, *kpl, *throttleEvery); err != nil {
		fmt.Fprintln(os.Stderr, "fastsink:", err)
		os.Exit(1)
	}
}

func run(listen string, shards int, kpl bool, throttleEvery int) error {
	var users *userIDs
	opts := []fastsink.Option{fastsink.WithShards(shards), fastsink.WithThrottle(throttleEvery)}
	if kpl {
		users = newUserIDs()
		opts = append(opts, fastsink.WithID(users.id))
	}
	// fastsink.New serves on a port of its own; we only need its handler, behind a mux that adds
	// GET /stats on the same port, so its own server is closed at once.
	sink, err := fastsink.New(opts...)
	if err != nil {
		return err
	}
	sink.Close()
	start := time.Now()
	stats := func() Stats {
		st := Stats{Stats: sink.Stats(), KPL: kpl, UptimeMilliseconds: time.Since(start).Milliseconds()}
		if users != nil {
			st.Aggregated, st.BadAggregates = users.aggregated.Load(), users.bad.Load()
			st.UserRecords, st.UserDistinct, st.UserDuplicates = users.merge(sink.Counts())
		} else {
			st.UserRecords, st.UserDistinct, st.UserDuplicates = st.Records, st.Distinct, st.Duplicates
		}
		return st
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/progress" {
			n := sink.Stats().Records
			if users != nil {
				n += users.inAggregates.Load() - users.aggregated.Load()
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, "{\"UserRecords\":%d}\n", n)
			return
		}
		if r.Method == http.MethodGet && r.URL.Path == "/stats" {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(stats())
			return
		}
		sink.ServeHTTP(w, r)
	})
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 5 * time.Minute}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Println("http://" + ln.Addr().String())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case err := <-served:
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	b, _ := json.Marshal(stats())
	fmt.Println(string(b))
	return nil
}

// userIDs counts the user records inside aggregates by id, sharded to keep lock contention low.
// Plain records are counted by the sink itself (their identity is their user id).
type userIDs struct {
	seed            maphash.Seed
	shards          [64]idShard
	aggregated, bad atomic.Int64
	inAggregates    atomic.Int64 // user records in aggregates
}

type idShard struct {
	mu sync.Mutex
	m  map[string]int32
	_  [48]byte
}

func newUserIDs() *userIDs {
	u := &userIDs{seed: maphash.MakeSeed()}
	for i := range u.shards {
		u.shards[i].m = map[string]int32{}
	}
	return u
}

// count counts one delivery of a user record with this id.
func (u *userIDs) count(id []byte) {
	sh := &u.shards[maphash.Bytes(u.seed, id)%uint64(len(u.shards))]
	sh.mu.Lock()
	sh.m[string(id)]++
	sh.mu.Unlock()
}

// id is the sink's identity function (fastsink.WithID): it counts the user records of an
// aggregate and returns the Kinesis record's identity.
func (u *userIDs) id(data []byte) string {
	if !aggregation.IsAggregated(data) {
		return string(userID(data))
	}
	u.aggregated.Add(1)
	users, err := aggregation.Deaggregate(data, "")
	recs := make([][]byte, len(users))
	for i, r := range users {
		recs[i] = r.Data
	}
	if err != nil || len(recs) == 0 {
		u.bad.Add(1)
		return aggPrefix + "bad|" + strconv.FormatUint(maphash.Bytes(u.seed, data), 16)
	}
	for _, r := range recs {
		u.count(userID(r))
	}
	u.inAggregates.Add(int64(len(recs)))
	return aggPrefix + string(userID(recs[0])) + string(userID(recs[len(recs)-1])) + strconv.Itoa(len(recs))
}

// aggPrefix starts the sink identity of an aggregate; no user id starts with it.
const aggPrefix = "\x00aggregate|"

// merge adds the plain records the sink counted (sinkCounts, by identity) to the user records of
// the aggregates and returns the user records, the distinct ids and the duplicates.
func (u *userIDs) merge(sinkCounts map[string]int) (records, distinct, dups int64) {
	all := make(map[string]int, len(sinkCounts))
	for id, n := range sinkCounts {
		if !strings.HasPrefix(id, aggPrefix) {
			all[id] += n
		}
	}
	for i := range u.shards {
		sh := &u.shards[i]
		sh.mu.Lock()
		for id, n := range sh.m {
			all[id] += int(n)
		}
		sh.mu.Unlock()
	}
	for _, n := range all {
		records += int64(n)
	}
	distinct = int64(len(all))
	return records, distinct, records - distinct
}

// userID is the identity of a user record: its "topic|index|" prefix.
func userID(data []byte) []byte { return []byte(history.DefaultID(data)) }
