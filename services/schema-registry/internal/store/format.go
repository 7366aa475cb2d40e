package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Key types of Confluent's _schemas records.
const (
	KeySchema        = "SCHEMA"
	KeyConfig        = "CONFIG"
	KeyMode          = "MODE"
	KeyNoop          = "NOOP"
	KeyDeleteSubject = "DELETE_SUBJECT"
	KeyClearSubject  = "CLEAR_SUBJECT"
)

// Key is a decoded _schemas record key. Subject is nil for the global
// CONFIG and MODE keys (Confluent writes "subject":null).
type Key struct {
	Type    string
	Subject *string
	Version int
	Magic   int
}

// The encoders below fix the JSON field order to Confluent's, so that a
// key we write is byte-identical to the key Confluent writes for the same
// thing: log compaction compares keys as bytes.
type schemaKeyJSON struct {
	KeyType string `json:"keytype"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
	Magic   int    `json:"magic"`
}

type subjectKeyJSON struct {
	KeyType string  `json:"keytype"`
	Subject *string `json:"subject"`
	Magic   int     `json:"magic"`
}

type noopKeyJSON struct {
	KeyType string `json:"keytype"`
	Magic   int    `json:"magic"`
}

// SchemaKey encodes the key of one subject version.
func SchemaKey(subject string, version int) []byte {
	return mustJSON(schemaKeyJSON{KeySchema, subject, version, 1})
}

// ConfigKey encodes a compatibility key; subject "" is the global one.
func ConfigKey(subject string) []byte { return subjectKey(KeyConfig, subject) }

// ModeKey encodes a mode key; subject "" is the global one.
func ModeKey(subject string) []byte { return subjectKey(KeyMode, subject) }

// DeleteSubjectKey encodes a soft subject delete key.
func DeleteSubjectKey(subject string) []byte { return subjectKey(KeyDeleteSubject, subject) }

// NoopKey encodes a no-op key.
func NoopKey() []byte { return mustJSON(noopKeyJSON{KeyNoop, 0}) }

func subjectKey(kind, subject string) []byte {
	var s *string
	if subject != "" {
		s = &subject
	}
	return mustJSON(subjectKeyJSON{kind, s, 0})
}

func mustJSON(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("encoding %T: %v", v, err)) // only fixed struct types reach here
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// ParseKey decodes a record key.
func ParseKey(b []byte) (Key, error) {
	var raw struct {
		KeyType string  `json:"keytype"`
		Subject *string `json:"subject"`
		Version *int    `json:"version"`
		Magic   int     `json:"magic"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return Key{}, fmt.Errorf("decoding _schemas key %q: %w", truncate(b), err)
	}
	if raw.KeyType == "" {
		return Key{}, fmt.Errorf("decoding _schemas key %q: no keytype", truncate(b))
	}
	k := Key{Type: raw.KeyType, Subject: raw.Subject, Magic: raw.Magic}
	if raw.Version != nil {
		k.Version = *raw.Version
	}
	if k.Type == KeySchema && (k.Subject == nil || k.Version < 1) {
		return Key{}, fmt.Errorf("decoding _schemas key %q: SCHEMA key needs a subject and a version >= 1", truncate(b))
	}
	return k, nil
}

// Reference is a schema reference as stored in a SCHEMA value.
type Reference struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// SchemaValue is the value of a SCHEMA record. SchemaType is omitted for
// Avro, as Confluent does.
type SchemaValue struct {
	Subject    string      `json:"subject"`
	Version    int         `json:"version"`
	ID         int         `json:"id"`
	SchemaType string      `json:"schemaType,omitempty"`
	References []Reference `json:"references,omitempty"`
	Schema     string      `json:"schema"`
	Deleted    bool        `json:"deleted"`
}

// Type returns the schema type, AVRO when absent.
func (v *SchemaValue) Type() string {
	if v.SchemaType == "" {
		return "AVRO"
	}
	return v.SchemaType
}

// Encode returns the JSON value.
func (v *SchemaValue) Encode() []byte {
	c := *v
	if c.SchemaType == "AVRO" {
		c.SchemaType = ""
	}
	return mustJSON(c)
}

// ParseSchemaValue decodes a SCHEMA value.
func ParseSchemaValue(b []byte) (*SchemaValue, error) {
	var v SchemaValue
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("decoding SCHEMA value: %w", err)
	}
	if v.Subject == "" || v.Version < 1 || v.ID < 0 || v.Schema == "" {
		return nil, errors.New("decoding SCHEMA value: subject, version >= 1, id >= 0 and schema are required")
	}
	return &v, nil
}

// ConfigValue is the value of a CONFIG record.
type ConfigValue struct {
	CompatibilityLevel string `json:"compatibilityLevel"`
}

// ParseConfigValue decodes a CONFIG value (newer Confluent versions add
// fields we ignore).
func ParseConfigValue(b []byte) (string, error) {
	var v struct {
		CompatibilityLevel string `json:"compatibilityLevel"`
		Compatibility      string `json:"compatibility"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return "", fmt.Errorf("decoding CONFIG value: %w", err)
	}
	if v.CompatibilityLevel == "" {
		v.CompatibilityLevel = v.Compatibility
	}
	return v.CompatibilityLevel, nil
}

// ModeValue is the value of a MODE record.
type ModeValue struct {
	Mode string `json:"mode"`
}

// ParseModeValue decodes a MODE value.
func ParseModeValue(b []byte) (string, error) {
	var v ModeValue
	if err := json.Unmarshal(b, &v); err != nil {
		return "", fmt.Errorf("decoding MODE value: %w", err)
	}
	return v.Mode, nil
}

// DeleteSubjectValue is the value of a DELETE_SUBJECT record: every
// version up to Version is soft-deleted.
type DeleteSubjectValue struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// ParseDeleteSubjectValue decodes a DELETE_SUBJECT (or CLEAR_SUBJECT) value.
func ParseDeleteSubjectValue(b []byte) (*DeleteSubjectValue, error) {
	var v DeleteSubjectValue
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("decoding DELETE_SUBJECT value: %w", err)
	}
	return &v, nil
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
