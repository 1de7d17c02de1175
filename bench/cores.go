package main

import (
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// farRoundTrip is the cross-core round trip above which a timed pair counts
// as run on CPUs that share no cache. On the machine of the published
// results the round trip was 55 to 100 ns most of the time and 250 to
// 650 ns at other times, when the host ran the two virtual CPUs apart.
const farRoundTrip = 200 * time.Nanosecond

// roundTrips is the number of times coreRoundTrip passes the cache line
// between the two CPUs: a few milliseconds in all.
const roundTrips = 20000

// coreRoundTrip returns the mean time for a cache line written on one CPU to
// be seen and written back by another, between the first two CPUs this
// process may run on. It returns 0 when there is only one such CPU or when
// a side does not get to run within a second.
//
// On a virtual machine the host picks which physical cores run the virtual
// CPUs, and it may move them while a benchmark runs. Our applier passes the
// layer from one thread to another and to the child, so it slows down when
// those cores share no cache. The walking differ runs on one thread and
// does not. The round trip before and after each timed pair shows which
// pairs ran that way.
func coreRoundTrip() time.Duration {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return 0
	}
	var cpus []int
	for cpu := 0; cpu < len(set)*64 && len(cpus) < 2; cpu++ {
		if set.IsSet(cpu) {
			cpus = append(cpus, cpu)
		}
	}
	if len(cpus) < 2 {
		return 0
	}

	var line atomic.Int64
	var failed atomic.Bool
	deadline := time.Now().Add(time.Second)
	// wait spins until line contains want. It gives up, and makes the other
	// side give up too, once the deadline has passed.
	wait := func(want int64) bool {
		for spins := 0; line.Load() != want; spins++ {
			if failed.Load() {
				return false
			}
			if spins%4096 == 0 && time.Now().After(deadline) {
				failed.Store(true)
				return false
			}
		}
		return true
	}
	// Both sides run on threads of their own that end with their
	// goroutines, so that no thread of this process keeps the pinning.
	start := make(chan struct{})
	elapsed := make(chan time.Duration, 1)
	go func() {
		if err := pin(cpus[1]); err != nil {
			failed.Store(true)
			return
		}
		<-start
		for i := int64(0); i < roundTrips; i++ {
			if !wait(2*i + 1) {
				return
			}
			line.Store(2*i + 2)
		}
	}()
	go func() {
		if err := pin(cpus[0]); err != nil {
			elapsed <- 0
			return
		}
		close(start)
		t := time.Now()
		for i := int64(0); i < roundTrips; i++ {
			line.Store(2*i + 1)
			if !wait(2*i + 2) {
				elapsed <- 0
				return
			}
		}
		elapsed <- time.Since(t)
	}()
	d := <-elapsed
	if d == 0 {
		return 0
	}
	return d / roundTrips
}

// pin locks the calling goroutine to its thread and that thread to cpu. The
// goroutine must exit without unlocking, which ends the thread, also when
// pin returns an error because the thread could not be moved to cpu.
func pin(cpu int) error {
	runtime.LockOSThread()
	var set unix.CPUSet
	set.Set(cpu)
	return unix.SchedSetaffinity(0, &set)
}
