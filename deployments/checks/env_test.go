package checks

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

const pkgImport = "github.com/sluicehq/sluice/pkg/"

// runtimeEnv are variables read by the Go runtime, not by a config struct;
// the chart sets GOMEMLIMIT from the memory limit.
var runtimeEnv = map[string]bool{"GOMEMLIMIT": true, "GOMAXPROCS": true, "GODEBUG": true, "GOGC": true}

// envSpec is what one service reads from its environment.
type envSpec struct {
	// Vars maps each variable named by an `env:"..."` tag to its default.
	Vars map[string]string
	// Secrets are the variables tagged secret:"true" (never logged; must
	// come from a Secret, not a ConfigMap or a literal).
	Secrets map[string]bool
	// AWSSDK is true when the service's code imports the AWS SDK's config
	// loader, which reads AWS_* variables (IRSA injects them) itself.
	AWSSDK bool
}

// Reads reports whether the service reads the variable.
func (s envSpec) Reads(name string) bool {
	if _, ok := s.Vars[name]; ok || runtimeEnv[name] {
		return true
	}
	return s.AWSSDK && strings.HasPrefix(name, "AWS_")
}

var (
	envOnce  sync.Once
	envSpecs map[string]envSpec
	envErr   error
)

// serviceEnvs derives, from the Go source, the variables each service reads:
// the env tags of every struct in services/<name>/** plus those of every
// pkg/ package the service imports, transitively. Test files are skipped.
func serviceEnvs(tb testing.TB) map[string]envSpec {
	tb.Helper()
	root := repoRoot(tb)
	envOnce.Do(func() {
		envSpecs = map[string]envSpec{}
		for _, s := range services {
			spec, err := scanService(root, s)
			if err != nil {
				envErr = err
				return
			}
			envSpecs[s] = spec
		}
	})
	if envErr != nil {
		tb.Fatalf("reading service env tags: %v", envErr)
	}
	return envSpecs
}

func scanService(root, name string) (envSpec, error) {
	spec := envSpec{Vars: map[string]string{}, Secrets: map[string]bool{}}
	var queue []string
	seen := map[string]bool{}
	visit := func(f *ast.File) {
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/aws/aws-sdk-go-v2/config") {
				spec.AWSSDK = true
			}
			if strings.HasPrefix(p, pkgImport) && !strings.HasPrefix(p, pkgImport+"testkit") && !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
		for k, v := range envTags(f) {
			spec.Vars[k] = v.Default
			if v.Secret {
				spec.Secrets[k] = true
			}
		}
	}
	fset := token.NewFileSet()
	err := filepath.WalkDir(filepath.Join(root, "services", name), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !isSource(d.Name()) {
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		visit(f)
		return nil
	})
	if err != nil {
		return spec, err
	}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		dir := filepath.Join(root, "pkg", filepath.FromSlash(strings.TrimPrefix(p, pkgImport)))
		entries, err := os.ReadDir(dir)
		if err != nil {
			return spec, err
		}
		for _, e := range entries {
			if e.IsDir() || !isSource(e.Name()) {
				continue
			}
			f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
			if err != nil {
				return spec, err
			}
			visit(f)
		}
	}
	return spec, nil
}

func isSource(name string) bool {
	return strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")
}

// envTag is what a field's tags say about its variable.
type envTag struct {
	Default string
	Secret  bool
}

// envTags returns the `env:"NAME"` tags of every struct field in the file,
// with their `default:"..."` and `secret:"true"` tags.
func envTags(f *ast.File) map[string]envTag {
	out := map[string]envTag{}
	ast.Inspect(f, func(n ast.Node) bool {
		st, ok := n.(*ast.StructType)
		if !ok {
			return true
		}
		for _, field := range st.Fields.List {
			if field.Tag == nil {
				continue
			}
			raw, err := strconv.Unquote(field.Tag.Value)
			if err != nil {
				continue
			}
			tag := reflect.StructTag(raw)
			if name, ok := tag.Lookup("env"); ok && name != "" {
				out[name] = envTag{Default: tag.Get("default"), Secret: tag.Get("secret") == "true"}
			}
		}
		return true
	})
	return out
}

// unknownVars lists the variables in set that the service does not read.
func unknownVars(spec envSpec, set []string) []string {
	var bad []string
	for _, v := range set {
		if !spec.Reads(v) {
			bad = append(bad, v)
		}
	}
	sort.Strings(bad)
	return bad
}

func TestServiceEnvDerivedFromSource(t *testing.T) {
	t.Parallel()
	envs := serviceEnvs(t)
	for _, s := range services {
		spec := envs[s]
		// Every service loads the shared Kafka and process settings.
		for _, v := range []string{"KAFKA_BROKERS", "LOG_LEVEL", "SHUTDOWN_TIMEOUT"} {
			if !spec.Reads(v) {
				t.Errorf("%s: %s not found among its env tags (scan broken?)", s, v)
			}
		}
		if !spec.Secrets["KAFKA_SASL_PASSWORD"] {
			t.Errorf("%s: KAFKA_SASL_PASSWORD not seen as a secret", s)
		}
		// Catches a scan that leaks test-only or foreign tags.
		if spec.Reads("T_BROKERS") || spec.Reads("NO_SUCH_SLUICE_VAR") {
			t.Errorf("%s: scan picked up variables no service reads", s)
		}
	}
}

func TestEnvTagsFromSource(t *testing.T) {
	t.Parallel()
	src := "package x\n// `env:\"IN_COMMENT\"`\ntype C struct {\n\tA string `env:\"X_A\" default:\":8080\"`\n\tB int `json:\"b\"`\n\tN struct{ C bool `env:\"X_C\" secret:\"true\"` }\n}\n"
	f, err := parser.ParseFile(token.NewFileSet(), "x.go", src, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	got := envTags(f)
	want := map[string]envTag{"X_A": {Default: ":8080"}, "X_C": {Secret: true}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("envTags = %v, want %v", got, want)
	}
	spec := envSpec{Vars: map[string]string{"X_A": ":8080", "X_C": ""}}
	if bad := unknownVars(spec, []string{"X_A", "GOMEMLIMIT", "X_TYPO", "AWS_REGION"}); !reflect.DeepEqual(bad, []string{"AWS_REGION", "X_TYPO"}) {
		t.Fatalf("unknownVars = %v", bad)
	}
	spec.AWSSDK = true
	if bad := unknownVars(spec, []string{"AWS_REGION"}); len(bad) != 0 {
		t.Fatalf("AWS_REGION rejected for a service using the AWS SDK: %v", bad)
	}
}
