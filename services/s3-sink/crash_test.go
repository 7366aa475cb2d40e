package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
)

// buildSink compiles this service into dir (without -race: the subprocess
// is the system under test, the race detector runs in the test process).
func buildSink(t testing.TB, src, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "s3-sink")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the sink: %v\n%s", err, out)
	}
	return bin
}

// proc is one run of the sink binary.
type proc struct {
	cmd  *exec.Cmd
	done chan error
}

func startProc(t testing.TB, bin string, env map[string]string, logf *os.File) *proc {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the sink: %v", err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) signal(t testing.TB, sig syscall.Signal) error {
	t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case err := <-p.done:
		return err
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		return <-p.done
	}
}

func (h *harness) countObjects(ctx context.Context, prefix string) int {
	n := 0
	p := s3.NewListObjectsV2Paginator(h.s3.Client(), &s3.ListObjectsV2Input{Bucket: aws.String(testBucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return -1
		}
		n += len(page.Contents)
	}
	return n
}

// crashCase is one SIGKILL run.
type crashCase struct {
	topic, prefix string
	n, kills      int
	batch         int           // records per produced batch
	every         time.Duration // pause between batches
	env           map[string]string
	pathOf        func(e event) string
	gen           func(n, partitions int, base time.Time) []event // default genEvents
	// drainAtEnd: the last files stay open when the data ends, so the
	// final run is stopped with SIGTERM (which uploads them) once every
	// record has been handled, instead of after every record is in S3.
	drainAtEnd bool
}

// TestCrashExactlyOnce SIGKILLs the sink binary at random moments while it
// sinks 204,000 records over 6 partitions, restarting it each time; at the
// end S3 holds every record exactly once, in offset order. Rotation is by
// count only (34,000 records per partition, 1,000 per file, so every file
// completes), the deterministic mode: replays rewrite identical objects.
func TestCrashExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and kills the binary")
	}
	runCrash(t, crashCase{
		topic: "crash", prefix: "crash", n: 204_000, kills: 12, batch: 1000, every: 120 * time.Millisecond,
		env:    map[string]string{"S3_SINK_FLUSH_RECORDS": "1000", "S3_SINK_CODEC": "snappy"},
		pathOf: func(e event) string { return fmt.Sprintf("partition=%d", e.Partition) },
	})
}

// TestCrashWallClockFieldPartitioner: with a field partitioner several
// files per partition are open and a short wall-clock rotation cuts them
// at different records on every run, so replays cannot rely on identical
// rewrites; adopting objects previous runs completed (HEAD + record count,
// If-None-Match writes) keeps S3 exactly once across SIGKILLs.
func TestCrashWallClockFieldPartitioner(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and kills the binary")
	}
	runCrash(t, crashCase{
		topic: "crashfield", prefix: "cf", n: 30_000, kills: 10, batch: 300, every: 100 * time.Millisecond,
		env: map[string]string{
			"S3_SINK_PARTITIONER": "field", "S3_SINK_PARTITION_FIELD": "country",
			"S3_SINK_FLUSH_RECORDS": "400", "S3_SINK_ROTATE_MAX_OPEN": "150ms",
		},
		pathOf: func(e event) string { return "country=" + e.Country },
	})
}

// TestCrashFieldPartitionerDeterministic: a field partitioner keeps four
// files open per partition and rotation is by count only, so every file
// rotation rotates all four and commits on a boundary of every path;
// replays after SIGKILLs cut the same files again. Countries cycle per
// partition so a rotation happens every 397 records (the 100th record of
// one country) and the data ends exactly on one.
func TestCrashFieldPartitionerDeterministic(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and kills the binary")
	}
	const perPart = 397 * 13
	runCrash(t, crashCase{
		topic: "crashdet", prefix: "cd", n: 6 * perPart, kills: 10, batch: 300, every: 100 * time.Millisecond,
		env:    map[string]string{"S3_SINK_PARTITIONER": "field", "S3_SINK_PARTITION_FIELD": "country", "S3_SINK_FLUSH_RECORDS": "100"},
		pathOf: func(e event) string { return "country=" + e.Country },
		gen: func(n, partitions int, base time.Time) []event {
			out := genEvents(n, partitions, base)
			for i := range out {
				out[i].Country = countries[out[i].Offset%4]
			}
			return out
		},
	})
}

// TestCrashOpenFilesCap: S3_SINK_MAX_OPEN_FILES=2 while a sliding window
// of countries (each active for two phases of 100 records, alternating
// record by record) needs a third file at every phase change, so the
// least recently written file is completed early over and over, the
// commit is held at its start, and every second early rotation rotates
// all files; no file ever fills. SIGKILLs at random moments still leave
// every record exactly once (no wall clock: replays cut the same files).
func TestCrashOpenFilesCap(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test builds and kills the binary")
	}
	runCrash(t, crashCase{
		topic: "crashcap", prefix: "cc", n: 30_000, kills: 10, batch: 300, every: 100 * time.Millisecond,
		env: map[string]string{"S3_SINK_PARTITIONER": "field", "S3_SINK_PARTITION_FIELD": "country",
			"S3_SINK_FLUSH_RECORDS": "1000", "S3_SINK_MAX_OPEN_FILES": "2", "S3_SINK_COMMIT_INTERVAL": "20ms"},
		drainAtEnd: true,
		pathOf:     func(e event) string { return "country=" + e.Country },
		gen: func(n, partitions int, base time.Time) []event {
			out := genEvents(n, partitions, base)
			for i := range out {
				out[i].Country = countries[(out[i].Offset/100+out[i].Offset%2)%4]
			}
			return out
		},
	})
}

// waitHandled polls the sink's metrics until every partition of topic has
// no unread record left (each was handled: written to an open file, dead-
// lettered or skipped).
func waitHandled(t *testing.T, url, topic string, partitions int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		done := 0
		for p := 0; p < partitions; p++ {
			if v, ok := scrape(t, url, fmt.Sprintf(`sluice_sink_unread_records{partition="%d",sink="s3",topic="%s"}`, p, topic)); ok && v == 0 {
				done++
			}
		}
		if done == partitions {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %d of %d partitions of %s handled", within, done, partitions, topic)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func runCrash(t *testing.T, c crashCase) {
	src, err := os.Getwd() // before s3test changes the working directory
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	bin := buildSink(t, src, tmp)
	h := newHarness(t)
	topic, n, kills := c.topic, c.n, c.kills
	h.kc.CreateTopic(topic, 6, nil)
	gen := c.gen
	if gen == nil {
		gen = genEvents
	}
	events := gen(n, 6, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	id := h.reg.Register(t, topic+"-value", eventSchema)
	codec := mustCodec(t)
	msgs := make([]kafkago.Message, n)
	for i, e := range events {
		msgs[i] = kafkago.Message{Topic: topic, Partition: e.Partition, Time: e.TS, Value: encodeEvent(t, codec, id, e)}
	}

	env := h.env(map[string]string{
		"S3_SINK_TOPICS": topic, "S3_SINK_PREFIX": c.prefix, "LOG_LEVEL": "info",
		"S3_SINK_SESSION_TIMEOUT": "1500ms", "S3_SINK_HEARTBEAT_INTERVAL": "200ms",
	})
	for k, v := range c.env {
		env[k] = v
	}
	logf, err := os.Create(filepath.Join(tmp, "sink.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			lines := strings.Split(string(b), "\n")
			t.Logf("sink log (last 60 lines):\n%s", strings.Join(lines[max(0, len(lines)-60):], "\n"))
		}
	})

	// The producer trickles the records in over ~25s so the kills land
	// while the sink is consuming, buffering and uploading.
	w := h.writer(t)
	produced := make(chan error, 1)
	go func() {
		ctx := kafkatest.Context(t, 3*time.Minute)
		batch := c.batch
		tick := time.NewTicker(c.every)
		defer tick.Stop()
		for i := 0; i < n; i += batch {
			if err := w.WriteMessages(ctx, msgs[i:min(i+batch, n)]...); err != nil {
				produced <- fmt.Errorf("producing batch at %d: %w", i, err)
				return
			}
			<-tick.C
		}
		produced <- nil
	}()

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	midway, killed, lastObjs := 0, 0, 0
	var prodErr error
	prodDone := false
	for killed < kills || !prodDone {
		env["S3_SINK_ADMIN_ADDR"] = freeAddr(t)
		p := startProc(t, bin, env, logf)
		// Wait until the process owns partitions (a generation started),
		// then crash it at a random moment of its work.
		deadline := time.Now().Add(30 * time.Second)
		for {
			if v, ok := scrape(t, "http://"+env["S3_SINK_ADMIN_ADDR"]+"/metrics", `sluice_sink_generations_total{sink="s3"}`); ok && v >= 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sink run %d joined no generation within 30s", killed)
			}
			select {
			case err := <-p.done:
				t.Fatalf("sink exited on its own before kill %d: %v", killed, err)
			case <-time.After(20 * time.Millisecond):
			}
		}
		wait := time.Duration(rng.IntN(1500)) * time.Millisecond
		select {
		case err := <-p.done:
			t.Fatalf("sink exited on its own before kill %d: %v", killed, err)
		case <-time.After(wait): // the crash moment, not a synchronisation
		}
		_ = p.signal(t, syscall.SIGKILL)
		killed++
		if !prodDone {
			select {
			case prodErr = <-produced:
				prodDone = true
			default:
			}
		}
		objs := h.countObjects(t.Context(), c.prefix+"/")
		if objs > lastObjs {
			midway++
		}
		lastObjs = max(lastObjs, objs)
		fmt.Fprintf(logf, "--- test: SIGKILL %d %s into the generation, %d objects so far\n", killed, wait, objs)
		t.Logf("SIGKILL %d %s into the generation: %d objects so far (producer done: %v)", killed, wait, objs, prodDone)
	}
	if prodErr != nil {
		t.Fatal(prodErr)
	}
	env["S3_SINK_ADMIN_ADDR"] = freeAddr(t)
	p := startProc(t, bin, env, logf)
	if c.drainAtEnd {
		waitHandled(t, "http://"+env["S3_SINK_ADMIN_ADDR"]+"/metrics", topic, 6, 3*time.Minute)
	} else {
		h.waitRecords(t, c.prefix+"/", n, 3*time.Minute)
	}
	if err := p.signal(t, syscall.SIGTERM); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	objs, err := h.objects(t.Context(), c.prefix+"/")
	if err != nil {
		t.Fatal(err)
	}
	checkExactlyOnce(t, topic, c.prefix, objs, events, c.pathOf)
	if midway < 3 {
		t.Fatalf("only %d of %d runs wrote objects before being killed; the crashes did not hit a working sink", midway, killed)
	}
	t.Logf("%d kills (%d mid-stream), %d objects, %d records exactly once", killed, midway, len(objs), n)
}
