package acceptance_test

import (
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/pkg/testkit/registrytest"
)

// TestKillMidFlight runs the real binary, SIGKILLs it while clients are
// registering, and checks that every registration answered 200 survived
// with its id: in the other replica at once, and in the killed one after
// it restarts from the log.
func TestKillMidFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	t.Parallel()
	kc := kafkatest.Start(t)
	a := registrytest.Start(t, kc.Brokers())
	b := registrytest.Start(t, kc.Brokers())

	var mu sync.Mutex
	acked := map[string]int{} // schema -> id answered 200
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				schema := avroRecord("K", "w"+strconv.Itoa(w)+"_"+strconv.Itoa(i))
				id, _, err := register(a.URL(), "kill-"+strconv.Itoa(w), schema)
				if err != nil {
					continue // the process is gone: no promise was made
				}
				mu.Lock()
				acked[schema] = id
				mu.Unlock()
			}
		}()
	}
	eventually(t, 30*time.Second, "40 acknowledged registrations", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) >= 40, strconv.Itoa(len(acked))
	})
	a.Kill()
	close(stop)
	wg.Wait()

	check := func(name, base string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		for schema, id := range acked {
			code, body := getBody(t, base+"/schemas/ids/"+strconv.Itoa(id))
			var got struct {
				Schema string `json:"schema"`
			}
			_ = json.Unmarshal([]byte(body), &got)
			if code != 200 || got.Schema != schema {
				t.Fatalf("%s: acknowledged id %d answers %d %s", name, id, code, body)
			}
		}
	}
	eventually(t, time.Second, "replica b holding every acknowledged id", func() (bool, string) {
		_, body := getBody(t, b.URL()+"/schemas")
		var all []map[string]any
		_ = json.Unmarshal([]byte(body), &all)
		mu.Lock()
		defer mu.Unlock()
		return len(all) >= len(acked), strconv.Itoa(len(all)) + " versions"
	})
	check("other replica", b.URL())
	a.Restart(t)
	check("restarted replica", a.URL())
	_, sa := getBody(t, a.URL()+"/schemas")
	_, sb := getBody(t, b.URL()+"/schemas")
	if sa != sb {
		t.Fatal("restarted replica and the other replica disagree on /schemas")
	}
}
