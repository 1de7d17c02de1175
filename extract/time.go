package extract

import (
	"archive/tar"
	"math"
	"time"

	"golang.org/x/sys/unix"
)

// minTime and maxTime bound the times written, as the walking differ bounds
// them: a time outside the range is written as the Unix epoch.
var (
	minTime = time.Unix(0, 0)
	maxTime = time.Unix(0, math.MaxInt64)
)

func boundTime(t time.Time) time.Time {
	if t.Before(minTime) || t.After(maxTime) {
		return minTime
	}
	return t
}

func latestTime(t1, t2 time.Time) time.Time {
	if t1.Before(t2) {
		return t2
	}
	return t1
}

// entryTimes returns the access and modification times to write for hdr:
// the access time is the later of the header's access and modification
// times, so that a header without an access time gets its modification
// time.
func entryTimes(hdr *tar.Header) [2]unix.Timespec {
	atime := boundTime(latestTime(hdr.AccessTime, hdr.ModTime))
	mtime := boundTime(hdr.ModTime)
	return [2]unix.Timespec{
		unix.NsecToTimespec(atime.UnixNano()),
		unix.NsecToTimespec(mtime.UnixNano()),
	}
}
