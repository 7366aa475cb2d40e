package main

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// takeForeground makes devstack its own process group and, when stdin is a
// terminal, the terminal's foreground group. A Ctrl-C then reaches devstack
// alone, not `make` above it, so `make run` ends with devstack's exit code
// (0) after an orderly stop instead of make's "Interrupt". The returned func
// hands the terminal back.
func takeForeground() func() {
	fd := int(os.Stdin.Fd())
	prev, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil {
		return func() {} // not a terminal: nothing to do
	}
	if err := unix.Setpgid(0, 0); err != nil {
		return func() {}
	}
	signal.Ignore(syscall.SIGTTOU) // setting the foreground group from the background raises SIGTTOU
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, unix.Getpgrp()); err != nil {
		return func() {}
	}
	return func() { _ = unix.IoctlSetPointerInt(fd, unix.TIOCSPGRP, prev) }
}
