package grpcapi

import (
	"unicode/utf8"

	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	ingestv1 "github.com/sluicehq/sluice/pkg/gen/sluice/ingest/v1"
)

// Codec returns the gateway's gRPC server codec: the standard proto codec,
// except that a Produce request of plain records (key, key_json, value,
// partition), which Register's handler decodes into a pooledRequest, is
// decoded in one pass with all its records in one
// allocation and their key and value bytes pointing into the received
// message, instead of two small allocations and copies per record. A
// 1000-record request spent more CPU in the generic decoder than in
// validating its records. Anything else (headers, timestamps, unknown
// fields, invalid UTF-8) takes the standard decoder, so the result is
// always what proto.Unmarshal gives (FuzzProduceRequestCodec checks it).
// Install it with grpc.ForceServerCodecV2 on the gateway's server only.
func Codec() encoding.CodecV2 { return codec{std: encoding.GetCodecV2(grpcproto.Name)} }

type codec struct{ std encoding.CodecV2 }

func (c codec) Name() string { return grpcproto.Name }

// Marshal encodes ProduceResponses by hand (a 1000-record answer is
// 1000 small messages, which the generic encoder sizes and writes through
// reflection tables) and everything else with the standard codec.
func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	resp, ok := v.(*ingestv1.ProduceResponse)
	if !ok || !plainResponse(resp) {
		return c.std.Marshal(v)
	}
	pool := mem.DefaultBufferPool()
	bufp := pool.Get(responseSize(resp))
	*bufp = appendResponse((*bufp)[:0], resp)
	return mem.BufferSlice{mem.NewBuffer(bufp, pool)}, nil
}

// plainResponse reports whether resp holds only what the gateway sets
// (no unknown fields anywhere) and valid UTF-8 strings, so the hand
// encoding is complete and the standard codec would not refuse it.
func plainResponse(resp *ingestv1.ProduceResponse) bool {
	if len(resp.ProtoReflect().GetUnknown()) > 0 {
		return false
	}
	for _, r := range resp.Results {
		if r == nil || len(r.ProtoReflect().GetUnknown()) > 0 ||
			(r.Timestamp != nil && len(r.Timestamp.ProtoReflect().GetUnknown()) > 0) ||
			(r.Error != nil && (len(r.Error.ProtoReflect().GetUnknown()) > 0 || !utf8.ValidString(r.Error.Message) || !utf8.ValidString(r.Error.Field))) {
			return false
		}
	}
	return true
}

func resultSize(r *ingestv1.RecordResult) int {
	n := 0
	if r.Partition != 0 {
		n += 1 + protowire.SizeVarint(uint64(int64(r.Partition)))
	}
	if r.Offset != 0 {
		n += 1 + protowire.SizeVarint(uint64(r.Offset))
	}
	if r.Timestamp != nil {
		n += 1 + protowire.SizeBytes(timestampSize(r.Timestamp.Seconds, r.Timestamp.Nanos))
	}
	if e := r.Error; e != nil {
		n += 1 + protowire.SizeBytes(errorSize(e))
	}
	if r.DeadLettered {
		n += 2
	}
	if r.SchemaId != 0 {
		n += 1 + protowire.SizeVarint(uint64(int64(r.SchemaId)))
	}
	return n
}

func timestampSize(sec int64, nanos int32) int {
	n := 0
	if sec != 0 {
		n += 1 + protowire.SizeVarint(uint64(sec))
	}
	if nanos != 0 {
		n += 1 + protowire.SizeVarint(uint64(int64(nanos)))
	}
	return n
}

func errorSize(e *ingestv1.Error) int {
	n := 0
	if e.Code != 0 {
		n += 1 + protowire.SizeVarint(uint64(int64(e.Code)))
	}
	if e.Message != "" {
		n += 1 + protowire.SizeBytes(len(e.Message))
	}
	if e.Field != "" {
		n += 1 + protowire.SizeBytes(len(e.Field))
	}
	return n
}

func responseSize(resp *ingestv1.ProduceResponse) int {
	n := 0
	for _, r := range resp.Results {
		n += 1 + protowire.SizeBytes(resultSize(r))
	}
	return n
}

func appendResponse(b []byte, resp *ingestv1.ProduceResponse) []byte {
	for _, r := range resp.Results {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(resultSize(r)))
		if r.Partition != 0 {
			b = protowire.AppendTag(b, 1, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(int64(r.Partition)))
		}
		if r.Offset != 0 {
			b = protowire.AppendTag(b, 2, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(r.Offset))
		}
		if ts := r.Timestamp; ts != nil {
			b = protowire.AppendTag(b, 3, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(timestampSize(ts.Seconds, ts.Nanos)))
			if ts.Seconds != 0 {
				b = protowire.AppendTag(b, 1, protowire.VarintType)
				b = protowire.AppendVarint(b, uint64(ts.Seconds))
			}
			if ts.Nanos != 0 {
				b = protowire.AppendTag(b, 2, protowire.VarintType)
				b = protowire.AppendVarint(b, uint64(int64(ts.Nanos)))
			}
		}
		if e := r.Error; e != nil {
			b = protowire.AppendTag(b, 4, protowire.BytesType)
			b = protowire.AppendVarint(b, uint64(errorSize(e)))
			if e.Code != 0 {
				b = protowire.AppendTag(b, 1, protowire.VarintType)
				b = protowire.AppendVarint(b, uint64(int64(e.Code)))
			}
			if e.Message != "" {
				b = protowire.AppendTag(b, 2, protowire.BytesType)
				b = protowire.AppendString(b, e.Message)
			}
			if e.Field != "" {
				b = protowire.AppendTag(b, 3, protowire.BytesType)
				b = protowire.AppendString(b, e.Field)
			}
		}
		if r.DeadLettered {
			b = protowire.AppendTag(b, 5, protowire.VarintType)
			b = append(b, 1)
		}
		if r.SchemaId != 0 {
			b = protowire.AppendTag(b, 6, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(int64(r.SchemaId)))
		}
	}
	return b
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*pooledRequest)
	if !ok {
		return c.std.Unmarshal(data, v)
	}
	// A pooled copy the handler frees once the records are settled.
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	if unmarshalProduce(buf.ReadOnlyData(), &m.req) {
		m.buf = buf
		return nil
	}
	defer buf.Free()
	proto.Reset(&m.req)
	return proto.Unmarshal(buf.ReadOnlyData(), &m.req) // copies
}

// unmarshalProduce fills req from b and reports true, or reports false
// (req then unspecified) for anything outside the fast path.
func unmarshalProduce(b []byte, req *ingestv1.ProduceRequest) bool {
	n := 0
	for i := 0; i < len(b); {
		num, typ, l := protowire.ConsumeTag(b[i:])
		if l < 0 {
			return false
		}
		i += l
		switch {
		case num == 1 && typ == protowire.BytesType:
			v, l := protowire.ConsumeBytes(b[i:])
			if l < 0 || !utf8.Valid(v) {
				return false
			}
			req.Topic = string(v)
			i += l
		case (num == 2 || num == 3 || num == 4 || num == 6) && typ == protowire.VarintType:
			v, l := protowire.ConsumeVarint(b[i:])
			if l < 0 {
				return false
			}
			switch num {
			case 2:
				req.SchemaId = int32(v)
			case 3:
				req.SchemaVersion = int32(v)
			case 4:
				req.Format = ingestv1.ValueFormat(int32(v))
			case 6:
				req.Async = v != 0
			}
			i += l
		case num == 5 && typ == protowire.BytesType:
			_, l := protowire.ConsumeBytes(b[i:])
			if l < 0 {
				return false
			}
			n++
			i += l
		default:
			return false
		}
	}
	if n == 0 {
		return true
	}
	slab := make([]ingestv1.Record, n)
	req.Records = make([]*ingestv1.Record, 0, n)
	var parts []int32 // partitions, allocated once if any record has one
	for i := 0; i < len(b); {
		num, typ, l := protowire.ConsumeTag(b[i:])
		i += l
		if num != 5 {
			if typ == protowire.BytesType {
				_, l = protowire.ConsumeBytes(b[i:])
			} else {
				_, l = protowire.ConsumeVarint(b[i:])
			}
			i += l
			continue
		}
		v, l := protowire.ConsumeBytes(b[i:])
		i += l
		r := &slab[len(req.Records)]
		if !unmarshalRecord(v, r, &parts, n) {
			return false
		}
		req.Records = append(req.Records, r)
	}
	return true
}

func unmarshalRecord(b []byte, r *ingestv1.Record, parts *[]int32, n int) bool {
	for i := 0; i < len(b); {
		num, typ, l := protowire.ConsumeTag(b[i:])
		if l < 0 {
			return false
		}
		i += l
		switch {
		case (num == 1 || num == 2 || num == 3) && typ == protowire.BytesType:
			v, l := protowire.ConsumeBytes(b[i:])
			if l < 0 {
				return false
			}
			i += l
			if len(v) == 0 {
				v = nil // as proto.Unmarshal leaves an empty bytes field
			}
			switch num {
			case 1:
				r.Key = v
			case 2:
				if !utf8.Valid(v) {
					return false
				}
				r.KeyJson = string(v)
			case 3:
				r.Value = v
			}
		case num == 6 && typ == protowire.VarintType:
			v, l := protowire.ConsumeVarint(b[i:])
			if l < 0 {
				return false
			}
			i += l
			if *parts == nil {
				*parts = make([]int32, 0, n)
			}
			if len(*parts) == cap(*parts) {
				return false // more partition fields than records: odd, let proto decide
			}
			*parts = append(*parts, int32(v))
			r.Partition = &(*parts)[len(*parts)-1]
		default:
			return false
		}
	}
	return true
}
