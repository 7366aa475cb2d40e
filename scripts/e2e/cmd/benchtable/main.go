// Command benchtable reads `go test -bench` output on stdin and prints one
// table: component, records/s, MB/s, p50/p99 latency, ratio against the raw
// baseline measured in the same run, and peak RSS. It understands the
// metric units Sluice's benchmarks report with b.ReportMetric.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// row is one benchmark result line.
type row struct {
	pkg, name string
	metrics   map[string]float64
}

func main() {
	rows, err := parse(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
	render(os.Stdout, rows)
}

func parse(r io.Reader) ([]row, error) {
	var rows []row
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "pkg: ") {
			pkg = strings.TrimPrefix(line, "pkg: ")
			continue
		}
		if !strings.HasPrefix(line, "Benchmark") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // a log line that starts with Benchmark
		}
		rw := row{pkg: pkg, name: f[0], metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			rw.metrics[f[i+1]] = v
		}
		rows = append(rows, rw)
	}
	return rows, sc.Err()
}

// pick returns the metric whose unit passes the earliest test; among
// several units passing the same test the shortest name wins (so
// "scrape_p99_ms" beats "scrape_gzip_p99_ms"), then the alphabetically
// first, so the table never depends on map order.
func pick(m map[string]float64, tests ...func(string) bool) (float64, string, bool) {
	units := make([]string, 0, len(m))
	for u := range m {
		units = append(units, u)
	}
	sort.Slice(units, func(i, j int) bool {
		if len(units[i]) != len(units[j]) {
			return len(units[i]) < len(units[j])
		}
		return units[i] < units[j]
	})
	for _, t := range tests {
		for _, unit := range units {
			if t(unit) {
				return m[unit], unit, true
			}
		}
	}
	return 0, "", false
}

func is(s string) func(string) bool { return func(u string) bool { return u == s } }
func has(s string) func(string) bool {
	return func(u string) bool { return strings.Contains(strings.ToLower(u), s) }
}
func ratio(u string) bool {
	return strings.Contains(strings.ToLower(u), "ratio") && !strings.HasSuffix(u, "/s")
}
func peak(u string) bool {
	l := strings.ToLower(u)
	return strings.Contains(l, "peak") && (strings.Contains(l, "rss") || strings.Contains(l, "mib"))
}
func rate(u string) bool {
	return strings.HasSuffix(u, "/s") && u != "MB/s" && !strings.HasPrefix(u, "raw") && !strings.HasPrefix(u, "baseline")
}

func render(w io.Writer, rows []row) {
	fmt.Fprintf(w, "| %-58s | %12s | %8s | %10s | %10s | %7s | %9s |\n", "component / benchmark", "rate", "MB/s", "p50", "p99", "x raw", "peak RSS")
	fmt.Fprintf(w, "|%s|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 60), strings.Repeat("-", 14), strings.Repeat("-", 10), strings.Repeat("-", 12), strings.Repeat("-", 12), strings.Repeat("-", 9), strings.Repeat("-", 11))
	for _, r := range rows {
		name := strings.TrimSuffix(r.pkg[strings.LastIndex(r.pkg, "/")+1:], "") + " " + strings.TrimPrefix(r.name, "Benchmark")
		cell := func(tests ...func(string) bool) string {
			v, unit, ok := pick(r.metrics, tests...)
			if !ok {
				return "-"
			}
			return format(v, unit)
		}
		fmt.Fprintf(w, "| %-58s | %12s | %8s | %10s | %10s | %7s | %9s |\n", name,
			cell(is("records/s"), is("docs/s"), is("lookups/s"), rate),
			cell(is("MB/s")),
			cell(has("p50")),
			cell(has("p99")),
			cell(is("x_raw"), ratio),
			cell(peak, has("rss")),
		)
	}
}

func format(v float64, unit string) string {
	lu := strings.ToLower(unit)
	switch {
	case strings.HasSuffix(unit, "/s") && unit != "MB/s":
		return humanRate(v)
	case strings.Contains(lu, "rss") || strings.Contains(lu, "mib"):
		return fmt.Sprintf("%.0f MiB", v)
	case strings.HasSuffix(lu, "_ms") || strings.HasSuffix(lu, "-ms"):
		return fmt.Sprintf("%.2f ms", v)
	case strings.HasSuffix(lu, "_us") || strings.HasSuffix(lu, "-us"):
		return fmt.Sprintf("%.0f µs", v)
	case strings.HasSuffix(lu, "_s"):
		return fmt.Sprintf("%.3f s", v)
	case unit == "x_raw" || strings.Contains(lu, "ratio"):
		return fmt.Sprintf("%.2fx", v)
	default:
		return strconv.FormatFloat(v, 'g', 4, 64)
	}
}

func humanRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM/s", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk/s", v/1e3)
	default:
		return fmt.Sprintf("%.0f/s", v)
	}
}
