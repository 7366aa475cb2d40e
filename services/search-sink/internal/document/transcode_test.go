package document

import (
	"context"
	"errors"
	"math"
	"math/big"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/wire"
)

// A schema exercising what the two decoding paths must agree on: unions of
// several records (written generically), maps, nested arrays, enums,
// floats, every logical type goavro knows and one it does not.
const diffSchema = `{"type":"record","name":"D","namespace":"x","fields":[
 {"name":"b","type":"boolean"},{"name":"i","type":"int"},{"name":"l","type":"long"},
 {"name":"f","type":"float"},{"name":"d","type":"double"},{"name":"s","type":"string"},
 {"name":"raw","type":"bytes"},{"name":"fx","type":{"type":"fixed","name":"F4","size":4}},
 {"name":"e","type":{"type":"enum","name":"E","symbols":["RED","GREEN","BLUE"]}},
 {"name":"ts","type":{"type":"long","logicalType":"timestamp-millis"}},
 {"name":"tus","type":{"type":"long","logicalType":"timestamp-micros"}},
 {"name":"lts","type":{"type":"long","logicalType":"local-timestamp-millis"}},
 {"name":"day","type":{"type":"int","logicalType":"date"}},
 {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
 {"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
 {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":20,"scale":4}},
 {"name":"fdec","type":{"type":"fixed","name":"FD","size":6,"logicalType":"decimal","precision":12,"scale":0}},
 {"name":"opt","type":["null","string"]},
 {"name":"multi","type":["null","long","string",{"type":"record","name":"A","fields":[{"name":"z","type":"int"},{"name":"a","type":["null","A"]}]},{"name":"B","type":"record","fields":[{"name":"y","type":"string"},{"name":"m","type":{"type":"map","values":"long"}}]}]},
 {"name":"arr","type":{"type":"array","items":{"type":"array","items":["null","double"]}}},
 {"name":"m","type":{"type":"map","values":{"type":"record","name":"V","fields":[{"name":"k","type":"E"},{"name":"at","type":["null",{"type":"long","logicalType":"timestamp-millis"}]}]}}},
 {"name":"_kafka","type":"string"}
]}`

func randomDiff(r *rand.Rand) map[string]any {
	str := func() string {
		b := make([]byte, r.Intn(12))
		for i := range b {
			b[i] = byte(r.Intn(256))
		}
		if r.Intn(2) == 0 {
			return "héllo \"q\" \n\t<" + string(b[:len(b)/2])
		}
		return string(b)
	}
	floats := []float64{0, -0.5, 1e21, 1e-7, 3.14159, math.NaN(), math.Inf(1), 123456789.125}
	multi := []any{nil, goavro.Union("long", r.Int63()-r.Int63()), goavro.Union("string", str()),
		goavro.Union("x.A", map[string]any{"z": int32(r.Intn(100)), "a": goavro.Union("x.A", map[string]any{"z": int32(1), "a": nil})}),
		goavro.Union("x.B", map[string]any{"y": str(), "m": map[string]any{"q": int64(1), "b": int64(2)}})}
	var arr []any
	for i := 0; i < r.Intn(3); i++ {
		var inner []any
		for j := 0; j < r.Intn(3); j++ {
			if r.Intn(3) == 0 {
				inner = append(inner, nil)
			} else {
				inner = append(inner, goavro.Union("double", floats[r.Intn(len(floats))]))
			}
		}
		arr = append(arr, inner)
	}
	m := map[string]any{}
	for i := 0; i < r.Intn(4); i++ {
		var at any
		if r.Intn(2) == 0 {
			at = goavro.Union("long.timestamp-millis", time.UnixMilli(r.Int63n(4e12)-2e12))
		}
		m[str()] = map[string]any{"k": []string{"RED", "GREEN", "BLUE"}[r.Intn(3)], "at": at}
	}
	var opt any
	if r.Intn(2) == 0 {
		opt = goavro.Union("string", str())
	}
	return map[string]any{
		"b": r.Intn(2) == 0, "i": int32(r.Int31() - r.Int31()), "l": r.Int63() - r.Int63(),
		"f": float32(floats[r.Intn(len(floats))]), "d": floats[r.Intn(len(floats))], "s": str(),
		"raw": []byte(str()), "fx": []byte{1, 2, 3, byte(r.Intn(256))}, "e": []string{"RED", "GREEN", "BLUE"}[r.Intn(3)],
		"ts": time.UnixMilli(r.Int63n(4e12) - 2e12), "tus": time.UnixMicro(r.Int63n(4e15) - 2e15), "lts": r.Int63n(1e12),
		"day": time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, r.Intn(40000)-20000),
		"tm":  time.Duration(r.Intn(86400000)) * time.Millisecond, "tu": time.Duration(r.Int63n(86400000000)) * time.Microsecond,
		"dec": new(big.Rat).SetFrac64(r.Int63()-r.Int63(), 10000), "fdec": new(big.Rat).SetInt64(r.Int63n(1<<40) - 1<<39),
		"opt": opt, "multi": multi[r.Intn(len(multi))], "arr": arr, "m": m, "_kafka": "shadowed",
	}
}

func diffBuilders(t testing.TB, dec DecimalMode) (native, direct *Builder, gc *goavro.Codec) {
	t.Helper()
	ac, err := avro.NewCodec(0, diffSchema)
	if err != nil {
		t.Fatal(err)
	}
	gc = ac.Codec
	namer, _ := NewNamer(ModeIndex, "<topic>-{yyyy.MM.dd}", "", "")
	src := fakeCodecs{3: {ID: 3, Schema: diffSchema, Codec: ac}}
	return NewBuilder(src, Options{Namer: namer, Decimal: dec, MetaField: "_kafka", Fields: true}),
		NewBuilder(src, Options{Namer: namer, Decimal: dec, MetaField: "_kafka"}), gc
}

func TestTranscodeMatchesGoavro(t *testing.T) {
	t.Parallel()
	for _, dec := range []DecimalMode{DecimalString, DecimalNumber} {
		native, direct, gc := diffBuilders(t, dec)
		r := rand.New(rand.NewSource(int64(dec) + 1))
		for i := 0; i < 500; i++ {
			bin, err := gc.BinaryFromNative(nil, randomDiff(r))
			if err != nil {
				t.Fatal(err)
			}
			m := &kafkago.Message{Topic: "t", Offset: int64(i), Value: wire.Encode(3, bin), Time: time.Unix(int64(i), 0)}
			a, err := native.Build(context.Background(), m)
			if err != nil {
				t.Fatalf("goavro path: %v", err)
			}
			b, err := direct.Build(context.Background(), m)
			if err != nil {
				t.Fatalf("transcoder: %v", err)
			}
			if string(a.Body) != string(b.Body) {
				t.Fatalf("record %d differs:\ngoavro:     %s\ntranscoder: %s", i, a.Body, b.Body)
			}
			if strings.Contains(string(a.Body), "shadowed") {
				t.Fatal("record field _kafka was not replaced by the metadata")
			}
		}
	}
}

// FuzzTranscode: on any payload the transcoder never panics, and whenever
// goavro decodes the payload the transcoder produces the same document.
func FuzzTranscode(f *testing.F) {
	limitGoavro(f)
	native, direct, gc := diffBuilders(f, DecimalString)
	r := rand.New(rand.NewSource(9))
	for i := 0; i < 8; i++ {
		bin, _ := gc.BinaryFromNative(nil, randomDiff(r))
		f.Add(bin)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, payload []byte) {
		m := &kafkago.Message{Topic: "t", Value: wire.Encode(3, payload), Time: time.Unix(1, 0)}
		b, errB := direct.Build(context.Background(), m)
		a, errA := native.Build(context.Background(), m)
		// The transcoder is stricter in four ways: overflowing varints, ints beyond 32 bits (goavro
		// truncates them), block counts larger than the data could hold, and its decode budget
		// also counts the field names and enum symbols it writes.
		if errA == nil && errB != nil && !strings.Contains(errB.Error(), "exceeds the data") && !strings.Contains(errB.Error(), "out of range") &&
			!strings.Contains(errB.Error(), "overflows") && !errors.Is(errB, avro.ErrBudget) {
			t.Fatalf("goavro decodes but the transcoder fails: %v", errB)
		}
		if errA == nil && errB == nil && string(a.Body) != string(b.Body) {
			t.Fatalf("documents differ:\ngoavro:     %s\ntranscoder: %s", a.Body, b.Body)
		}
	})
}

// limitGoavro lowers goavro's block limits (process globals, default
// MaxInt32: a few hostile bytes make it pre-allocate a huge map) for the
// fuzz targets, which run after the parallel tests.
func limitGoavro(tb testing.TB) {
	count, size := goavro.MaxBlockCount, goavro.MaxBlockSize
	goavro.MaxBlockCount, goavro.MaxBlockSize = 1<<12, 1<<20
	tb.Cleanup(func() { goavro.MaxBlockCount, goavro.MaxBlockSize = count, size })
}

func TestTopLevelNullableRecord(t *testing.T) {
	t.Parallel()
	schema := `["null",` + diffSchema + `]`
	ac, err := avro.NewCodec(0, schema)
	if err != nil {
		t.Fatal(err)
	}
	gc := ac.Codec
	namer, _ := NewNamer(ModeIndex, "<topic>-{yyyy.MM.dd}", "", "")
	src := fakeCodecs{4: {ID: 4, Schema: schema, Codec: ac}}
	native := NewBuilder(src, Options{Namer: namer, MetaField: "_kafka", Fields: true})
	direct := NewBuilder(src, Options{Namer: namer, MetaField: "_kafka"})
	r := rand.New(rand.NewSource(4))
	for i := 0; i < 100; i++ {
		var v any
		if i%10 != 0 {
			v = goavro.Union("x.D", randomDiff(r))
		}
		bin, err := gc.BinaryFromNative(nil, v)
		if err != nil {
			t.Fatal(err)
		}
		m := &kafkago.Message{Topic: "t", Offset: int64(i), Value: wire.Encode(4, bin), Time: time.Unix(int64(i), 0)}
		a, errA := native.Build(context.Background(), m)
		b, errB := direct.Build(context.Background(), m)
		if errA != nil || errB != nil {
			t.Fatalf("build: %v / %v", errA, errB)
		}
		if string(a.Body) != string(b.Body) {
			t.Fatalf("record %d differs:\ngoavro:     %s\ntranscoder: %s", i, a.Body, b.Body)
		}
		if v == nil {
			if !strings.HasPrefix(string(a.Body), `{"value":null,`) {
				t.Fatalf("null value document = %s", a.Body)
			}
			continue
		}
		if !strings.HasPrefix(string(a.Body), `{"b":`) || a.Fields == nil {
			t.Fatalf("nullable record not indexed as the record itself: %s", a.Body)
		}
	}
}
