package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/services/ingest-gateway/internal/gateway"
)

// Confluent REST Proxy error codes (io.confluent.kafkarest.Errors).
const (
	v2TopicNotFound       = 40401
	v2PartitionNotFound   = 40402
	v2KeySchemaMissing    = 42201
	v2ValueSchemaMissing  = 42202
	v2JSONConversion      = 42203
	v2InvalidSchema       = 42205
	v2KafkaError          = 50002
	v2KafkaRetriableError = 50003
	v2ContentType         = "application/vnd.kafka.v2+json"
)

// v2Code maps a request-level error to Confluent's code.
func v2Code(e *gateway.Error) int {
	switch e.Kind {
	case gateway.KindUnknownTopic:
		return v2TopicNotFound
	case gateway.KindUnknownPartition:
		return v2PartitionNotFound
	case gateway.KindInvalidRecord, gateway.KindRecordTooLarge, gateway.KindInvalidTimestamp:
		return v2JSONConversion
	case gateway.KindSchemaNotOfTopic:
		// The request holds no usable schema for the topic.
		if e.Field == "key_schema_id" {
			return v2KeySchemaMissing
		}
		return v2ValueSchemaMissing
	case gateway.KindInvalidSchema:
		return v2InvalidSchema
	case gateway.KindUnavailable, gateway.KindShuttingDown:
		return v2KafkaRetriableError
	}
	return e.Kind.Code()
}

func (s *Server) failV2(w http.ResponseWriter, e *gateway.Error) {
	s.eng.Metrics().Rejected.WithLabelValues(gateway.RejectReason(e.Kind)).Inc()
	if e.Kind.Retryable() {
		w.Header().Set("Retry-After", gateway.RetryAfterSeconds(s.opt.RetryAfter))
	}
	w.Header().Set("Content-Type", v2ContentType)
	msg := e.Message
	if e.Kind == gateway.KindInvalidRecord {
		msg = "Conversion of JSON to Avro failed: " + msg
	}
	writeJSON(w, e.Kind.Status(), errorBody{Code: v2Code(e), Message: msg})
}

// V2Request is a REST Proxy v2 produce request.
type V2Request struct {
	KeySchema     string     `json:"key_schema,omitempty"`
	KeySchemaID   int        `json:"key_schema_id,omitempty"`
	ValueSchema   string     `json:"value_schema,omitempty"`
	ValueSchemaID int        `json:"value_schema_id,omitempty"`
	Records       []V2Record `json:"records"`
}

// V2Record is one record of a v2 request.
type V2Record struct {
	Key       json.RawMessage `json:"key,omitempty"`
	Value     json.RawMessage `json:"value"`
	Partition *int32          `json:"partition,omitempty"`
}

// V2Offset is one record's outcome in a v2 response.
type V2Offset struct {
	Partition *int32  `json:"partition"`
	Offset    *int64  `json:"offset"`
	ErrorCode *int    `json:"error_code"`
	Error     *string `json:"error"`
}

// V2Response is the v2 produce response.
type V2Response struct {
	KeySchemaID   *int       `json:"key_schema_id"`
	ValueSchemaID *int       `json:"value_schema_id"`
	Offsets       []V2Offset `json:"offsets"`
}

func isNull(raw json.RawMessage) bool { return len(raw) == 0 || string(raw) == "null" }

func (s *Server) v2(w http.ResponseWriter, r *http.Request) {
	topic := chi.URLParam(r, "topic")
	key, aerr := s.authorize(r, topic)
	if aerr != nil {
		s.failV2(w, aerr)
		return
	}
	pathPartition := int32(-1)
	if p := chi.URLParam(r, "partition"); p != "" {
		n, err := strconv.ParseInt(p, 10, 32)
		if err != nil || n < 0 {
			s.failV2(w, gateway.Errorf(gateway.KindUnknownPartition, "Partition not found."))
			return
		}
		pathPartition = int32(n)
	}
	var embedded string
	switch ct := mediaType(r); ct {
	case "application/vnd.kafka.avro.v2+json":
		embedded = "avro"
	case "application/vnd.kafka.json.v2+json", "application/json":
		embedded = "json"
	case "application/vnd.kafka.binary.v2+json", "application/vnd.kafka.v2+json", "application/vnd.kafka+json", "application/octet-stream", "":
		embedded = "binary"
	default:
		w.Header().Set("Content-Type", v2ContentType)
		writeJSON(w, http.StatusUnsupportedMediaType, errorBody{Code: 415, Message: fmt.Sprintf("HTTP 415 Unsupported Media Type: %s (this gateway takes avro, json and binary embedded formats)", ct)})
		return
	}
	body, hold, gerr := s.readBody(w, r)
	if gerr != nil {
		s.failV2(w, gerr)
		return
	}
	// encoding/json copies what it keeps (about the body again).
	if gerr := hold.Grow(int64(len(body))); gerr != nil {
		putBuf(body)
		hold.Release()
		s.failV2(w, gerr)
		return
	}
	var req V2Request
	err := json.Unmarshal(body, &req)
	putBuf(body) // encoding/json copied what it kept (RawMessage included)
	if err != nil {
		hold.Release()
		w.Header().Set("Content-Type", v2ContentType)
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Code: 422, Message: "Unrecognized field or malformed JSON: " + err.Error()})
		return
	}
	if len(req.Records) > s.opt.MaxRecords {
		hold.Release()
		s.failV2(w, gateway.Errorf(gateway.KindRequestTooLarge, "request has %d records, more than the limit of %d", len(req.Records), s.opt.MaxRecords))
		return
	}
	if lerr := allow(key, len(req.Records)); lerr != nil {
		hold.Release()
		s.failV2(w, lerr)
		return
	}
	// Ids and inline schemas are used or refused, never silently ignored.
	refErr := checkSchemaRef("value_", int64(req.ValueSchemaID), 0)
	if refErr == nil {
		refErr = checkSchemaRef("key_", int64(req.KeySchemaID), 0)
	}
	if refErr == nil && embedded != "avro" && (req.ValueSchema != "" || req.KeySchema != "") {
		refErr = gateway.Errorf(gateway.KindBadRequest, "value_schema and key_schema are read only with the avro embedded format (application/vnd.kafka.avro.v2+json); use value_schema_id")
	}
	if refErr == nil && embedded == "binary" && req.KeySchemaID != 0 {
		refErr = gateway.Errorf(gateway.KindBadRequest, "key_schema_id is not read with the binary embedded format: its keys are raw bytes")
	}
	if refErr != nil {
		hold.Release()
		s.failV2(w, refErr)
		return
	}
	b := &gateway.Batch{Topic: topic, Hold: hold, AllOrNothing: true}
	if embedded != "avro" {
		b.Value = gateway.SchemaRef{ID: req.ValueSchemaID}
		if req.KeySchemaID > 0 {
			b.KeySchema = &gateway.SchemaRef{ID: req.KeySchemaID}
		}
	}
	switch embedded {
	case "avro":
		b.Format, b.KeyFormat = gateway.FormatAvroJSON, gateway.FormatAvroJSON
		var hasKey, hasValue bool
		for i := range req.Records {
			hasKey = hasKey || !isNull(req.Records[i].Key)
			hasValue = hasValue || !isNull(req.Records[i].Value)
		}
		if hasKey && req.KeySchema == "" && req.KeySchemaID == 0 {
			hold.Release()
			w.Header().Set("Content-Type", v2ContentType)
			writeJSON(w, http.StatusUnprocessableEntity, errorBody{Code: v2KeySchemaMissing, Message: "Request includes keys but does not include key schema"})
			return
		}
		if hasValue && req.ValueSchema == "" && req.ValueSchemaID == 0 {
			hold.Release()
			w.Header().Set("Content-Type", v2ContentType)
			writeJSON(w, http.StatusUnprocessableEntity, errorBody{Code: v2ValueSchemaMissing, Message: "Request includes values but does not include value schema"})
			return
		}
		b.Value = gateway.SchemaRef{ID: req.ValueSchemaID, Schema: req.ValueSchema}
		if hasKey {
			b.KeySchema = &gateway.SchemaRef{ID: req.KeySchemaID, Schema: req.KeySchema}
		}
	case "json":
		b.Format, b.KeyFormat, b.JSONKeys = gateway.FormatJSON, gateway.FormatJSON, true
	case "binary":
		b.Format = gateway.FormatAvroBinary
	}
	b.Records = make([]gateway.Record, len(req.Records))
	for i := range req.Records {
		vr := &req.Records[i]
		rec := gateway.Record{Partition: pathPartition}
		if vr.Partition != nil && pathPartition < 0 {
			rec.Partition = *vr.Partition
			if rec.Partition < 0 {
				rec.Invalid = &gateway.Error{Kind: gateway.KindInvalidRecord, Field: "partition", Message: fmt.Sprintf("partition: must be a non-negative integer, got %d", rec.Partition)}
			}
		}
		if embedded == "binary" {
			var err error
			if rec.Key, err = decodeB64(vr.Key); err != nil {
				hold.Release()
				s.failV2(w, gateway.Errorf(gateway.KindInvalidRecord, "records[%d].key: %v", i, err))
				return
			}
			if rec.Value, err = decodeB64(vr.Value); err != nil {
				hold.Release()
				s.failV2(w, gateway.Errorf(gateway.KindInvalidRecord, "records[%d].value: %v", i, err))
				return
			}
		} else {
			if !isNull(vr.Key) {
				rec.KeyJSON = vr.Key
			}
			if !isNull(vr.Value) {
				rec.Value = vr.Value
			}
		}
		b.Records[i] = rec
	}
	results, perr := s.eng.Produce(r.Context(), b)
	if perr != nil {
		s.failV2(w, gateway.AsError(perr))
		return
	}
	resp := V2Response{Offsets: make([]V2Offset, len(results))}
	failedRetriable := 0
	for i, res := range results {
		if i == 0 || resp.ValueSchemaID == nil {
			if res.SchemaID > 0 && embedded != "binary" {
				id := res.SchemaID
				resp.ValueSchemaID = &id
			}
			if res.KeySchemaID > 0 {
				id := res.KeySchemaID
				resp.KeySchemaID = &id
			}
		}
		o := &resp.Offsets[i]
		switch {
		case res.Err == nil:
			p, off := res.Partition, res.Offset
			o.Partition, o.Offset = &p, &off
		case res.DeadLettered:
			p, off := res.Partition, res.Offset
			code, msg := 1, fmt.Sprintf("dead-lettered to %s: %s", gateway.DeadLetterTopic(topic), res.Err.Message)
			o.Partition, o.Offset, o.ErrorCode, o.Error = &p, &off, &code, &msg
		default:
			code, msg := 1, res.Err.Message
			if res.Err.Kind.Retryable() {
				code = 2
				failedRetriable++
			}
			o.ErrorCode, o.Error = &code, &msg
		}
	}
	w.Header().Set("Content-Type", v2ContentType)
	if failedRetriable == len(results) {
		w.Header().Set("Retry-After", gateway.RetryAfterSeconds(s.opt.RetryAfter))
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Code: v2KafkaRetriableError, Message: "Kafka error: " + *resp.Offsets[0].Error})
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func decodeB64(raw json.RawMessage) ([]byte, error) {
	if isNull(raw) {
		return nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, errors.New("binary embedded format wants a base64 string")
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not base64: %v", err)
	}
	return b, nil
}

// V3Data is the key or value of a v3 record.
type V3Data struct {
	Type          string          `json:"type,omitempty"` // BINARY, JSON, STRING, AVRO
	Data          json.RawMessage `json:"data"`
	SchemaID      int             `json:"schema_id,omitempty"`
	SchemaVersion int             `json:"schema_version,omitempty"`
	Subject       string          `json:"subject,omitempty"`
}

// V3Header is a v3 record header (value base64).
type V3Header struct {
	Name  string  `json:"name"`
	Value *string `json:"value"`
}

// V3Record is one v3 produce request (one record).
type V3Record struct {
	PartitionID *int32     `json:"partition_id,omitempty"`
	Headers     []V3Header `json:"headers,omitempty"`
	Key         *V3Data    `json:"key,omitempty"`
	Value       *V3Data    `json:"value,omitempty"`
	Timestamp   *time.Time `json:"timestamp,omitempty"`
}

// V3Size is the type and size of a produced key or value.
type V3Size struct {
	Type string `json:"type"`
	Size int    `json:"size"`
}

// V3Result is one v3 delivery report.
type V3Result struct {
	ErrorCode   int     `json:"error_code"`
	Message     string  `json:"message,omitempty"`
	ClusterID   string  `json:"cluster_id,omitempty"`
	TopicName   string  `json:"topic_name,omitempty"`
	PartitionID *int32  `json:"partition_id,omitempty"`
	Offset      *int64  `json:"offset,omitempty"`
	Timestamp   string  `json:"timestamp,omitempty"`
	Key         *V3Size `json:"key,omitempty"`
	Value       *V3Size `json:"value,omitempty"`
}

// limitedReader fails when more than max bytes are read since the last reset,
// bounding one v3 record's size in a stream.
// Each read is reserved (reserve, if set) before it happens and what it
// did not fill is given back, so a stream's bytes count against the
// budget before they are read.
type limitedReader struct {
	r       io.Reader
	n       int
	max     int
	over    bool
	reserve func(n int) *gateway.Error
	refund  func(n int)
	refused *gateway.Error // the budget stayed exhausted
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n >= l.max {
		l.over = true
		return 0, fmt.Errorf("record larger than %d bytes", l.max)
	}
	if len(p) > l.max-l.n {
		p = p[:l.max-l.n]
	}
	if l.reserve != nil {
		if gerr := l.reserve(len(p)); gerr != nil {
			l.refused = gerr
			return 0, gerr
		}
	}
	n, err := l.r.Read(p)
	if l.refund != nil {
		l.refund(len(p) - n)
	}
	l.n += n
	return n, err
}

func (s *Server) v3Record(topic string, vr *V3Record) (gateway.Group, gateway.Record, *gateway.Error) {
	g := gateway.Group{Topic: topic, Format: gateway.FormatJSON, KeyFormat: gateway.FormatJSON}
	rec := gateway.Record{Partition: -1}
	bad := func(f string, a ...any) *gateway.Error {
		return &gateway.Error{Kind: gateway.KindInvalidRecord, Message: fmt.Sprintf(f, a...)}
	}
	if vr.PartitionID != nil {
		if *vr.PartitionID < 0 {
			return g, rec, bad("partition_id: must be a non-negative integer, got %d", *vr.PartitionID)
		}
		rec.Partition = *vr.PartitionID
	}
	for _, d := range []struct {
		what string
		v    *V3Data
	}{{"key.", vr.Key}, {"value.", vr.Value}} {
		if d.v == nil {
			continue
		}
		if err := checkSchemaRef(d.what, int64(d.v.SchemaID), int64(d.v.SchemaVersion)); err != nil {
			return g, rec, bad("%s", err.Message)
		}
		if d.v.Subject != "" && !validSubject(d.v.Subject) {
			return g, rec, bad("%ssubject: not a valid subject name", d.what)
		}
	}
	if vr.Timestamp != nil {
		rec.Time = *vr.Timestamp
	}
	for _, h := range vr.Headers {
		hv := []byte(nil)
		if h.Value != nil {
			b, err := base64.StdEncoding.DecodeString(*h.Value)
			if err != nil {
				return g, rec, bad("headers[%s]: value is not base64", quoteParam(h.Name))
			}
			hv = b
		}
		rec.Headers = append(rec.Headers, kafkago.Header{Key: h.Name, Value: hv})
	}
	if vr.Key != nil && !isNull(vr.Key.Data) {
		switch strings.ToUpper(vr.Key.Type) {
		case "BINARY":
			b, err := decodeB64(vr.Key.Data)
			if err != nil {
				return g, rec, bad("key.data: %v", err)
			}
			rec.Key = b
		case "STRING":
			var str string
			if err := json.Unmarshal(vr.Key.Data, &str); err != nil {
				return g, rec, bad("key.data: STRING keys must be JSON strings")
			}
			rec.Key = []byte(str)
		case "AVRO":
			g.KeyFormat = gateway.FormatAvroJSON
			rec.KeyJSON = vr.Key.Data
			if vr.Key.SchemaID > 0 || vr.Key.SchemaVersion != 0 || vr.Key.Subject != "" {
				g.HasKeySchema, g.KeySchema = true, gateway.SchemaRef{ID: vr.Key.SchemaID, Version: vr.Key.SchemaVersion, Subject: vr.Key.Subject}
			}
		case "", "JSON":
			// Confluent's JSON serializer: the key's JSON text, quotes kept.
			rec.KeyJSON, g.JSONKeys = vr.Key.Data, true
		default:
			return g, rec, bad("key.type %s is not supported (BINARY, STRING, JSON, AVRO)", quoteParam(vr.Key.Type))
		}
		if t := strings.ToUpper(vr.Key.Type); t != "AVRO" && (vr.Key.SchemaID != 0 || vr.Key.SchemaVersion != 0 || vr.Key.Subject != "") {
			return g, rec, bad("key.schema_id, key.schema_version and key.subject are read only for AVRO keys")
		}
	}
	if vr.Value != nil {
		g.Value = gateway.SchemaRef{ID: vr.Value.SchemaID, Version: vr.Value.SchemaVersion, Subject: vr.Value.Subject}
		switch strings.ToUpper(vr.Value.Type) {
		case "AVRO":
			g.Format = gateway.FormatAvroJSON
		case "", "JSON":
			g.Format = gateway.FormatJSON
		case "BINARY":
			g.Format = gateway.FormatAvroBinary
			b, err := decodeB64(vr.Value.Data)
			if err != nil {
				return g, rec, bad("value.data: %v", err)
			}
			rec.Value = b
			return g, rec, nil
		default:
			return g, rec, bad("value.type %s is not supported: values must match the topic's Avro schema (AVRO, JSON or BINARY)", quoteParam(vr.Value.Type))
		}
		if !isNull(vr.Value.Data) {
			rec.Value = vr.Value.Data
		}
	}
	return g, rec, nil
}

func v3Status(e *gateway.Error) int {
	if e.Kind == gateway.KindInvalidRecord || e.Kind == gateway.KindRecordTooLarge {
		return http.StatusBadRequest
	}
	return e.Kind.Status()
}

// v3 handles Confluent v3 produce: one JSON record, or a stream of
// concatenated JSON records with one delivery report each, in order.
func (s *Server) v3(w http.ResponseWriter, r *http.Request) {
	topic := chi.URLParam(r, "topic")
	key, aerr := s.authorize(r, topic)
	if aerr != nil {
		s.fail(w, aerr)
		return
	}
	if cl := chi.URLParam(r, "cluster"); cl != s.opt.ClusterID {
		writeJSON(w, http.StatusNotFound, errorBody{Code: 404, Message: fmt.Sprintf("Cluster %s cannot be found.", cl)})
		return
	}
	if _, gerr := s.eng.CheckTopic(r.Context(), topic); gerr != nil {
		s.fail(w, gerr)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex()
	w.Header().Set("Content-Type", ContentJSON)
	sw := &streamWriter{w: w, rc: rc, status: http.StatusOK}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	items := make(chan gateway.StreamItem, s.opt.StreamChunk)
	hold := s.eng.NewHold()
	lr := &limitedReader{r: r.Body, max: s.opt.MaxRecordBytes + 64<<10,
		reserve: func(n int) *gateway.Error { return hold.GrowWait(ctx, int64(min(n, 32<<10))) },
		refund:  func(n int) { hold.Shrink(int64(n)) }}
	count := 0
	eof := make(chan struct{})
	sa := s.streamAuth(r, topic)
	var stoppedEarly atomic.Bool // the reader left the body unread
	go func() {
		defer close(items)
		defer func() { hold.Release() }() // whatever the last record left
		dec := json.NewDecoder(lr)
		dec.DisallowUnknownFields()
		for {
			lr.n = 0
			start := dec.InputOffset()
			var vr V3Record
			err := dec.Decode(&vr)
			if errors.Is(err, io.EOF) {
				close(eof)
				return
			}
			count++
			if k, aerr := sa.check(s); aerr != nil {
				// A revoked key: this record and the rest are not accepted.
				stoppedEarly.Store(true)
				select {
				case items <- gateway.StreamItem{Pre: aerr}:
				case <-ctx.Done():
				}
				return
			} else if k != nil {
				key = k
			}
			wait(ctx, key)
			it := gateway.StreamItem{Size: int(dec.InputOffset() - start)}
			// The bytes read for this record go with it until Kafka answered.
			it.Hold, hold = hold, s.eng.NewHold()
			if err != nil {
				kind := gateway.KindInvalidRecord
				if lr.over {
					kind = gateway.KindRecordTooLarge
				}
				it.Pre = &gateway.Error{Kind: kind, Message: "malformed JSON: " + err.Error()}
				if lr.refused != nil {
					it.Pre = lr.refused
				}
			} else {
				it.Group, it.Record, it.Pre = s.v3Record(topic, &vr)
				keyType, valType := "BINARY", "JSON"
				if vr.Key != nil && vr.Key.Type != "" {
					keyType = strings.ToUpper(vr.Key.Type)
				}
				if vr.Value != nil && vr.Value.Type != "" {
					valType = strings.ToUpper(vr.Value.Type)
				}
				it.Tag = [2]string{keyType, valType}
			}
			select {
			case items <- it:
			case <-ctx.Done():
				return
			}
			if err != nil {
				stoppedEarly.Store(true)
				return // a JSON syntax error cannot be resynchronised
			}
		}
	}()
	first := true
	emit := func(it *gateway.StreamItem, res gateway.Result) error {
		var out V3Result
		if res.Err != nil && !res.DeadLettered {
			out = V3Result{ErrorCode: v3Status(res.Err), Message: res.Err.Message}
			if first && loneRequest(eof) {
				// A lone (not streamed) record answers with the error's
				// status too, as Confluent does.
				sw.status = out.ErrorCode
				if res.Err.Kind.Retryable() {
					w.Header().Set("Retry-After", gateway.RetryAfterSeconds(s.opt.RetryAfter))
				}
			}
		} else {
			p, off := res.Partition, res.Offset
			out = V3Result{ErrorCode: 200, ClusterID: s.opt.ClusterID, TopicName: topic, PartitionID: &p, Offset: &off, Timestamp: res.Time.UTC().Format(time.RFC3339Nano)}
			if res.DeadLettered {
				out.TopicName = gateway.DeadLetterTopic(topic)
				out.Message = "dead-lettered: " + res.Err.Message
			}
			if types, ok := it.Tag.([2]string); ok {
				out.Key = &V3Size{Type: types[0], Size: len(it.Record.Key) + len(it.Record.KeyJSON)}
				out.Value = &V3Size{Type: types[1], Size: len(it.Record.Value)}
			}
		}
		first = false
		b, _ := json.Marshal(out)
		sw.buf = append(append(sw.buf, b...), '\n')
		return sw.flush()
	}
	if err := s.eng.RunStream(ctx, items, s.opt.StreamChunk, emit); err != nil {
		cancel()
		return
	}
	if count == 0 && !sw.started {
		writeJSON(w, http.StatusBadRequest, errorBody{Code: 400, Message: "empty request: send a JSON record"})
		return
	}
	_ = sw.flush()
	if stoppedEarly.Load() {
		abandonBody(rc, r.Body)
	}
}

// loneRequest reports whether the body ended after the first record: the
// body of a non-streamed request is complete, so its end is seen at once.
func loneRequest(eof <-chan struct{}) bool {
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-eof:
		return true
	case <-t.C:
		return false
	}
}
