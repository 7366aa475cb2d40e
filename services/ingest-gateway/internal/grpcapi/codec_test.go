package grpcapi

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/sluicehq/sluice/pkg/gen/sluice/ingest/v1"
)

// FuzzProduceRequestCodec: the fast decoder either declines or gives
// exactly what proto.Unmarshal gives.
func FuzzProduceRequestCodec(f *testing.F) {
	seeds := []*ingestv1.ProduceRequest{
		{Topic: "orders", SchemaId: 3, Format: ingestv1.ValueFormat_VALUE_FORMAT_AVRO_BINARY, Async: true,
			Records: []*ingestv1.Record{{Key: []byte("k"), Value: []byte{0, 1}}, {KeyJson: `"x"`, Value: []byte(`{"a":1}`), Partition: proto.Int32(2)}, {}}},
		{Topic: "t", SchemaVersion: -1, Records: []*ingestv1.Record{{Value: []byte("v"), Headers: map[string][]byte{"h": []byte("1")}}}},
		{Topic: "t", Records: []*ingestv1.Record{{Value: []byte("v"), Timestamp: timestamppb.Now()}}},
		{Topic: "t"},
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x2a, 0x02, 0x30, 0x01, 0x2a, 0x02, 0x30, 0x02, 0x2a, 0x02, 0x30, 0x03})
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast ingestv1.ProduceRequest
		if !unmarshalProduce(b, &fast) {
			return
		}
		var std ingestv1.ProduceRequest
		if err := proto.Unmarshal(b, &std); err != nil {
			t.Fatalf("fast path accepted %x, proto.Unmarshal: %v", b, err)
		}
		if !proto.Equal(&fast, &std) {
			t.Fatalf("%x: fast %v\nstd  %v", b, &fast, &std)
		}
		for i := range fast.Records { // nil, not empty, like proto
			if (fast.Records[i].Key == nil) != (std.Records[i].Key == nil) || (fast.Records[i].Value == nil) != (std.Records[i].Value == nil) {
				t.Fatalf("%x: record %d nil-ness differs", b, i)
			}
		}
	})
}

// TestFastPathTaken guards the optimisation itself: plain records decode
// without the fallback.
func TestFastPathTaken(t *testing.T) {
	b, _ := proto.Marshal(&ingestv1.ProduceRequest{Topic: "t", Records: []*ingestv1.Record{{Key: []byte("k"), Value: []byte("v"), Partition: proto.Int32(1)}}})
	var r ingestv1.ProduceRequest
	if !unmarshalProduce(b, &r) || string(r.Records[0].Value) != "v" || r.Records[0].GetPartition() != 1 {
		t.Fatalf("fast path declined or wrong: %v", &r)
	}
}

// FuzzProduceResponseMarshal: the hand encoding of a response decodes to
// the same message, and is byte for byte what proto.Marshal writes.
func FuzzProduceResponseMarshal(f *testing.F) {
	f.Add(int32(2), int64(41), int64(1700000000), int32(123000000), int32(0), "", "", false, int32(7), uint8(3))
	f.Add(int32(-1), int64(-5), int64(-1), int32(-1), int32(42201), "value.x: bad ü", "value.x", true, int32(-3), uint8(1))
	f.Add(int32(0), int64(0), int64(0), int32(0), int32(0), "", "", false, int32(0), uint8(0))
	f.Fuzz(func(t *testing.T, part int32, off, sec int64, nanos, code int32, msg, field string, dl bool, sid int32, n uint8) {
		resp := &ingestv1.ProduceResponse{}
		for i := range int(n % 5) {
			r := &ingestv1.RecordResult{Partition: part + int32(i), Offset: off, DeadLettered: dl, SchemaId: sid}
			if i%2 == 0 {
				r.Timestamp = &timestamppb.Timestamp{Seconds: sec, Nanos: nanos}
			}
			if code != 0 || msg != "" || i%3 == 1 {
				r.Error = &ingestv1.Error{Code: code, Message: msg, Field: field}
			}
			resp.Results = append(resp.Results, r)
		}
		got := appendResponse(nil, resp)
		if len(got) != responseSize(resp) {
			t.Fatalf("size %d, wrote %d", responseSize(resp), len(got))
		}
		want, err := proto.Marshal(resp)
		if err != nil {
			return // e.g. invalid UTF-8 in a string: the standard codec's answer
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("hand %x\nproto %x", got, want)
		}
	})
}
