package main

import (
	"os"
	"runtime"
)

// raiseGOMAXPROCS gives the Go scheduler one processor more than its
// default, unless GOMAXPROCS is set in the environment. An apply keeps two
// goroutines of this process busy, one reading, hashing and decoding the
// blob and one hashing the tar and writing it to the child, while the child
// process writes the files. On two cores, one more processor cut the apply
// of 1 GiB of poorly compressible gzip from 1.25 s to 1.14 s (medians of
// five runs, against 1.44 s for the walking differ), and a fourth processor
// gave 1.18 s. Once set, the value no longer follows changes of the cgroup's
// CPU limit, as the runtime's default would.
func raiseGOMAXPROCS() {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
}
