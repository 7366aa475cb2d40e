package acceptance_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	skafka "github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/services/schema-registry/internal/srtest"
)

// TestThreeReplicasConcurrentRegistrations: 50 concurrent registrations
// spread over three replicas of one _schemas log, identical and distinct
// schemas mixed. Every distinct schema gets exactly one id, ids are
// unique, and all replicas answer the same within a second.
func TestThreeReplicasConcurrentRegistrations(t *testing.T) {
	t.Parallel()
	kc := kafkatest.Start(t)
	var reps []*srtest.Instance
	for i := 0; i < 3; i++ {
		reps = append(reps, srtest.Start(t, kc.Config(), srtest.Options{}))
	}
	const n = 50
	type answer struct {
		schema int
		id     int
		err    error
	}
	answers := make([]answer, n)
	var wg sync.WaitGroup
	startGate := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-startGate
			schema := i % 10                                  // 10 distinct schemas, each registered 5 times
			subject := "subject-" + strconv.Itoa(i%5)         // under 5 subjects
			text := avroRecord("R", "f"+strconv.Itoa(schema)) // distinct, mutually compatible
			id, _, err := register(reps[i%3].URL, subject, text)
			answers[i] = answer{schema, id, err}
		}()
	}
	close(startGate)
	wg.Wait()
	idOf := map[int]int{}     // schema -> id
	schemaOf := map[int]int{} // id -> schema
	for i, a := range answers {
		if a.err != nil {
			t.Fatalf("registration %d: %v", i, a.err)
		}
		if prev, ok := idOf[a.schema]; ok && prev != a.id {
			t.Fatalf("schema %d got two ids: %d and %d", a.schema, prev, a.id)
		}
		idOf[a.schema] = a.id
		if prev, ok := schemaOf[a.id]; ok && prev != a.schema {
			t.Fatalf("id %d given to schemas %d and %d", a.id, prev, a.schema)
		}
		schemaOf[a.id] = a.schema
	}
	if len(idOf) != 10 {
		t.Fatalf("%d distinct ids for 10 distinct schemas", len(idOf))
	}
	// All replicas converge on one state within a second of the last answer.
	eventually(t, time.Second, "replicas agreeing", func() (bool, string) {
		d0 := reps[0].Store.State().Dump()
		for i, r := range reps[1:] {
			if d := r.Store.State().Dump(); d != d0 {
				return false, fmt.Sprintf("replica %d differs from replica 0", i+1)
			}
		}
		return true, ""
	})
	// A replica started now replays the contested log to the same state.
	late := srtest.Start(t, kc.Config(), srtest.Options{})
	if got, want := late.Store.State().Dump(), reps[0].Store.State().Dump(); got != want {
		t.Fatalf("replay of the contested log differs:\n got %s\nwant %s", got, want)
	}
	// And answer the same over HTTP.
	for schema, id := range idOf {
		var first string
		for i, r := range reps {
			code, body := getBody(t, r.URL+"/schemas/ids/"+strconv.Itoa(id))
			if code != 200 {
				t.Fatalf("replica %d: id %d: %d %s", i, id, code, body)
			}
			if i == 0 {
				first = body
			} else if body != first {
				t.Fatalf("replica %d answers id %d (schema %d) differently", i, id, schema)
			}
		}
	}
	for s := 0; s < 5; s++ {
		var first string
		for i, r := range reps {
			_, body := getBody(t, r.URL+"/subjects/subject-"+strconv.Itoa(s)+"/versions")
			if trim(body) != "[1,2]" {
				t.Fatalf("replica %d: subject-%d versions %s, want [1,2] (two distinct schemas, each registered once)", i, s, body)
			}
			if i == 0 {
				first = body
			} else if body != first {
				t.Fatalf("replica %d lists subject-%d versions %s, replica 0 %s", i, s, body, first)
			}
		}
	}
}

// TestRestartFromLogIsIdentical: a replica started on an existing log
// rebuilds exactly the state the running one holds.
func TestRestartFromLogIsIdentical(t *testing.T) {
	t.Parallel()
	kc := kafkatest.Start(t)
	a := srtest.Start(t, kc.Config(), srtest.Options{})
	for i := 0; i < 5; i++ {
		if _, _, err := register(a.URL, "s-"+strconv.Itoa(i%2), avroRecord("R", "a"+strconv.Itoa(i))); err != nil && i < 2 {
			t.Fatal(err)
		}
	}
	ctx := kafkatest.Context(t, 30*time.Second)
	if _, err := a.Registry.DeleteVersion(ctx, "s-0", "1", false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Registry.SetConfig(ctx, "s-1", "FULL"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Registry.SetMode(ctx, "", "READONLY", false); err != nil {
		t.Fatal(err)
	}
	want := a.Store.State().Dump()
	a.Stop()
	b := srtest.Start(t, kc.Config(), srtest.Options{})
	if got := b.Store.State().Dump(); got != want {
		t.Fatalf("state after restart differs:\n got %s\nwant %s", got, want)
	}
}

// TestReadsConfluentWrittenLog: a _schemas topic holding records written
// by Confluent's registry (hand-written fixtures in their exact format) is
// served correctly.
func TestReadsConfluentWrittenLog(t *testing.T) {
	t.Parallel()
	kc := kafkatest.Start(t)
	kc.CreateTopic("_schemas", 1, map[string]string{"cleanup.policy": "compact"})
	recs := loadFixture(t, "../store/testdata/confluent_schemas.jsonl")
	w := kc.Clients().NewWriter(skafka.WriterOptions{Topic: "_schemas"})
	defer w.Close()
	msgs := make([]kafkago.Message, len(recs))
	for i, r := range recs {
		msgs[i] = kafkago.Message{Key: r.Key, Value: r.Value}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	in := srtest.Start(t, kc.Config(), srtest.Options{})
	checks := []struct{ path, want string }{
		{"/subjects", `["address-value","customers-value","orders-value","payments-value"]`},
		{"/subjects/orders-value/versions", `[1,2]`},
		{"/config", `{"compatibilityLevel":"FULL"}`},
		{"/config/payments-value", `{"compatibilityLevel":"NONE"}`},
		{"/mode/frozen-value", `{"mode":"READONLY"}`},
		{"/schemas/ids/1/subjects", `["orders-value","payments-value"]`},
		{"/subjects/address-value/versions/1/referencedby", `[4]`},
		{"/subjects/old-value/versions?deleted=true", `[1,2]`},
	}
	for _, c := range checks {
		code, body := getBody(t, in.URL+c.path)
		if code != 200 || trim(body) != c.want {
			t.Errorf("GET %s = %d %s, want %s", c.path, code, trim(body), c.want)
		}
	}
	if code, _ := getBody(t, in.URL+"/schemas/ids/7"); code != 404 {
		t.Errorf("hard-deleted id 7 answered %d", code)
	}
	// New registrations continue after Confluent's ids and versions.
	id, _, err := register(in.URL, "orders-value", `{"type":"record","name":"Order","namespace":"com.acme","fields":[{"name":"id","type":"long"},{"name":"note","type":["null","string"],"default":null},{"name":"x","type":"int","default":0}]}`)
	if err != nil || id != 9 {
		t.Fatalf("registration after fixtures: id %d, %v (want 9)", id, err)
	}
	code, body := getBody(t, in.URL+"/subjects/orders-value/versions/latest")
	if code != 200 || !contains(body, `"version":4`) {
		t.Fatalf("latest after registration = %s (want version 4: soft-deleted v3 keeps its number)", body)
	}
}
