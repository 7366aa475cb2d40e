package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/sluicehq/sluice/pkg/avro"
	"github.com/sluicehq/sluice/pkg/backoff"
	"github.com/sluicehq/sluice/pkg/kafka"
	"github.com/sluicehq/sluice/pkg/registry"
	"github.com/sluicehq/sluice/pkg/service"
	psink "github.com/sluicehq/sluice/pkg/sink"
	"github.com/sluicehq/sluice/services/search-sink/internal/alert"
	"github.com/sluicehq/sluice/services/search-sink/internal/config"
	"github.com/sluicehq/sluice/services/search-sink/internal/document"
	"github.com/sluicehq/sluice/services/search-sink/internal/es"
	"github.com/sluicehq/sluice/services/search-sink/internal/limits"
	"github.com/sluicehq/sluice/services/search-sink/internal/mapping"
	"github.com/sluicehq/sluice/services/search-sink/internal/rules"
	"github.com/sluicehq/sluice/services/search-sink/internal/sink"
	"github.com/sluicehq/sluice/services/search-sink/internal/target"
)

// codecSource adapts pkg/avro's codec cache to the document builder.
type codecSource struct{ c *avro.Codecs }

func (s codecSource) Codec(ctx context.Context, id int) (*document.Codec, error) {
	c, err := s.c.ByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return &document.Codec{ID: c.ID, Schema: c.Schema.Schema, Codec: c}, nil
}

// run wires the service explicitly and blocks until shutdown.
func run(ctx context.Context, args []string) error {
	cfg, err := config.Load(args, os.LookupEnv)
	if err != nil {
		return err
	}
	log := service.NewLogger(os.Stderr, "search-sink", cfg.Service.LogLevel)
	app := service.New("search-sink", cfg.Service, log)

	// Rules are validated first: a bad file is a configuration error (exit 2).
	var ruleFile *rules.File
	if cfg.RulesFile != "" {
		if ruleFile, err = rules.LoadFile(cfg.RulesFile); err != nil {
			return service.Invalid("SEARCH_SINK_RULES_FILE", "%v", err)
		}
	}

	kc, err := kafka.New(cfg.Kafka)
	if err != nil {
		return fmt.Errorf("building kafka clients: %w", err)
	}
	app.OnClose("kafka", func(context.Context) error { kc.Close(); return nil })
	app.ReadyCheck("kafka", func(ctx context.Context) error { return kc.Ping(ctx, 2*time.Second) })

	reg := registry.New(cfg.Registry)
	codecs := avro.NewCodecs(reg, avro.WithLimits(cfg.Avro))
	app.ReadyCheck("registry", func(ctx context.Context) error { return reg.Ping(ctx) })

	esc, err := connectES(ctx, cfg)
	if err != nil {
		return err
	}
	log.Info("search cluster verified", "flavor", esc.Flavor, "version", esc.Version)
	app.ReadyCheck("search", func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := esc.Do(ctx, http.MethodGet, "/", nil, nil)
		return err
	})

	docNamer, err := cfg.Namer()
	if err != nil {
		return service.Invalid("SEARCH_SINK_INDEX_PATTERN", "%v", err)
	}
	dataStreams := docNamer.Mode() == document.ModeDataStream
	var reserved []string
	if cfg.AlertsIndex != "-" {
		reserved = append(reserved, cfg.AlertsIndex)
	}
	namer := target.NewNamer(docNamer, reserved...)
	if cfg.IDMode == "key" && strings.Contains(cfg.IndexPattern, "{") {
		log.Warn("SEARCH_SINK_ID_MODE=key with a dated SEARCH_SINK_INDEX_PATTERN: a key's records of different days are different documents in different indices", "pattern", cfg.IndexPattern)
	}
	inst := es.NewInstaller(esc, es.InstallOptions{Policy: cfg.Policy, RetentionDays: cfg.Retention, DataStreams: dataStreams, Shards: cfg.Shards, Replicas: cfg.Replicas}, log)
	if err := inst.EnsurePolicy(ctx); err != nil {
		return err
	}
	decimals := document.DecimalString
	if cfg.Decimals == "number" {
		decimals = document.DecimalNumber
	}
	metaName := ""
	if cfg.KafkaMeta {
		metaName = cfg.KafkaMetaName
	}
	reservedFields := 1 // @timestamp
	if metaName != "" {
		reservedFields += 5 // the metadata object and its four fields
	}
	mopt := mapping.Options{Strings: mapping.StringMode(cfg.Strings), Decimal: decimals, OpenSearch: esc.Flavor == es.OpenSearch, Limits: cfg.Mapping, Reserved: reservedFields}
	mmetrics := mapping.NewMetrics(app.Metrics())
	prepare := func(ctx context.Context, topic string) error {
		name, err := namer.Template(topic)
		if err != nil {
			return err
		}
		pattern, err := namer.Pattern(topic)
		if err != nil {
			return err
		}
		props := map[string]any{}
		s, err := reg.RefreshLatest(ctx, topic+"-value") // rare (start, discovery, schema change): never stale
		switch {
		case err == nil:
			if n, perr := document.ParseSchema(s.Schema); perr == nil {
				var st mapping.Stats
				props, st = mapping.Properties(n, mopt)
				if len(st.Truncated) > 0 {
					mmetrics.Observe(topic, st)
					log.Warn("schema too large to map in full: subtrees mapped as disabled objects (kept in _source, not indexed)",
						"topic", topic, "schema_id", s.ID, "fields", st.Fields, "truncated", len(st.Truncated), "paths", st.Paths(10))
				}
			} else {
				log.Warn("schema not usable for mappings; relying on dynamic mapping", "topic", topic, "err", perr)
			}
		case registry.IsNotFound(err):
			log.Info("no value schema registered; relying on dynamic mapping", "topic", topic)
		default:
			return fmt.Errorf("fetching schema of %s: %w", topic, err)
		}
		if metaName != "" {
			props[metaName] = map[string]any{"properties": map[string]any{
				"topic": map[string]any{"type": "keyword"}, "partition": map[string]any{"type": "integer"},
				"offset": map[string]any{"type": "long"}, "key": map[string]any{"type": "keyword", "ignore_above": 512},
			}}
		}
		return inst.EnsureTemplate(ctx, name, pattern, props)
	}

	rm := psink.NewMetrics(app.Metrics(), "search", cfg.MaxTopicLabels)
	m := sink.NewMetrics(app.Metrics(), rm.TopicLabel)
	retry := backoff.Policy{Base: cfg.RetryBase, Max: cfg.RetryMax, Attempts: cfg.RetryAttempts}

	// Alert delivery exists when rules are configured; parked topics are
	// reported through it too.
	var disp *alert.Dispatcher
	var exclude []string
	if cfg.AlertsTopic != "-" && cfg.AlertsTopic != "" {
		exclude = append(exclude, cfg.AlertsTopic) // alerts are not data, whoever produced them
	}
	if ruleFile != nil {
		am := alert.NewMetrics(app.Metrics())
		var ns []alert.Notifier
		hc := &http.Client{Timeout: 10 * time.Second}
		if cfg.SlackURL != "" {
			ns = append(ns, &alert.Slack{URL: cfg.SlackURL, HTTP: hc})
		}
		if cfg.WebhookURL != "" {
			ns = append(ns, &alert.Webhook{URL: cfg.WebhookURL, HTTP: hc})
		}
		if cfg.AlertsTopic != "-" && cfg.AlertsTopic != "" {
			if _, err := kc.EnsureTopic(ctx, kafka.TopicSpec{Name: cfg.AlertsTopic, Partitions: 1}); err != nil {
				return fmt.Errorf("ensuring alerts topic: %w", err)
			}
			aw := kc.NewWriter(kafka.WriterOptions{})
			app.OnClose("alerts-writer", func(context.Context) error { return aw.Close() })
			ns = append(ns, &alert.Kafka{Topic: cfg.AlertsTopic, Writer: aw})
		}
		if cfg.AlertsIndex != "-" && cfg.AlertsIndex != "" {
			ns = append(ns, &alert.Index{Index: cfg.AlertsIndex, Transport: esc})
		}
		disp = alert.NewDispatcher(ns, cfg.AlertRetries, 200*time.Millisecond, am, log)
		app.Go("alerts", disp.Run)
	}
	var notify func(psink.ParkNotice)
	if disp != nil {
		notify = func(n psink.ParkNotice) { disp.Emit(alert.Parked(n.Topic, string(n.Reason), n.Err, n.At, n.RetryAt)) }
	}

	// The writer's own batch limit must not refuse a dead letter Fit let
	// through (SEARCH_SINK_DLQ_MAX_BYTES plus record framing).
	dlqWriter := kc.NewWriter(kafka.WriterOptions{BatchTimeout: time.Millisecond, BatchBytes: int64(cfg.DLQMaxBytes) + 64<<10})
	app.OnClose("dlq-writer", func(context.Context) error { return dlqWriter.Close() })
	pl, err := sink.NewPipeline(esc, sink.PipelineOptions{
		Workers: cfg.Workers, FlushActions: cfg.FlushActions, FlushBytes: cfg.FlushBytes, FlushInterval: cfg.FlushInterval,
		MaxBufferedDocs: int64(cfg.MaxDocs), MaxBufferedBytes: int64(cfg.MaxBytes), Retry: retry,
	}, m, log)
	if err != nil {
		return err
	}
	app.OnClose("bulk-indexer", func(ctx context.Context) error { return pl.Close(ctx) })
	// Records are transcoded straight from Avro binary to JSON unless the
	// rules need the decoded fields.
	builder := document.NewBuilder(codecSource{codecs}, document.Options{Namer: docNamer, IDMode: document.IDMode(cfg.IDMode), Decimal: decimals, MetaField: metaName, Fields: ruleFile != nil,
		Budget: avro.NewBudgetCounter(app.Metrics(), "searchsink"), TopicLabel: rm.TopicLabel})

	var observe sink.Observer
	if ruleFile != nil {
		engine := rules.NewEngine(ruleFile, disp.Emit, disp.Stats(),
			rules.WithLimits(rules.Limits{StateBytes: int64(cfg.RuleStateBytes), TermBytes: cfg.RuleTermBytes}), rules.WithLogger(log))
		app.Metrics().MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sluice_searchsink_rule_state_bytes",
			Help: "Approximate memory of all rule state (bounded by SEARCH_SINK_RULES_MAX_STATE_BYTES)."}, func() float64 { return float64(engine.StateBytes()) }))
		observe = engine.Observe
		log.Info("anomaly rules loaded", "rules", engine.Rules(), "destinations", disp.Destinations())
	}

	var budget *limits.IndexBudget
	if !dataStreams && cfg.NewIndicesPerHour > 0 {
		budget = &limits.IndexBudget{PerHour: cfg.NewIndicesPerHour, Exists: func(ctx context.Context, index string) (bool, error) {
			st, err := esc.Do(ctx, http.MethodHead, "/"+url.PathEscape(index), nil, nil)
			if st == http.StatusNotFound {
				return false, nil
			}
			return err == nil, err
		}}
	}
	maxAge, ageVar := cfg.RecordAge()
	start := kafkago.FirstOffset
	if cfg.StartOffset == "latest" {
		start = kafkago.LastOffset
	}
	w := sink.NewWriter(sink.Options{
		Builder: builder, Pipeline: pl, Metrics: m, Log: log,
		Namer: namer, KeyIDs: cfg.IDMode == "key", Budget: budget, Prepare: prepare, Observe: observe,
		Window:      limits.TimeWindow{MaxAge: maxAge, AgeVar: ageVar, MaxSkew: cfg.MaxFutureSkew, SkewVar: "SEARCH_SINK_MAX_FUTURE_SKEW"},
		MaxDocBytes: cfg.MaxDocBytes,
	})
	rt, err := psink.New(psink.Options{
		Name: "search", GroupID: cfg.GroupID, Topics: cfg.Topics, Exclude: exclude, TopicRefresh: cfg.TopicRefresh,
		Brokers: kc.Brokers(), Dialer: kc.Dialer, Admin: psink.NewKafkaAdmin(kc, cfg.TopicRefresh),
		DLQ: dlqWriter, DLQMaxBytes: cfg.DLQMaxBytes, StartOffset: start,
		CommitInterval: cfg.CommitEvery, DrainTimeout: cfg.DrainTimeout, FlushOnStop: true, FlushOnRevoke: true,
		Retry: retry, Park: backoff.Policy{Base: cfg.ParkRetryBase, Max: cfg.ParkRetryMax},
		Writer: w, Metrics: rm, Log: log, OnPark: notify,
	})
	if err != nil {
		return err
	}
	app.Go("retries", pl.RunRetries)
	app.Go("flusher", pl.RunFlusher)
	// The runtime drains in its OnStop hook (flush, wait for
	// acknowledgements, final commit) while the retry loop, the flusher and
	// the DLQ writer still run.
	app.Add("sink", rt)

	ln, err := service.Listen(ctx, cfg.AdminAddr)
	if err != nil {
		return err
	}
	app.ServeHTTP("admin", service.AdminServer(app), ln)
	return app.Run(ctx)
}

// connectES builds the client and verifies the product. A product mismatch
// fails at once; an unreachable cluster is retried for up to a minute.
func connectES(ctx context.Context, cfg *config.Config) (*es.Client, error) {
	o := es.Options{
		URLs: cfg.ES.URLs, Username: cfg.ES.Username, Password: cfg.ES.Password, APIKey: cfg.ES.APIKey,
		Flavor: es.Flavor(cfg.ES.Flavor), InsecureSkipVerify: cfg.ES.InsecureSkipVerify, Timeout: cfg.ES.Timeout,
		SigV4: cfg.ES.AWSSigV4, AWSRegion: cfg.ES.AWSRegion, AWSService: cfg.ES.AWSService,
	}
	if cfg.ES.CAFile != "" {
		b, err := os.ReadFile(cfg.ES.CAFile)
		if err != nil {
			return nil, service.Invalid("ES_CA_FILE", "%v", err)
		}
		o.CACert = b
	}
	if o.SigV4 {
		ac, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion(o.AWSRegion))
		if err != nil {
			return nil, fmt.Errorf("loading AWS credentials for ES_AWS_SIGV4: %w", err)
		}
		o.Credentials = ac.Credentials
	}
	c, err := es.New(o)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(time.Minute)
	for {
		vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = c.Verify(vctx)
		cancel()
		var pe *es.ProductError
		if err == nil {
			return c, nil
		}
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("search cluster at %s: %w", redactedURLs(cfg.ES.URLs), err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("search cluster at %s: %w", redactedURLs(cfg.ES.URLs), err)
		}
		t := time.NewTimer(2 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// redactedURLs renders URLs for messages with any password masked.
func redactedURLs(us []string) string {
	out := make([]string, len(us))
	for i, s := range us {
		if u, err := url.Parse(s); err == nil {
			out[i] = u.Redacted()
		} else {
			out[i] = "(unparsable URL)"
		}
	}
	return strings.Join(out, ",")
}
