package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/wire"
)

// TestMetadataFieldNamesKept: a schema with fields named like
// Elasticsearch's metadata fields (_id, _source, _routing) would have every
// document refused (document_parsing_exception, as ES 8 and the double
// answer) and its template rejected. The sink writes them as "@_id" ...
// in documents and mapping alike: every record is indexed, nothing is
// dead-lettered, and the values are kept.
func TestMetadataFieldNamesKept(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	const schema = `{"type":"record","name":"Meta","fields":[{"name":"_id","type":"string"},{"name":"_source","type":"long"},{"name":"_routing","type":["null","string"],"default":null},{"name":"plain","type":"string"}]}`
	e.kc.CreateTopic("meta", 1, nil)
	id := e.reg.Register(t, "meta-value", schema)
	codec, err := goavro.NewCodec(schema)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []kafkago.Message
	for i := 0; i < 5; i++ {
		bin, err := codec.BinaryFromNative(nil, map[string]any{"_id": "mongo-" + string(rune('a'+i)), "_source": int64(i), "_routing": goavro.Union("string", "r"), "plain": "p"})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafkago.Message{Topic: "meta", Value: wire.Encode(uint32(id), bin), Time: day0})
	}
	e.write(t, msgs...)
	startSink(t, e.args(t, "-search-sink-group-id", "meta", "-search-sink-topics", "meta"))
	eventually(t, 30*time.Second, "every record indexed and committed", func() bool {
		return len(e.es.Docs(dayIndex("meta", 0))) == 5 && sum(e.committedTopic(t, "meta", "meta")) == 5
	})
	for docID, raw := range e.es.Docs(dayIndex("meta", 0)) {
		var d map[string]any
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		if _, bad := d["_id"]; bad || !strings.HasPrefix(d["@_id"].(string), "mongo-") || d["@_routing"] != "r" || d["plain"] != "p" {
			t.Fatalf("document %s = %s", docID, raw)
		}
	}
	tmpl := lastTemplate(t, e, "sluice-meta")
	if !strings.Contains(string(tmpl), `"@_id"`) || strings.Contains(string(tmpl), `"_id"`) {
		t.Fatalf("template maps %s", tmpl)
	}
}
