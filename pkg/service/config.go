package service

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ConfigError names the variable that holds a bad value. Services exit with
// status 2 when configuration fails to load or validate.
type ConfigError struct {
	Var string // environment variable name, e.g. KAFKA_BROKERS
	Msg string
}

func (e *ConfigError) Error() string { return fmt.Sprintf("config: %s: %s", e.Var, e.Msg) }

// Invalid builds a ConfigError; Validate methods use it so every message
// names the variable.
func Invalid(variable, format string, args ...any) error {
	return &ConfigError{Var: variable, Msg: fmt.Sprintf(format, args...)}
}

// ErrConfigChecked is what LoadConfig returns, instead of nil, when the
// -check-config flag is given and the configuration is valid: the service
// stops before opening any connection and exits 0.
var ErrConfigChecked = errors.New("configuration is valid")

// CheckConfigFlag is the flag every service accepts to validate its
// environment and flags and exit: 0 when valid, 2 naming the bad variable.
const CheckConfigFlag = "check-config"

// ExitCode maps an error from run() to a process exit status: 2 for bad
// configuration, 1 for anything else, 0 for nil, for -h and for a
// successful -check-config.
func ExitCode(err error) int {
	var ce *ConfigError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp), errors.Is(err, ErrConfigChecked):
		return 0
	case errors.As(err, &ce):
		return 2
	default:
		return 1
	}
}

// Validator is implemented by config structs (and nested structs) that check
// their own values after loading.
type Validator interface{ Validate() error }

// LoadConfig fills cfg (a pointer to struct) from its `env:"NAME"` tagged
// fields: first the `default:"..."` tag, then the environment (via lookup),
// then command-line flags named after the variable (KAFKA_BROKERS ->
// -kafka-brokers). With -check-config it returns ErrConfigChecked once the
// configuration validates. Nested structs are walked. Supported kinds: string, bool,
// int, int64, float64, time.Duration, []string (comma separated). After
// loading, Validate is called on every nested Validator, outermost last.
func LoadConfig(cfg any, args []string, lookup func(string) (string, bool)) error {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	fields, err := configFields(reflect.ValueOf(cfg))
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("sluice", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flagVals := map[string]*string{}
	for _, f := range fields {
		flagVals[f.env] = fs.String(flagName(f.env), "", f.help)
	}
	checkOnly := fs.Bool(CheckConfigFlag, false, "validate the environment and flags, then exit (0 valid, 2 invalid)")
	for _, f := range fields {
		if f.def != "" {
			if err := setField(f.v, f.def); err != nil {
				return &ConfigError{Var: f.env, Msg: fmt.Sprintf("bad default %q: %v", f.def, err)}
			}
		}
		if s, ok := lookup(f.env); ok {
			if err := setField(f.v, s); err != nil {
				return &ConfigError{Var: f.env, Msg: fmt.Sprintf("cannot parse %q: %v", redact(f, s), err)}
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stderr)
			fmt.Fprintln(os.Stderr, "Configuration (environment variable / flag):")
			fmt.Fprint(os.Stderr, Usage(cfg))
			return err
		}
		return &ConfigError{Var: "flags", Msg: err.Error()}
	}
	var parseErr error
	fs.Visit(func(fl *flag.Flag) {
		for _, f := range fields {
			if flagName(f.env) == fl.Name && parseErr == nil {
				if err := setField(f.v, *flagVals[f.env]); err != nil {
					parseErr = &ConfigError{Var: f.env, Msg: fmt.Sprintf("flag -%s: cannot parse %q: %v", fl.Name, redact(f, *flagVals[f.env]), err)}
				}
			}
		}
	})
	if parseErr != nil {
		return parseErr
	}
	if err := validateTree(reflect.ValueOf(cfg)); err != nil {
		return err
	}
	if *checkOnly {
		return ErrConfigChecked
	}
	return nil
}

// Usage lists every variable with its default and help text, sorted.
func Usage(cfg any) string {
	fields, err := configFields(reflect.ValueOf(cfg))
	if err != nil {
		return err.Error()
	}
	sort.Slice(fields, func(i, j int) bool { return fields[i].env < fields[j].env })
	rows := make([][]string, 0, len(fields))
	for _, f := range fields {
		rows = append(rows, []string{f.env, "-" + flagName(f.env), "default " + strconv.Quote(f.def), f.help})
	}
	var b strings.Builder
	columns(&b, rows)
	return b.String()
}

type configField struct {
	env, def, help string
	secret         bool
	v              reflect.Value
}

func configFields(v reflect.Value) ([]configField, error) {
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return nil, fmt.Errorf("config: want pointer to struct, got %s", v.Type())
	}
	var out []configField
	var walk func(s reflect.Value)
	walk = func(s reflect.Value) {
		t := s.Type()
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			fv := s.Field(i)
			name := sf.Tag.Get("env")
			if name == "" {
				if fv.Kind() == reflect.Struct && sf.Type != reflect.TypeOf(time.Duration(0)) {
					walk(fv)
				}
				continue
			}
			out = append(out, configField{
				env: name, def: sf.Tag.Get("default"), help: sf.Tag.Get("help"),
				secret: sf.Tag.Get("secret") == "true", v: fv,
			})
		}
	}
	walk(v.Elem())
	return out, nil
}

func validateTree(v reflect.Value) error {
	s := v
	if s.Kind() == reflect.Pointer {
		s = s.Elem()
	}
	if s.Kind() == reflect.Struct {
		for i := 0; i < s.NumField(); i++ {
			if !s.Type().Field(i).IsExported() || s.Field(i).Kind() != reflect.Struct {
				continue
			}
			if err := validateTree(s.Field(i).Addr()); err != nil {
				return err
			}
		}
	}
	if val, ok := v.Interface().(Validator); ok && v.Kind() == reflect.Pointer {
		return val.Validate()
	}
	return nil
}

func flagName(env string) string { return strings.ReplaceAll(strings.ToLower(env), "_", "-") }

func redact(f configField, s string) string {
	if f.secret {
		return "<redacted>"
	}
	return s
}

func setField(v reflect.Value, s string) error {
	switch v.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		v.SetInt(int64(d))
		return nil
	case []string:
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		v.Set(reflect.ValueOf(parts))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Float64:
		n, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return err
		}
		v.SetFloat(n)
	default:
		return fmt.Errorf("unsupported config kind %s", v.Kind())
	}
	return nil
}
