package bucket_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/sluicehq/sluice/pkg/testkit/s3test"
	"github.com/sluicehq/sluice/services/s3-sink/internal/bucket"
	"github.com/sluicehq/sluice/services/s3-sink/internal/config"
)

// recorder is an S3 endpoint that remembers the bucket's lifecycle,
// versioning and replication documents and logs every request.
type recorder struct {
	mu       sync.Mutex
	requests []string
	bodies   map[string][]byte
	docs     map[string][]byte
}

func newRecorder(t *testing.T) (*recorder, *s3.Client) {
	r := &recorder{bodies: map[string][]byte{}, docs: map[string][]byte{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	cl := s3.New(s3.Options{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AK", "SK", ""),
		BaseEndpoint: aws.String(srv.URL),
		UsePathStyle: true,
	})
	return r, cl
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	sub := ""
	for _, s := range []string{"lifecycle", "versioning", "replication"} {
		if req.URL.Query().Has(s) {
			sub = s
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	line := req.Method + " " + req.URL.Path + "?" + sub
	r.requests = append(r.requests, line)
	if req.Method == http.MethodPut {
		r.bodies[line] = body
		r.docs[sub] = body
		w.WriteHeader(http.StatusOK)
		return
	}
	if req.Method == http.MethodDelete {
		delete(r.docs, sub)
		w.WriteHeader(http.StatusNoContent)
		return
	}
	doc, ok := r.docs[sub]
	switch {
	case ok:
		_, _ = w.Write(doc)
	case sub == "versioning":
		_, _ = io.WriteString(w, `<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>`)
	case sub == "lifecycle":
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `<Error><Code>NoSuchLifecycleConfiguration</Code><Message>none</Message></Error>`)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `<Error><Code>ReplicationConfigurationNotFoundError</Code><Message>none</Message></Error>`)
	}
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.requests
	r.requests = nil
	return out
}

func policy() config.Lifecycle {
	return config.Lifecycle{
		Prefix: "topics", TransitionDays: 30, StorageClass: "GLACIER", ExpireDays: 365,
		AbortMultipartDays: 7, NoncurrentExpireDay: 14,
		ReplicationRoleARN: "arn:aws:iam::123456789012:role/replicate",
		ReplicationDestARN: "arn:aws:s3:::backup-eu", ReplicationClass: "STANDARD_IA",
	}
}

func equalLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\ngot  %q\nwant %q", what, got, want)
	}
}

// TestApplyRecordedRequests checks the exact requests: the first apply
// reads, then writes lifecycle, versioning and replication; the second only
// reads; a dry run with a changed policy prints the diff and only reads.
func TestApplyRecordedRequests(t *testing.T) {
	t.Parallel()
	rec, cl := newRecorder(t)
	ctx := t.Context()
	var out bytes.Buffer
	changed, err := bucket.Apply(ctx, cl, "archive", policy(), false, &out)
	if err != nil || !changed {
		t.Fatalf("first apply: changed=%v err=%v", changed, err)
	}
	equalLines(t, "first apply", rec.take(), []string{
		"GET /archive?lifecycle", "PUT /archive?lifecycle",
		"GET /archive?replication", "GET /archive?versioning", "PUT /archive?versioning", "PUT /archive?replication",
	})

	var lc struct {
		Rules []struct {
			ID         string `xml:"ID"`
			Status     string `xml:"Status"`
			Prefix     string `xml:"Filter>Prefix"`
			Transition struct {
				Days  int    `xml:"Days"`
				Class string `xml:"StorageClass"`
			} `xml:"Transition"`
			ExpireDays     int `xml:"Expiration>Days"`
			AbortDays      int `xml:"AbortIncompleteMultipartUpload>DaysAfterInitiation"`
			NoncurrentDays int `xml:"NoncurrentVersionExpiration>NoncurrentDays"`
		} `xml:"Rule"`
	}
	if err := xml.Unmarshal(rec.bodies["PUT /archive?lifecycle"], &lc); err != nil {
		t.Fatal(err)
	}
	if len(lc.Rules) != 1 {
		t.Fatalf("lifecycle rules = %+v", lc.Rules)
	}
	r := lc.Rules[0]
	if r.ID != bucket.RuleID || r.Status != "Enabled" || r.Prefix != "topics/" || r.Transition.Days != 30 || r.Transition.Class != "GLACIER" ||
		r.ExpireDays != 365 || r.AbortDays != 7 || r.NoncurrentDays != 14 {
		t.Fatalf("lifecycle rule = %+v", r)
	}
	if !bytes.Contains(rec.bodies["PUT /archive?versioning"], []byte("<Status>Enabled</Status>")) {
		t.Fatalf("versioning body %s", rec.bodies["PUT /archive?versioning"])
	}
	var rc struct {
		Role  string `xml:"Role"`
		Rules []struct {
			ID, Status  string
			Priority    int
			Prefix      string `xml:"Filter>Prefix"`
			Destination string `xml:"Destination>Bucket"`
			Class       string `xml:"Destination>StorageClass"`
			DeleteMark  string `xml:"DeleteMarkerReplication>Status"`
		} `xml:"Rule"`
	}
	if err := xml.Unmarshal(rec.bodies["PUT /archive?replication"], &rc); err != nil {
		t.Fatal(err)
	}
	if rc.Role != policy().ReplicationRoleARN || len(rc.Rules) != 1 || rc.Rules[0].Destination != "arn:aws:s3:::backup-eu" ||
		rc.Rules[0].Class != "STANDARD_IA" || rc.Rules[0].Prefix != "topics/" || rc.Rules[0].Status != "Enabled" || rc.Rules[0].DeleteMark != "Disabled" {
		t.Fatalf("replication = %+v", rc)
	}

	out.Reset()
	changed, err = bucket.Apply(ctx, cl, "archive", policy(), false, &out)
	if err != nil || changed || out.Len() != 0 {
		t.Fatalf("second apply: changed=%v err=%v diff=%q", changed, err, out.String())
	}
	equalLines(t, "second apply", rec.take(), []string{"GET /archive?lifecycle", "GET /archive?replication", "GET /archive?versioning"})

	p := policy()
	p.ExpireDays = 400
	changed, err = bucket.Apply(ctx, cl, "archive", p, true, &out)
	if err != nil || !changed {
		t.Fatalf("dry run: changed=%v err=%v", changed, err)
	}
	equalLines(t, "dry run", rec.take(), []string{"GET /archive?lifecycle", "GET /archive?replication", "GET /archive?versioning"})
	equalLines(t, "diff", strings.Split(strings.TrimSpace(out.String()), "\n"), []string{
		"- lifecycle sluice-s3-sink: expiration days = 365",
		"+ lifecycle sluice-s3-sink: expiration days = 400",
	})
}

// TestApplyVersitygw runs the policy against versitygw. Its posix backend
// stores lifecycle documents only if the build supports them; replication
// is an AWS feature it answers NotImplemented to, which must surface as an
// error naming the operation rather than a silent success.
func TestApplyVersitygw(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket("archive")
	p := policy()
	p.ReplicationRoleARN, p.ReplicationDestARN = "", ""
	var out bytes.Buffer
	changed, err := bucket.Apply(t.Context(), srv.Client(), "archive", p, false, &out)
	var ae smithy.APIError
	if err != nil {
		if errors.As(err, &ae) && strings.Contains(ae.ErrorCode(), "NotImplemented") && strings.Contains(err.Error(), "lifecycle") {
			t.Logf("versitygw has no lifecycle support: %v", err)
			return
		}
		t.Fatal(err)
	}
	if !changed {
		t.Fatal("first apply reported no change")
	}
	out.Reset()
	changed, err = bucket.Apply(t.Context(), srv.Client(), "archive", p, false, &out)
	if err != nil || changed {
		t.Fatalf("second apply against versitygw: changed=%v err=%v diff=%s", changed, err, out.String())
	}
}
