package acceptance_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/sluicehq/sluice/pkg/testkit/kafkatest"
	"github.com/sluicehq/sluice/services/schema-registry/internal/srtest"
)

// TestFranzGoClient drives the registry with franz-go's sr client
// unchanged: register, look up, compatibility, config, mode, soft and
// hard delete.
func TestFranzGoClient(t *testing.T) {
	t.Parallel()
	kc := kafkatest.Start(t)
	in := srtest.Start(t, kc.Config(), srtest.Options{})
	cl, err := sr.NewClient(sr.URLs(in.URL))
	if err != nil {
		t.Fatal(err)
	}
	ctx := kafkatest.Context(t, 60*time.Second)
	v1 := avroRecord("User", "name")
	v2 := avroRecord("User", "name", "email")

	ss, err := cl.CreateSchema(ctx, "users-value", sr.Schema{Schema: v1})
	if err != nil {
		t.Fatalf("CreateSchema: %v", err)
	}
	if ss.ID != 1 || ss.Version != 1 || ss.Subject != "users-value" || ss.Schema.Schema != v1 {
		t.Fatalf("CreateSchema = %+v", ss)
	}
	got, err := cl.SchemaByID(ctx, ss.ID)
	if err != nil || got.Schema != v1 {
		t.Fatalf("SchemaByID = %+v, %v", got, err)
	}
	look, err := cl.LookupSchema(ctx, "users-value", sr.Schema{Schema: v1})
	if err != nil || look.ID != ss.ID || look.Version != 1 {
		t.Fatalf("LookupSchema = %+v, %v", look, err)
	}
	res, err := cl.CheckCompatibility(ctx, "users-value", -1, sr.Schema{Schema: v2})
	if err != nil || !res.Is {
		t.Fatalf("CheckCompatibility = %+v, %v", res, err)
	}
	bad := `{"type":"record","name":"User","namespace":"com.acme","fields":[{"name":"name","type":"string","default":""},{"name":"age","type":"int"}]}`
	res, err = cl.CheckCompatibility(ctx, "users-value", -1, sr.Schema{Schema: bad})
	if err != nil || res.Is {
		t.Fatalf("CheckCompatibility of a breaking change = %+v, %v", res, err)
	}
	_, err = cl.CreateSchema(ctx, "users-value", sr.Schema{Schema: bad})
	var re *sr.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusConflict || re.ErrorCode != 409 {
		t.Fatalf("registering a breaking change: %v", err)
	}
	ss2, err := cl.CreateSchema(ctx, "users-value", sr.Schema{Schema: v2})
	if err != nil || ss2.Version != 2 {
		t.Fatalf("CreateSchema v2 = %+v, %v", ss2, err)
	}
	vs, err := cl.SubjectVersions(ctx, "users-value")
	if err != nil || len(vs) != 2 {
		t.Fatalf("SubjectVersions = %v, %v", vs, err)
	}
	subjects, err := cl.Subjects(ctx)
	if err != nil || len(subjects) != 1 || subjects[0] != "users-value" {
		t.Fatalf("Subjects = %v, %v", subjects, err)
	}

	for _, r := range cl.SetCompatibility(ctx, sr.SetCompatibility{Level: sr.CompatFull}, "users-value") {
		if r.Err != nil || r.Level != sr.CompatFull {
			t.Fatalf("SetCompatibility = %+v", r)
		}
	}
	for _, r := range cl.Compatibility(ctx, "users-value") {
		if r.Err != nil || r.Level != sr.CompatFull {
			t.Fatalf("Compatibility = %+v", r)
		}
	}
	for _, r := range cl.Compatibility(ctx) {
		if r.Err != nil || r.Level != sr.CompatBackward {
			t.Fatalf("global Compatibility = %+v", r)
		}
	}
	for _, r := range cl.ResetCompatibility(ctx, "users-value") {
		if r.Err != nil {
			t.Fatalf("ResetCompatibility = %+v", r)
		}
	}
	for _, r := range cl.SetMode(ctx, sr.ModeReadOnly, "users-value") {
		if r.Err != nil || r.Mode != sr.ModeReadOnly {
			t.Fatalf("SetMode = %+v", r)
		}
	}
	for _, r := range cl.Mode(ctx, "users-value") {
		if r.Err != nil || r.Mode != sr.ModeReadOnly {
			t.Fatalf("Mode = %+v", r)
		}
	}
	for _, r := range cl.ResetMode(ctx, "users-value") {
		if r.Err != nil {
			t.Fatalf("ResetMode = %+v", r)
		}
	}

	usages, err := cl.SchemaUsagesByID(ctx, ss.ID)
	if err != nil || len(usages) != 1 || usages[0].Subject != "users-value" {
		t.Fatalf("SchemaUsagesByID = %+v, %v", usages, err)
	}
	if err := cl.DeleteSchema(ctx, "users-value", 1, sr.SoftDelete); err != nil {
		t.Fatalf("soft DeleteSchema: %v", err)
	}
	if err := cl.DeleteSchema(ctx, "users-value", 1, sr.HardDelete); err != nil {
		t.Fatalf("hard DeleteSchema: %v", err)
	}
	if _, err := cl.SchemaByID(ctx, ss.ID); !errors.As(err, &re) || re.ErrorCode != 40403 {
		t.Fatalf("SchemaByID after hard delete: %v", err)
	}
	deleted, err := cl.DeleteSubject(ctx, "users-value", sr.SoftDelete)
	if err != nil || len(deleted) != 1 || deleted[0] != 2 {
		t.Fatalf("soft DeleteSubject = %v, %v", deleted, err)
	}
	if _, err := cl.DeleteSubject(ctx, "users-value", sr.HardDelete); err != nil {
		t.Fatalf("hard DeleteSubject: %v", err)
	}
	if subjects, err := cl.Subjects(context.WithoutCancel(ctx)); err != nil || len(subjects) != 0 {
		t.Fatalf("Subjects after delete = %v, %v", subjects, err)
	}
}
