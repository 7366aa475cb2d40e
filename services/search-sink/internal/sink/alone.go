package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/elastic/go-elasticsearch/v8/esutil"
)

// sendAlone indexes one record in a bulk request of its own. Records get
// here when a bulk request was refused as a whole (a 4xx other than 429):
// alone, a refusal can only be this record's, and it is dead-lettered.
func (p *Pipeline) sendAlone(ctx context.Context, it *item) {
	meta := map[string]any{"_index": it.doc.Index, "_id": it.doc.ID}
	if it.doc.Version >= 0 {
		meta["version"] = it.doc.Version
		meta["version_type"] = "external"
	}
	line, err := json.Marshal(map[string]any{string(it.doc.Action): meta})
	if err != nil {
		p.failed(it, esutil.BulkIndexerResponseItem{}, fmt.Errorf("encoding bulk action: %w", err))
		return
	}
	var body bytes.Buffer
	body.Write(line)
	body.WriteByte('\n')
	if it.doc.Body != nil && it.doc.Action != "delete" {
		body.Write(it.doc.Body)
		body.WriteByte('\n')
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/_bulk", &body)
	if err != nil {
		p.failed(it, esutil.BulkIndexerResponseItem{}, fmt.Errorf("building bulk request: %w", err))
		return
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	res, err := p.t.Perform(req)
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: not acknowledged, delivered again
		}
		p.failed(it, esutil.BulkIndexerResponseItem{}, fmt.Errorf("flush: %w", err))
		return
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		p.failed(it, esutil.BulkIndexerResponseItem{}, fmt.Errorf("flush: reading response: %w", err))
		return
	}
	if res.StatusCode > 299 {
		// The same text esutil's error has, so requestStatus reads it.
		p.failed(it, esutil.BulkIndexerResponseItem{}, fmt.Errorf("flush: [%d %s] %s", res.StatusCode, http.StatusText(res.StatusCode), truncate(raw, 500)))
		return
	}
	var out struct {
		Items []map[string]esutil.BulkIndexerResponseItem `json:"items"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Items) != 1 {
		p.failed(it, esutil.BulkIndexerResponseItem{}, fmt.Errorf("flush: unexpected bulk response: %s", truncate(raw, 500)))
		return
	}
	for _, r := range out.Items[0] {
		if r.Error.Type != "" || r.Status > 201 {
			p.failed(it, r, nil)
		} else {
			p.succeeded(it)
		}
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}
