package service

import "context"

// Component is one part of a service with a lifecycle, in the style of
// dskit's services: Run works until its context is cancelled; Stop is
// called once shutdown begins (after /readyz answers 503 and
// SHUTDOWN_DELAY has passed) to stop taking work and drain, before Run's
// context is cancelled. A Run that returns early, with an error or not,
// stops the whole process: one failing component stops all.
type Component interface {
	Run(ctx context.Context) error
	Stop(ctx context.Context) error
}

// Add registers c under name: Run as a component (Go) and Stop as a
// shutdown hook (OnStop), which run in the order added.
func (a *App) Add(name string, c Component) {
	a.Go(name, c.Run)
	a.OnStop(name, c.Stop)
}

// Funcs adapts two functions to a Component; a nil StopFunc does nothing.
type Funcs struct {
	RunFunc  func(ctx context.Context) error
	StopFunc func(ctx context.Context) error
}

// Run calls RunFunc.
func (f Funcs) Run(ctx context.Context) error { return f.RunFunc(ctx) }

// Stop calls StopFunc, if set.
func (f Funcs) Stop(ctx context.Context) error {
	if f.StopFunc == nil {
		return nil
	}
	return f.StopFunc(ctx)
}
