package service

import (
	"fmt"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestLabelLimit(t *testing.T) {
	t.Parallel()
	over := prometheus.NewCounter(prometheus.CounterOpts{Name: "overflow_total"})
	l := NewLabelLimit(3, over)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				l.Value(fmt.Sprintf("t%d", (g*100+i)%10))
			}
		}()
	}
	wg.Wait()
	admitted := 0
	for i := range 10 {
		if l.Value(fmt.Sprintf("t%d", i)) != OtherLabel {
			admitted++
		}
	}
	if admitted != 3 {
		t.Fatalf("%d distinct values admitted, want 3", admitted)
	}
	var m dto.Metric
	if err := over.Write(&m); err != nil {
		t.Fatal(err)
	}
	if got := m.GetCounter().GetValue(); got < 7 {
		t.Fatalf("overflow counted %v, want at least 7", got)
	}
	var some string
	for i := range 10 {
		if v := fmt.Sprintf("t%d", i); l.Value(v) == v {
			some = v
			break
		}
	}
	l.Forget(some)
	if l.Value("fresh") != "fresh" {
		t.Fatal("a forgotten value's place was not freed")
	}
	if NewLabelLimit(0, nil).Value("x") != "x" {
		t.Fatal("an unbounded limit changed a value")
	}
}
