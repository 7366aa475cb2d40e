// Package bucket applies the sink's backup policy to its bucket: one
// lifecycle rule (tiering, expiry, multipart cleanup, noncurrent expiry)
// and cross-region replication, reading the current configuration first
// and writing only what differs.
package bucket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/sluicehq/sluice/services/s3-sink/internal/config"
)

// RuleID names the lifecycle and replication rules the sink owns; rules
// with other ids are kept as they are.
const RuleID = "sluice-s3-sink"

// API is the subset of *s3.Client Apply uses.
type API interface {
	GetBucketLifecycleConfiguration(ctx context.Context, in *s3.GetBucketLifecycleConfigurationInput, opts ...func(*s3.Options)) (*s3.GetBucketLifecycleConfigurationOutput, error)
	PutBucketLifecycleConfiguration(ctx context.Context, in *s3.PutBucketLifecycleConfigurationInput, opts ...func(*s3.Options)) (*s3.PutBucketLifecycleConfigurationOutput, error)
	DeleteBucketLifecycle(ctx context.Context, in *s3.DeleteBucketLifecycleInput, opts ...func(*s3.Options)) (*s3.DeleteBucketLifecycleOutput, error)
	GetBucketVersioning(ctx context.Context, in *s3.GetBucketVersioningInput, opts ...func(*s3.Options)) (*s3.GetBucketVersioningOutput, error)
	PutBucketVersioning(ctx context.Context, in *s3.PutBucketVersioningInput, opts ...func(*s3.Options)) (*s3.PutBucketVersioningOutput, error)
	GetBucketReplication(ctx context.Context, in *s3.GetBucketReplicationInput, opts ...func(*s3.Options)) (*s3.GetBucketReplicationOutput, error)
	PutBucketReplication(ctx context.Context, in *s3.PutBucketReplicationInput, opts ...func(*s3.Options)) (*s3.PutBucketReplicationOutput, error)
}

// LifecycleRule builds the sink's rule from config, or nil when the config
// asks for no lifecycle at all.
func LifecycleRule(l config.Lifecycle) *types.LifecycleRule {
	if l.TransitionDays == 0 && l.ExpireDays == 0 && l.AbortMultipartDays == 0 && l.NoncurrentExpireDay == 0 {
		return nil
	}
	prefix := l.Prefix
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	r := &types.LifecycleRule{
		ID:     aws.String(RuleID),
		Status: types.ExpirationStatusEnabled,
		Filter: &types.LifecycleRuleFilter{Prefix: aws.String(prefix)},
	}
	if l.TransitionDays > 0 {
		r.Transitions = []types.Transition{{Days: aws.Int32(int32(l.TransitionDays)), StorageClass: types.TransitionStorageClass(l.StorageClass)}}
	}
	if l.ExpireDays > 0 {
		r.Expiration = &types.LifecycleExpiration{Days: aws.Int32(int32(l.ExpireDays))}
	}
	if l.AbortMultipartDays > 0 {
		r.AbortIncompleteMultipartUpload = &types.AbortIncompleteMultipartUpload{DaysAfterInitiation: aws.Int32(int32(l.AbortMultipartDays))}
	}
	if l.NoncurrentExpireDay > 0 {
		r.NoncurrentVersionExpiration = &types.NoncurrentVersionExpiration{NoncurrentDays: aws.Int32(int32(l.NoncurrentExpireDay))}
	}
	return r
}

// ReplicationRule builds the sink's replication rule, or nil when
// replication is not configured.
func ReplicationRule(l config.Lifecycle) *types.ReplicationRule {
	if l.ReplicationRoleARN == "" {
		return nil
	}
	prefix := l.Prefix
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &types.ReplicationRule{
		ID:                      aws.String(RuleID),
		Status:                  types.ReplicationRuleStatusEnabled,
		Priority:                aws.Int32(1),
		Filter:                  &types.ReplicationRuleFilter{Prefix: aws.String(prefix)},
		DeleteMarkerReplication: &types.DeleteMarkerReplication{Status: types.DeleteMarkerReplicationStatusDisabled},
		Destination:             &types.Destination{Bucket: aws.String(l.ReplicationDestARN), StorageClass: types.StorageClass(l.ReplicationClass)},
	}
}

// describeLifecycle renders a rule as sorted "key = value" lines, the form
// compared and printed as a diff.
func describeLifecycle(r *types.LifecycleRule) []string {
	if r == nil {
		return nil
	}
	var out []string
	add := func(k string, v any) {
		out = append(out, fmt.Sprintf("lifecycle %s: %s = %v", aws.ToString(r.ID), k, v))
	}
	add("status", r.Status)
	if r.Filter != nil && r.Filter.Prefix != nil {
		add("prefix", *r.Filter.Prefix)
	} else if r.Prefix != nil { //nolint:staticcheck // old rules use the top-level prefix
		add("prefix", *r.Prefix) //nolint:staticcheck
	}
	for _, t := range r.Transitions {
		add("transition", fmt.Sprintf("%d days -> %s", aws.ToInt32(t.Days), t.StorageClass))
	}
	if r.Expiration != nil && r.Expiration.Days != nil {
		add("expiration days", *r.Expiration.Days)
	}
	if r.AbortIncompleteMultipartUpload != nil {
		add("abort incomplete multipart days", aws.ToInt32(r.AbortIncompleteMultipartUpload.DaysAfterInitiation))
	}
	if r.NoncurrentVersionExpiration != nil {
		add("noncurrent version expiration days", aws.ToInt32(r.NoncurrentVersionExpiration.NoncurrentDays))
	}
	slices.Sort(out)
	return out
}

func describeReplication(role string, r *types.ReplicationRule) []string {
	if r == nil {
		return nil
	}
	var out []string
	add := func(k string, v any) {
		out = append(out, fmt.Sprintf("replication %s: %s = %v", aws.ToString(r.ID), k, v))
	}
	add("role", role)
	add("status", r.Status)
	add("priority", aws.ToInt32(r.Priority))
	if r.Filter != nil && r.Filter.Prefix != nil {
		add("prefix", *r.Filter.Prefix)
	}
	if r.DeleteMarkerReplication != nil {
		add("delete marker replication", r.DeleteMarkerReplication.Status)
	}
	if r.Destination != nil {
		add("destination", aws.ToString(r.Destination.Bucket))
		add("storage class", r.Destination.StorageClass)
	}
	slices.Sort(out)
	return out
}

// diff prints lines only in before as "-" and only in after as "+".
func diff(w io.Writer, before, after []string) bool {
	changed := false
	for _, l := range before {
		if !slices.Contains(after, l) {
			fmt.Fprintln(w, "- "+l)
			changed = true
		}
	}
	for _, l := range after {
		if !slices.Contains(before, l) {
			fmt.Fprintln(w, "+ "+l)
			changed = true
		}
	}
	return changed
}

func isCode(err error, codes ...string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && slices.Contains(codes, ae.ErrorCode())
}

// Apply brings the bucket's lifecycle and replication in line with l,
// printing the diff to out. With dryRun nothing is written. It reports
// whether anything differed.
func Apply(ctx context.Context, api API, bucketName string, l config.Lifecycle, dryRun bool, out io.Writer) (bool, error) {
	lc, err := applyLifecycle(ctx, api, bucketName, l, dryRun, out)
	if err != nil {
		return lc, err
	}
	rc, err := applyReplication(ctx, api, bucketName, l, dryRun, out)
	return lc || rc, err
}

func applyLifecycle(ctx context.Context, api API, bucketName string, l config.Lifecycle, dryRun bool, out io.Writer) (bool, error) {
	cur, err := api.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: &bucketName})
	var rules []types.LifecycleRule
	switch {
	case err == nil:
		rules = cur.Rules
	case isCode(err, "NoSuchLifecycleConfiguration"):
	default:
		return false, fmt.Errorf("reading lifecycle of %s: %w", bucketName, err)
	}
	var mine *types.LifecycleRule
	var others []types.LifecycleRule
	for i := range rules {
		if aws.ToString(rules[i].ID) == RuleID {
			mine = &rules[i]
		} else {
			others = append(others, rules[i])
		}
	}
	want := LifecycleRule(l)
	if changed := diff(out, describeLifecycle(mine), describeLifecycle(want)); !changed || dryRun {
		return changed, nil
	}
	next := others
	if want != nil {
		next = append(next, *want)
	}
	if len(next) == 0 {
		if _, err := api.DeleteBucketLifecycle(ctx, &s3.DeleteBucketLifecycleInput{Bucket: &bucketName}); err != nil {
			return true, fmt.Errorf("deleting lifecycle of %s: %w", bucketName, err)
		}
		return true, nil
	}
	if _, err := api.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{
		Bucket:                 &bucketName,
		LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: next},
	}); err != nil {
		return true, fmt.Errorf("writing lifecycle of %s: %w", bucketName, err)
	}
	return true, nil
}

func applyReplication(ctx context.Context, api API, bucketName string, l config.Lifecycle, dryRun bool, out io.Writer) (bool, error) {
	want := ReplicationRule(l)
	cur, err := api.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: &bucketName})
	var role string
	var rules []types.ReplicationRule
	switch {
	case err == nil && cur.ReplicationConfiguration != nil:
		role = aws.ToString(cur.ReplicationConfiguration.Role)
		rules = cur.ReplicationConfiguration.Rules
	case err == nil, isCode(err, "ReplicationConfigurationNotFoundError"):
	case want == nil && isCode(err, "NotImplemented", "XNotImplemented"):
		return false, nil // the store has no replication and none is wanted
	default:
		return false, fmt.Errorf("reading replication of %s: %w", bucketName, err)
	}
	var mine *types.ReplicationRule
	var others []types.ReplicationRule
	for i := range rules {
		if aws.ToString(rules[i].ID) == RuleID {
			mine = &rules[i]
		} else {
			others = append(others, rules[i])
		}
	}
	if want == nil {
		// Replication is opt-in; an existing rule is left alone rather than
		// silently stopping a backup someone set up.
		return false, nil
	}
	changed := false
	ver, err := api.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: &bucketName})
	if err != nil {
		return false, fmt.Errorf("reading versioning of %s: %w", bucketName, err)
	}
	if ver.Status != types.BucketVersioningStatusEnabled {
		fmt.Fprintf(out, "- versioning: %q\n+ versioning: %q\n", ver.Status, types.BucketVersioningStatusEnabled)
		changed = true
		if !dryRun {
			if _, err := api.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
				Bucket:                  &bucketName,
				VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
			}); err != nil {
				return true, fmt.Errorf("enabling versioning on %s (replication needs it): %w", bucketName, err)
			}
		}
	}
	if !diff(out, describeReplication(role, mine), describeReplication(l.ReplicationRoleARN, want)) {
		return changed, nil
	}
	if dryRun {
		return true, nil
	}
	if _, err := api.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{
		Bucket: &bucketName,
		ReplicationConfiguration: &types.ReplicationConfiguration{
			Role:  aws.String(l.ReplicationRoleARN),
			Rules: append(others, *want),
		},
	}); err != nil {
		return true, fmt.Errorf("writing replication of %s: %w", bucketName, err)
	}
	return true, nil
}
