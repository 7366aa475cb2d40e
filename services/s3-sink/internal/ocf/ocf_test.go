package ocf_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	hocf "github.com/hamba/avro/v2/ocf"
	"github.com/linkedin/goavro/v2"

	"github.com/sluicehq/sluice/services/s3-sink/internal/ocf"
	"github.com/sluicehq/sluice/services/s3-sink/internal/upload"
)

// memAPI keeps PutObject bodies; small files never go multipart.
type memAPI struct {
	upload.API
	objects map[string][]byte
}

func (m *memAPI) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	b, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	m.objects[*in.Key] = b
	return &s3.PutObjectOutput{}, nil
}

const schema = `{"type":"record","name":"Order","namespace":"test","fields":[
 {"name":"id","type":"long"},{"name":"item","type":"string"},
 {"name":"note","type":["null","string"],"default":null}]}`

func write(t testing.TB, api *memAPI, codec *goavro.Codec, key, compression string, n int) {
	t.Helper()
	up := upload.New(api, "b", key, "avro/binary", 5<<20, nil)
	f, err := ocf.Create(up, codec, compression)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		var note any
		if i%3 == 0 {
			note = goavro.Union("string", fmt.Sprintf("note %d", i))
		}
		rec := map[string]any{"id": int64(i), "item": fmt.Sprintf("item-%d", i), "note": note}
		bin, err := codec.BinaryFromNative(nil, rec)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Append(t.Context(), bin); err != nil {
			t.Fatal(err)
		}
	}
	if f.Records() != n {
		t.Fatalf("Records() = %d", f.Records())
	}
	if err := f.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestFileDeterministicAndReadable writes the same records twice per codec:
// the bytes are identical (replays rewrite identical objects), and both
// hamba's independent OCF reader and goavro's OCFReader decode exactly the
// records, in order.
func TestFileDeterministicAndReadable(t *testing.T) {
	t.Parallel()
	codec, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	for _, comp := range []string{"null", "deflate", "snappy"} {
		t.Run(comp, func(t *testing.T) {
			t.Parallel()
			n := ocf.BlockRecords*2 + 17 // several blocks
			a, b := &memAPI{objects: map[string][]byte{}}, &memAPI{objects: map[string][]byte{}}
			write(t, a, codec, "k/x.avro", comp, n)
			write(t, b, codec, "k/x.avro", comp, n)
			if !bytes.Equal(a.objects["k/x.avro"], b.objects["k/x.avro"]) {
				t.Fatal("two writes of the same records differ")
			}
			other := &memAPI{objects: map[string][]byte{}}
			write(t, other, codec, "k/y.avro", comp, n)
			if bytes.Equal(a.objects["k/x.avro"], other.objects["k/y.avro"]) {
				t.Fatal("different keys share a sync marker")
			}
			dec, err := hocf.NewDecoder(bytes.NewReader(a.objects["k/x.avro"]))
			if err != nil {
				t.Fatal(err)
			}
			if got := string(dec.Metadata()["avro.codec"]); got != comp {
				t.Fatalf("codec %q, want %q", got, comp)
			}
			i := 0
			for dec.HasNext() {
				var rec struct {
					ID   int64   `avro:"id"`
					Item string  `avro:"item"`
					Note *string `avro:"note"`
				}
				if err := dec.Decode(&rec); err != nil {
					t.Fatal(err)
				}
				if rec.ID != int64(i) || rec.Item != fmt.Sprintf("item-%d", i) {
					t.Fatalf("record %d = %+v", i, rec)
				}
				if (i%3 == 0) != (rec.Note != nil) {
					t.Fatalf("record %d note = %v", i, rec.Note)
				}
				i++
			}
			if err := dec.Error(); err != nil {
				t.Fatal(err)
			}
			if i != n {
				t.Fatalf("decoded %d records, want %d", i, n)
			}
			gr, err := goavro.NewOCFReader(bytes.NewReader(a.objects["k/x.avro"]))
			if err != nil {
				t.Fatal(err)
			}
			j := 0
			for gr.Scan() {
				v, err := gr.Read()
				if err != nil {
					t.Fatal(err)
				}
				if v.(map[string]any)["id"] != int64(j) {
					t.Fatalf("goavro record %d = %v", j, v)
				}
				j++
			}
			if gr.Err() != nil || j != n {
				t.Fatalf("goavro read %d records, err %v", j, gr.Err())
			}
		})
	}
}

// TestHeaderStable: the header does not depend on map iteration order
// (goavro's OCFWriter header does), so many encodings are identical.
func TestHeaderStable(t *testing.T) {
	t.Parallel()
	codec, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	first := ocf.Header(codec.Schema(), "snappy", ocf.SyncMarker("k"))
	for i := 0; i < 50; i++ {
		if !bytes.Equal(first, ocf.Header(codec.Schema(), "snappy", ocf.SyncMarker("k"))) {
			t.Fatal("header changed between calls")
		}
	}
	for i := 0; i < 50; i++ {
		a, b := &memAPI{objects: map[string][]byte{}}, &memAPI{objects: map[string][]byte{}}
		write(t, a, codec, "k", "null", 3)
		write(t, b, codec, "k", "null", 3)
		if !bytes.Equal(a.objects["k"], b.objects["k"]) {
			t.Fatal("identical writes differ")
		}
	}
}

func TestCountRecords(t *testing.T) {
	t.Parallel()
	codec, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 7, ocf.BlockRecords + 3} {
		api := &memAPI{objects: map[string][]byte{}}
		write(t, api, codec, "k", "snappy", n)
		got, err := ocf.CountRecords(bytes.NewReader(api.objects["k"]))
		if err != nil || got != int64(n) {
			t.Fatalf("CountRecords = %d, %v; want %d", got, err, n)
		}
		if _, err := ocf.CountRecords(bytes.NewReader(api.objects["k"][:len(api.objects["k"])-3])); err == nil {
			t.Fatal("truncated file counted without error")
		}
	}
	if _, err := ocf.CountRecords(bytes.NewReader([]byte("PK\x03\x04 not avro"))); err == nil {
		t.Fatal("garbage counted")
	}
}

// FuzzCountRecords: any input is counted or rejected without panicking,
// hanging or returning a negative count.
func FuzzCountRecords(f *testing.F) {
	codec, err := goavro.NewCodec(schema)
	if err != nil {
		f.Fatal(err)
	}
	api := &memAPI{objects: map[string][]byte{}}
	write(f, api, codec, "seed", "null", 5)
	f.Add(api.objects["seed"])
	f.Add([]byte("Obj\x01\x00"))
	f.Add([]byte("Obj\x01\x02\x02a\x02b\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ocf.CountRecords(bytes.NewReader(b))
		if err == nil && n < 0 {
			t.Fatalf("negative count %d", n)
		}
	})
}
