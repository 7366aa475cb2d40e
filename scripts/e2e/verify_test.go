package e2e

import "testing"

// The checks must fail on each defect the pipeline could have; each case
// injects one into otherwise consistent data.
func TestChecksCatchInjectedDefects(t *testing.T) {
	t.Parallel()
	base := func() (map[Loc]string, map[string]Loc) {
		kafka := map[Loc]string{}
		acked := map[string]Loc{}
		for i := 0; i < 10; i++ {
			l := Loc{"orders", i % 2, int64(i / 2)}
			id := "o" + string(rune('a'+i))
			kafka[l] = id
			acked[id] = l
		}
		return kafka, acked
	}
	idsOf := func(kafka map[Loc]string) []string {
		var ids []string
		for _, id := range kafka {
			ids = append(ids, id)
		}
		return ids
	}
	docsOf := func(kafka map[Loc]string) map[string]string {
		d := map[string]string{}
		for l, id := range kafka {
			d[l.DocID()] = id
		}
		return d
	}
	cases := []struct {
		name   string
		inject func(kafka map[Loc]string, acked map[string]Loc, s3 *[]string, docs map[string]string, rejected *[]string)
		kind   string
	}{
		{"clean", func(map[Loc]string, map[string]Loc, *[]string, map[string]string, *[]string) {}, ""},
		{"sink committed before writing (record lost)", func(_ map[Loc]string, _ map[string]Loc, s3 *[]string, _ map[string]string, _ *[]string) {
			*s3 = (*s3)[1:]
		}, "s3-missing"},
		{"replay wrote a second object", func(_ map[Loc]string, _ map[string]Loc, s3 *[]string, _ map[string]string, _ *[]string) {
			*s3 = append(*s3, (*s3)[0])
		}, "s3-duplicate"},
		{"gateway acked before Kafka", func(kafka map[Loc]string, _ map[string]Loc, _ *[]string, _ map[string]string, _ *[]string) {
			delete(kafka, Loc{"orders", 0, 0})
		}, "acked-missing-from-kafka"},
		{"search document lost", func(_ map[Loc]string, _ map[string]Loc, _ *[]string, docs map[string]string, _ *[]string) {
			delete(docs, "orders+1+0")
		}, "search-missing"},
		{"search id not deterministic", func(_ map[Loc]string, _ map[string]Loc, _ *[]string, docs map[string]string, _ *[]string) {
			docs["random-id"] = docs["orders+1+0"]
		}, "search-count"},
		{"invalid record produced", func(_ map[Loc]string, _ map[string]Loc, _ *[]string, _ map[string]string, rejected *[]string) {
			*rejected = append(*rejected, "oc")
		}, "rejected-in-kafka"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			kafka, acked := base()
			s3 := idsOf(kafka)
			docs := docsOf(kafka)
			rejected := []string{"bad-1"}
			tc.inject(kafka, acked, &s3, docs, &rejected)
			var p Problems
			CheckAcked(&p, acked, kafka)
			CheckAbsent(&p, rejected, kafka)
			CheckExactlyOnce(&p, "s3", kafka, "orders", s3)
			CheckDocIDs(&p, kafka, "orders", docs)
			if tc.kind == "" {
				if !p.Empty() {
					t.Fatalf("clean data reported:\n%s", p.String())
				}
				return
			}
			if p.Count(tc.kind) == 0 {
				t.Fatalf("defect not caught as %s; got:\n%s", tc.kind, p.String())
			}
		})
	}
}
