package harness

import (
	"fmt"
	"io"
	"os"
	"sync"
)

// TB is the part of testing.TB the harness needs: a place to register
// cleanups and to log. Programs that are not tests use Cleanups.
type TB interface {
	Cleanup(func())
	Logf(format string, args ...any)
}

// Cleanups is a TB for programs: it runs the registered functions in reverse
// order when Run is called, and logs to Log.
type Cleanups struct {
	// Log receives the log lines; nil means standard error.
	Log io.Writer

	mu    sync.Mutex
	funcs []func()
}

// Cleanup registers f to run when Run is called.
func (c *Cleanups) Cleanup(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.funcs = append(c.funcs, f)
}

// Logf writes a line to c.Log.
func (c *Cleanups) Logf(format string, args ...any) {
	w := c.Log
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintf(w, format+"\n", args...)
}

// Run calls the registered functions, last registered first. It may be called
// more than once; each function runs once.
func (c *Cleanups) Run() {
	c.mu.Lock()
	funcs := c.funcs
	c.funcs = nil
	c.mu.Unlock()
	for i := len(funcs) - 1; i >= 0; i-- {
		funcs[i]()
	}
}
