package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/go-chi/chi/v5"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/auth"
	"github.com/sluicehq/sluice/services/ingest-gateway/internal/gateway"
)

// Content types of the native API.
const (
	ContentJSON     = "application/json"
	ContentAvroJSON = "application/vnd.sluice.avro+json"
	ContentNDJSON   = "application/x-ndjson"
)

// recordBytes is the memory of one entry of a parsed record table.
const recordBytes = int64(unsafe.Sizeof(gateway.Record{}))

// NativeResult is the outcome of one record.
type NativeResult struct {
	Topic        string `json:"topic,omitempty"` // set for dead-lettered records: the .dlq topic
	Partition    *int32 `json:"partition,omitempty"`
	Offset       *int64 `json:"offset,omitempty"`
	Timestamp    string `json:"timestamp,omitempty"`
	SchemaID     int    `json:"schema_id,omitempty"`
	Queued       bool   `json:"queued,omitempty"`
	DeadLettered bool   `json:"dead_lettered,omitempty"`
	ErrorCode    int    `json:"error_code,omitempty"`
	Message      string `json:"message,omitempty"`
	Field        string `json:"field,omitempty"`
}

// NativeResponse is the answer to a native batch.
type NativeResponse struct {
	Topic   string         `json:"topic"`
	Results []NativeResult `json:"results"`
}

func parseFormat(s string) (gateway.Format, error) {
	switch s {
	case "", "json":
		return gateway.FormatJSON, nil
	case "avro_json", "avro-json":
		return gateway.FormatAvroJSON, nil
	}
	return 0, fmt.Errorf("unknown format %s (want json or avro_json)", quoteParam(s))
}

func nativeResult(topic string, r gateway.Result, async bool) NativeResult {
	var out NativeResult
	if r.Err != nil {
		out.ErrorCode, out.Message, out.Field = r.Err.Kind.Code(), r.Err.Message, r.Err.Field
	}
	if r.Err != nil && !r.DeadLettered {
		return out
	}
	if async {
		out.Queued = true
		out.DeadLettered = r.DeadLettered
		return out
	}
	p, o := r.Partition, r.Offset
	out.Partition, out.Offset = &p, &o
	out.Timestamp = string(r.Time.UTC().AppendFormat(make([]byte, 0, 32), time.RFC3339Nano))
	if r.DeadLettered {
		out.DeadLettered = true
		out.Topic = gateway.DeadLetterTopic(topic)
	} else {
		out.SchemaID = r.SchemaID
	}
	return out
}

// batchStatus is 200 when every record made it (dead-lettered included),
// 207 when some did, and the failures' status when none did.
func batchStatus(results []gateway.Result, async bool) (int, *gateway.Error) {
	ok := 0
	var firstErr, retryErr *gateway.Error
	for i := range results {
		r := &results[i]
		if r.Err == nil || r.DeadLettered {
			ok++
			continue
		}
		if firstErr == nil {
			firstErr = r.Err
		}
		if retryErr == nil && r.Err.Kind.Retryable() {
			retryErr = r.Err
		}
	}
	switch {
	case ok == len(results) && async:
		return http.StatusAccepted, nil
	case ok == len(results):
		return http.StatusOK, nil
	case ok > 0:
		return http.StatusMultiStatus, retryErr
	case retryErr != nil:
		return retryErr.Kind.Status(), retryErr
	}
	return firstErr.Kind.Status(), nil
}

func (s *Server) native(w http.ResponseWriter, r *http.Request) {
	topic := chi.URLParam(r, "topic")
	key, aerr := s.authorize(r, topic)
	if aerr != nil {
		s.fail(w, aerr)
		return
	}
	ct := mediaType(r)
	pq, qerr := parseProduceQuery(r.URL.Query(), ct == ContentNDJSON)
	if qerr != nil {
		s.fail(w, qerr)
		return
	}
	if ct == ContentNDJSON {
		s.nativeStream(w, r, topic, key, pq)
		return
	}
	if ct != "" && ct != ContentJSON && ct != ContentAvroJSON {
		writeJSON(w, http.StatusUnsupportedMediaType, errorBody{Code: 41501, Message: fmt.Sprintf("unsupported Content-Type %s: use %s, %s or %s", quoteParam(ct), ContentJSON, ContentAvroJSON, ContentNDJSON)})
		return
	}
	body, hold, gerr := s.readBody(w, r)
	if gerr != nil {
		s.fail(w, gerr)
		return
	}
	// Values are encoded while the body is parsed, with the schema and
	// format the request most likely uses (see speculation).
	var spec *speculation
	if codec := s.eng.ValueCodec(r.Context(), topic); codec != nil {
		// The parse arena is as large as the body: reserved before it is
		// taken.
		if gerr := hold.Grow(int64(len(body))); gerr != nil {
			putBuf(body)
			hold.Release()
			s.fail(w, gerr)
			return
		}
		spec = &speculation{codec: codec, format: gateway.FormatJSON, opts: avro.Options{Mode: avro.PlainJSON, Root: "value"}, arena: getBuf(int64(len(body)))}
		if ct == ContentAvroJSON {
			spec.format, spec.opts.Mode = gateway.FormatAvroJSON, avro.AvroJSON
		}
	}
	releaseArena := func() {
		if spec != nil {
			putBuf(spec.arena)
		}
	}
	req, gerr := parseBatch(body, s.opt.MaxRecords, spec)
	if gerr == nil {
		// So is the record table the parse filled.
		gerr = hold.Grow(int64(cap(req.Records))*recordBytes + int64(cap(req.Errs))*8)
		if gerr == nil {
			gerr = allow(key, len(req.Records))
		}
		if gerr != nil {
			req.release()
		}
	}
	if gerr != nil {
		releaseArena()
		putBuf(body)
		hold.Release()
		s.fail(w, gerr)
		return
	}
	settled := false // nothing of the request is still with the Kafka writer
	defer func() {
		if settled {
			req.release()
			releaseArena()
			putBuf(body)
		}
	}()
	format, err := parseFormat(req.Format)
	if err != nil {
		settled = true
		hold.Release()
		s.fail(w, gateway.Errorf(gateway.KindBadRequest, "format: %v", err))
		return
	}
	if ct == ContentAvroJSON && req.Format == "" {
		format = gateway.FormatAvroJSON
	}
	async := req.Async || pq.Async
	b := &gateway.Batch{Topic: topic, Value: gateway.SchemaRef{ID: req.SchemaID, Version: req.SchemaVersion}, Format: format, KeyFormat: format, Async: async, Hold: hold}
	pre := req.Errs
	b.Records = req.Records[:0] // compacted in place: only the records that parsed
	for i := range req.Records {
		if pre[i] == nil {
			b.Records = append(b.Records, req.Records[i])
		}
	}
	results, perr := s.eng.Produce(r.Context(), b)
	settled = b.Settled
	if perr != nil {
		s.fail(w, gateway.AsError(perr))
		return
	}
	all := results
	if len(results) != len(pre) {
		all = make([]gateway.Result, len(pre))
		j := 0
		for i := range all {
			if pre[i] != nil {
				all[i].Err = pre[i]
				continue
			}
			all[i] = results[j]
			j++
		}
	}
	status, retry := batchStatus(all, async)
	if retry != nil {
		w.Header().Set("Retry-After", gateway.RetryAfterSeconds(s.opt.RetryAfter))
	}
	// Hand-rolled: encoding/json's reflection was a visible share of a
	// 1000-record request.
	buf := getBuf(int64(64 + len(all)*96))
	defer func() { putBuf(buf) }()
	buf = append(buf, `{"topic":`...)
	buf = appendJSONString(buf, topic)
	buf = append(buf, `,"results":[`...)
	for i := range all {
		if i > 0 {
			buf = append(buf, ',')
		}
		if res := &all[i]; res.Err == nil && !async {
			buf = appendProduced(buf, res)
			continue
		}
		buf = appendResult(buf, nativeResult(topic, all[i], async))
	}
	buf = append(buf, "]}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf)
}

// appendProduced is appendResult(nativeResult(...)) for the common case,
// a record in Kafka, without the intermediate value's allocations.
func appendProduced(dst []byte, r *gateway.Result) []byte {
	dst = append(dst, `{"partition":`...)
	dst = strconv.AppendInt(dst, int64(r.Partition), 10)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, r.Offset, 10)
	dst = append(dst, `,"timestamp":"`...)
	dst = r.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	if r.SchemaID != 0 {
		dst = append(dst, `,"schema_id":`...)
		dst = strconv.AppendInt(dst, int64(r.SchemaID), 10)
	}
	return append(dst, '}')
}

// appendJSONString quotes s as encoding/json does; plain ASCII (the
// common case: timestamps, topics) skips the encoder.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s)
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendResult renders r exactly as encoding/json would (same field order
// and omitempty rules).
func appendResult(dst []byte, r NativeResult) []byte {
	dst = append(dst, '{')
	first := true
	sep := func() {
		if !first {
			dst = append(dst, ',')
		}
		first = false
	}
	if r.Topic != "" {
		sep()
		dst = append(dst, `"topic":`...)
		dst = appendJSONString(dst, r.Topic)
	}
	if r.Partition != nil {
		sep()
		dst = append(dst, `"partition":`...)
		dst = strconv.AppendInt(dst, int64(*r.Partition), 10)
	}
	if r.Offset != nil {
		sep()
		dst = append(dst, `"offset":`...)
		dst = strconv.AppendInt(dst, *r.Offset, 10)
	}
	if r.Timestamp != "" {
		sep()
		dst = append(dst, `"timestamp":`...)
		dst = appendJSONString(dst, r.Timestamp)
	}
	if r.SchemaID != 0 {
		sep()
		dst = append(dst, `"schema_id":`...)
		dst = strconv.AppendInt(dst, int64(r.SchemaID), 10)
	}
	if r.Queued {
		sep()
		dst = append(dst, `"queued":true`...)
	}
	if r.DeadLettered {
		sep()
		dst = append(dst, `"dead_lettered":true`...)
	}
	if r.ErrorCode != 0 {
		sep()
		dst = append(dst, `"error_code":`...)
		dst = strconv.AppendInt(dst, int64(r.ErrorCode), 10)
	}
	if r.Message != "" {
		sep()
		dst = append(dst, `"message":`...)
		dst = appendJSONString(dst, r.Message)
	}
	if r.Field != "" {
		sep()
		dst = append(dst, `"field":`...)
		dst = appendJSONString(dst, r.Field)
	}
	return append(dst, '}')
}

// parseLine decodes one NDJSON line into a record.
func parseLine(line []byte, n int) (gateway.Record, *gateway.Error) {
	rec, rerr, structural := recordFromRaw(line, func() string { return fmt.Sprintf("line %d: ", n) })
	if rerr != nil {
		rerr.Kind = gateway.KindInvalidRecord
		if structural {
			rerr.Message = fmt.Sprintf("line %d: malformed record: %s", n, strings.TrimPrefix(rerr.Message, fmt.Sprintf("line %d: ", n)))
		}
		return rec, rerr
	}
	return rec, nil
}

// nativeStream handles application/x-ndjson: one record per line in, one
// result line per record out, in order, while the body is still arriving.
// Memory stays bounded: one chunk being produced plus one being read.
func (s *Server) nativeStream(w http.ResponseWriter, r *http.Request, topic string, key *auth.Key, pq produceQuery) {
	g := gateway.Group{Topic: topic, Value: gateway.SchemaRef{ID: pq.SchemaID, Version: pq.SchemaVersion}, Format: pq.Format, KeyFormat: pq.Format}
	if gerr := s.eng.Check(r.Context(), &gateway.Batch{Topic: topic, Value: g.Value}); gerr != nil {
		s.fail(w, gerr)
		return
	}
	rc := http.NewResponseController(w)
	_ = rc.EnableFullDuplex()
	w.Header().Set("Content-Type", ContentNDJSON)
	sw := &streamWriter{w: w, rc: rc, status: http.StatusOK}

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	items := make(chan gateway.StreamItem, s.opt.StreamChunk)
	readErr := make(chan error, 1)
	sa := s.streamAuth(r, topic)
	var stoppedEarly atomic.Bool // the reader left the body unread
	go func() {
		defer close(items)
		hold := s.eng.NewHold()
		defer func() { hold.Release() }() // whatever the last line left
		lr := &lineReader{r: bufio.NewReaderSize(r.Body, 64<<10), max: s.opt.MaxRecordBytes + 64<<10,
			reserve: func(n int) *gateway.Error { return hold.GrowWait(ctx, int64(n)) }}
		n := 0
		for {
			line, err := lr.next()
			var be budgetError
			if errors.As(err, &be) {
				// The budget stayed exhausted for the produce timeout:
				// the line is refused and the stream ends (its rest was
				// not read).
				stoppedEarly.Store(true)
				select {
				case items <- gateway.StreamItem{Pre: be.e}:
				case <-ctx.Done():
				}
				return
			}
			if err != nil && err != errLineTooLong {
				if !errors.Is(err, io.EOF) {
					readErr <- err
				}
				return
			}
			n++
			if k, aerr := sa.check(s); aerr != nil {
				// A revoked key: this line and the rest are not accepted.
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
			it := gateway.StreamItem{Group: g, Size: len(line)}
			if err == errLineTooLong {
				it.Pre = &gateway.Error{Kind: gateway.KindRecordTooLarge, Message: fmt.Sprintf("line %d: longer than %d bytes", n, lr.max)}
			} else if len(line) == 0 {
				n--
				continue
			} else {
				it.Record, it.Pre = parseLine(line, n)
			}
			// The line's reservation goes with it until Kafka answered.
			it.Hold, hold = hold, s.eng.NewHold()
			select {
			case items <- it:
			case <-ctx.Done():
				return
			}
		}
	}()
	emit := func(_ *gateway.StreamItem, res gateway.Result) error {
		b, _ := json.Marshal(nativeResult(topic, res, false))
		sw.buf = append(sw.buf, b...)
		sw.buf = append(sw.buf, '\n')
		if len(items) == 0 || len(sw.buf) > 32<<10 {
			return sw.flush()
		}
		return nil
	}
	if err := s.eng.RunStream(ctx, items, s.opt.StreamChunk, emit); err != nil {
		s.log.Info("ndjson stream ended early", "topic", topic, "err", err)
		cancel()
		return
	}
	select {
	case err := <-readErr:
		b, _ := json.Marshal(NativeResult{ErrorCode: gateway.CodeBadRequest, Message: "reading request body: " + err.Error()})
		sw.buf = append(append(sw.buf, b...), '\n')
	default:
	}
	_ = sw.flush()
	if stoppedEarly.Load() {
		abandonBody(rc, r.Body)
	}
}
