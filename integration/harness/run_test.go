package harness

import (
	"fmt"
	"os"
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
		tid  int
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
		result <- started{done, err, syscall.Gettid()}
	}()
	res := <-result
	if res.err != nil {
		t.Fatal(res.err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-res.done
	})

	task := fmt.Sprintf("/proc/self/task/%d", res.tid)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(task); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("thread %d of the caller did not end", res.tid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The kernel sends Pdeathsig as the thread exits, so a process that
	// was to die has died or is dying by now.
	select {
	case <-res.done:
		t.Fatalf("process exited when the caller's thread ended: %v", cmd.ProcessState)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestStartKeepingThreadStartError checks that a missing binary is an error.
func TestStartKeepingThreadStartError(t *testing.T) {
	if _, err := StartKeepingThread(exec.Command("/nonexistent/binary")); err == nil {
		t.Fatal("expected an error for a missing binary")
	}
}
