package es

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"sync"
)

// ManagedBy marks the templates and policies the sink owns.
const ManagedBy = "sluice-search-sink"

// InstallOptions configure templates and the lifecycle policy.
type InstallOptions struct {
	Policy        string // ILM/ISM policy name
	RetentionDays int    // delete after N days; 0 keeps forever
	DataStreams   bool
	Shards        int
	Replicas      int // -1: cluster default
}

// Installer puts the lifecycle policy and one composable index template per
// topic in place, idempotently: each carries a hash of its body in _meta
// and is only written when missing or different, so restarts and many
// replicas do not rewrite them.
type Installer struct {
	c   *Client
	o   InstallOptions
	log *slog.Logger

	mu   sync.Mutex
	done map[string]string // template name -> hash installed or verified
}

// NewInstaller returns an installer over c.
func NewInstaller(c *Client, o InstallOptions, log *slog.Logger) *Installer {
	return &Installer{c: c, o: o, log: log, done: map[string]string{}}
}

func hashOf(v any) string {
	b, _ := json.Marshal(v) // map keys are sorted: stable
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// EnsurePolicy installs the ILM policy (Elasticsearch): hot, then delete
// after RetentionDays; the templates reference it by name. On OpenSearch the
// ISM policy is maintained per topic by EnsureTemplate instead.
func (in *Installer) EnsurePolicy(ctx context.Context) error {
	if in.o.RetentionDays <= 0 || in.o.Policy == "" || in.c.Flavor == OpenSearch {
		return nil
	}
	hot := map[string]any{"min_age": "0ms", "actions": map[string]any{}}
	if in.o.DataStreams {
		hot["actions"] = map[string]any{"rollover": map[string]any{"max_age": "1d", "max_primary_shard_size": "50gb"}}
	}
	policy := map[string]any{
		"phases": map[string]any{
			"hot":    hot,
			"delete": map[string]any{"min_age": fmt.Sprintf("%dd", in.o.RetentionDays), "actions": map[string]any{"delete": map[string]any{}}},
		},
	}
	h := hashOf(policy)
	policy["_meta"] = map[string]any{"managed_by": ManagedBy, "sluice_hash": h}
	path := "/_ilm/policy/" + url.PathEscape(in.o.Policy)
	var cur map[string]struct {
		Policy struct {
			Meta map[string]any `json:"_meta"`
		} `json:"policy"`
	}
	st, err := in.c.Do(ctx, http.MethodGet, path, nil, &cur)
	if err != nil && st != http.StatusNotFound {
		return fmt.Errorf("reading ILM policy %s: %w", in.o.Policy, err)
	}
	if p, ok := cur[in.o.Policy]; ok && p.Policy.Meta["sluice_hash"] == h {
		return nil
	}
	if _, err := in.c.Do(ctx, http.MethodPut, path, map[string]any{"policy": policy}, nil); err != nil {
		return fmt.Errorf("installing ILM policy %s: %w", in.o.Policy, err)
	}
	in.log.Info("installed ILM policy", "policy", in.o.Policy, "retention_days", in.o.RetentionDays)
	return nil
}

// ensureISM makes the OpenSearch ISM policy cover pattern: its
// ism_template lists exactly the sink's topic patterns (the union of what
// is there and what this process needs), never a catch-all that would
// attach the retention to unrelated indices.
func (in *Installer) ensureISM(ctx context.Context, pattern string) error {
	path := "/_plugins/_ism/policies/" + url.PathEscape(in.o.Policy)
	var cur struct {
		SeqNo       *int64 `json:"_seq_no"`
		PrimaryTerm *int64 `json:"_primary_term"`
		Policy      struct {
			Description string `json:"description"`
			ISMTemplate []struct {
				IndexPatterns []string `json:"index_patterns"`
			} `json:"ism_template"`
		} `json:"policy"`
	}
	st, err := in.c.Do(ctx, http.MethodGet, path, nil, &cur)
	if err != nil && st != http.StatusNotFound {
		return fmt.Errorf("reading ISM policy %s: %w", in.o.Policy, err)
	}
	patterns := []string{pattern}
	for _, t := range cur.Policy.ISMTemplate {
		patterns = append(patterns, t.IndexPatterns...)
	}
	slices.Sort(patterns)
	patterns = slices.Compact(patterns)
	policy := map[string]any{
		"default_state": "hot",
		"states": []any{
			map[string]any{"name": "hot", "actions": []any{}, "transitions": []any{map[string]any{"state_name": "delete", "conditions": map[string]any{"min_index_age": fmt.Sprintf("%dd", in.o.RetentionDays)}}}},
			map[string]any{"name": "delete", "actions": []any{map[string]any{"delete": map[string]any{}}}, "transitions": []any{}},
		},
		"ism_template": []any{map[string]any{"index_patterns": patterns, "priority": 100}},
	}
	policy["description"] = "managed by " + ManagedBy + " hash " + hashOf(policy)
	if st == http.StatusOK && cur.Policy.Description == policy["description"] {
		return nil
	}
	if st == http.StatusOK && cur.SeqNo != nil && cur.PrimaryTerm != nil {
		path += fmt.Sprintf("?if_seq_no=%d&if_primary_term=%d", *cur.SeqNo, *cur.PrimaryTerm)
	}
	if _, err := in.c.Do(ctx, http.MethodPut, path, map[string]any{"policy": policy}, nil); err != nil {
		return fmt.Errorf("installing ISM policy %s: %w", in.o.Policy, err)
	}
	in.log.Info("installed ISM policy", "policy", in.o.Policy, "retention_days", in.o.RetentionDays, "patterns", patterns)
	return nil
}

// EnsureTemplate installs the composable template name for pattern with
// the given mapping properties (from the topic's Avro schema; may be empty),
// unless an identical one (same hash) is already there.
func (in *Installer) EnsureTemplate(ctx context.Context, name, pattern string, properties map[string]any) error {
	settings := map[string]any{}
	if in.o.Shards > 0 {
		settings["index.number_of_shards"] = in.o.Shards
	}
	if in.o.Replicas >= 0 {
		settings["index.number_of_replicas"] = in.o.Replicas
	}
	if in.c.Flavor != OpenSearch && in.o.RetentionDays > 0 && in.o.Policy != "" {
		settings["index.lifecycle.name"] = in.o.Policy
	}
	props := map[string]any{"@timestamp": map[string]any{"type": "date"}}
	for k, v := range properties {
		props[k] = v
	}
	tmpl := map[string]any{
		"index_patterns": []string{pattern},
		// Longer (more specific) patterns win: "a-b-*" over "a-*", and
		// over the built-in logs-*-* (priority 100).
		"priority": 200 + len(pattern),
		"template": map[string]any{
			"settings": settings,
			"mappings": map[string]any{"dynamic": true, "properties": props},
		},
	}
	if in.o.DataStreams {
		tmpl["data_stream"] = map[string]any{}
	}
	h := hashOf(tmpl)
	in.mu.Lock()
	if in.done[name] == h {
		in.mu.Unlock()
		return nil
	}
	in.mu.Unlock()
	if in.c.Flavor == OpenSearch && in.o.RetentionDays > 0 && in.o.Policy != "" {
		if err := in.ensureISM(ctx, pattern); err != nil {
			return err
		}
	}
	tmpl["_meta"] = map[string]any{"managed_by": ManagedBy, "sluice_hash": h}
	path := "/_index_template/" + url.PathEscape(name)
	var cur struct {
		IndexTemplates []struct {
			Name          string `json:"name"`
			IndexTemplate struct {
				Meta map[string]any `json:"_meta"`
			} `json:"index_template"`
		} `json:"index_templates"`
	}
	st, err := in.c.Do(ctx, http.MethodGet, path, nil, &cur)
	if err != nil && st != http.StatusNotFound {
		return fmt.Errorf("reading index template %s: %w", name, err)
	}
	for _, t := range cur.IndexTemplates {
		if t.Name == name && t.IndexTemplate.Meta["sluice_hash"] == h {
			in.mu.Lock()
			in.done[name] = h
			in.mu.Unlock()
			return nil
		}
	}
	if _, err := in.c.Do(ctx, http.MethodPut, path, tmpl, nil); err != nil {
		return fmt.Errorf("installing index template %s: %w", name, err)
	}
	in.mu.Lock()
	in.done[name] = h
	in.mu.Unlock()
	in.log.Info("installed index template", "template", name, "pattern", pattern)
	return nil
}
