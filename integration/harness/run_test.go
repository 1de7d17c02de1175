package harness

import (
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// TestStartKeepingThreadCallerThreadEnds starts a process with Pdeathsig
// from a goroutine that then exits locked to its thread, which ends that
// thread as the benchmark's CPU pinning does. The process must survive.
func TestStartKeepingThreadCallerThreadEnds(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	type started struct {
		done <-chan struct{}
		err  error
	}
	result := make(chan started)
	go func() {
		// Locked and never unlocked, so the thread ends with the goroutine.
		// Go keeps the main thread instead of ending it, so move off it.
		runtime.LockOSThread()
		for syscall.Gettid() == syscall.Getpid() {
			runtime.UnlockOSThread()
			time.Sleep(time.Millisecond)
			runtime.LockOSThread()
		}
		done, err := StartKeepingThread(cmd)
		result <- started{done, err}
	}()
	res := <-result
	if res.err != nil {
		t.Fatal(res.err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-res.done
	})

	select {
	case <-res.done:
		t.Fatalf("process exited when the caller's thread ended: %v", cmd.ProcessState)
	case <-time.After(500 * time.Millisecond):
	}
}

// TestStartKeepingThreadStartError checks that a missing binary is an error.
func TestStartKeepingThreadStartError(t *testing.T) {
	if _, err := StartKeepingThread(exec.Command("/nonexistent/binary")); err == nil {
		t.Fatal("expected an error for a missing binary")
	}
}
