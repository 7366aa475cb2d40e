package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/sluicehq/sluice/pkg/version"
)

// Subcommand describes one subcommand a binary has besides serving, for -h.
type Subcommand struct {
	Usage string // e.g. "bucket apply [-dry-run]"
	Help  string // one line
}

// Main is the whole of a service's main(): it answers -version and -h
// itself, cancels the context on SIGINT or SIGTERM, calls run, prints a
// failure and exits with ExitCode. subcommands are listed by -h.
func Main(run func(ctx context.Context, args []string) error, subcommands ...Subcommand) {
	name := filepath.Base(os.Args[0])
	if code, done := preRun(os.Stdout, name, os.Args[1:], subcommands); done {
		os.Exit(code)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	switch {
	case errors.Is(err, ErrConfigChecked):
		fmt.Fprintf(os.Stdout, "%s: %v\n", name, err)
	case err != nil && !errors.Is(err, flag.ErrHelp):
		fmt.Fprintln(os.Stderr, "error:", err)
	}
	os.Exit(ExitCode(err))
}

// preRun answers -version (anywhere before a subcommand's own arguments)
// and prints the usage header for -h; done means exit with code now.
// After the header, -h goes on to run, whose configuration loader lists
// every variable and returns flag.ErrHelp (exit 0).
func preRun(w io.Writer, name string, args []string, subcommands []Subcommand) (code int, done bool) {
	for _, a := range args {
		switch a {
		case "-version", "--version":
			fmt.Fprintf(w, "%s %s\n", name, version.Get())
			return 0, true
		case "-h", "-help", "--help":
			if len(args) > 0 && args[0] != a && !isFlag(args[0]) {
				return 0, false // a subcommand's own -h
			}
			fmt.Fprintln(w, "Usage:")
			rows := [][]string{{name + " [flags]", "serve (configuration from the environment or the flags below)"}}
			for _, s := range subcommands {
				rows = append(rows, []string{name + " " + s.Usage, s.Help})
			}
			columns(w, rows)
			fmt.Fprintln(w, "\nFlags:")
			columns(w, [][]string{
				{"-version", "print the version and exit"},
				{"-" + CheckConfigFlag, "validate the configuration and exit (0 valid, 2 invalid)"},
				{"-h", "this help"},
			})
			fmt.Fprintln(w)
			return 0, false
		}
	}
	return 0, false
}

// columns writes rows indented by two spaces with every column padded to
// its widest cell, so the help text starts at one offset.
func columns(w io.Writer, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, "  "+strings.Join(r, "\t"))
	}
	_ = tw.Flush()
}

func isFlag(s string) bool { return len(s) > 0 && s[0] == '-' }
