package child

import (
	"unicode/utf8"

	"github.com/chroot-applier/containerd-chroot-applier/mount"
)

// Name is the argv[0] under which the re-executed binary acts as the
// child.
const Name = "containerd-chroot-applier-child"

// OptionsFD is the descriptor on which the child reads its options.
// Descriptors 0 to 2 are the tar stream, the result and the child's log.
const OptionsFD = 3

// SpliceBatch is the max number of bytes of the tar stream that the child
// moves at a time from its stdin into a staging pipe on their way to a file
// (extract.Options.SpliceBatch). The parent, which passes its memory to the
// stdin pipe with vmsplice(2), counts them as still in that pipe.
const SpliceBatch = 1 << 20

// Options are the child's options, sent by the parent as JSON on the
// options pipe. They travel on a pipe rather than in the environment, so
// they are not visible in /proc/PID/environ and have no size limit.
type Options struct {
	// Layer is the layer digest, used in error messages only.
	Layer string `json:"layer"`
	// Target is the extraction target.
	Target mount.Target `json:"target"`
	// SyncFs makes the child syncfs the target before it reports success.
	SyncFs bool `json:"syncFs,omitempty"`
}

// Result is the child's report, one JSON object on stdout.
// Exactly one of Error and the counters is meaningful.
type Result struct {
	// Size is the sum of the entries' header sizes.
	Size int64 `json:"size"`
	// Entries is the number of tar entries read.
	Entries int64 `json:"entries"`
	// Root is the child's confinement method: "pivot_root" or "chroot".
	Root string `json:"root,omitempty"`
	// Warnings lists entries that were skipped or changed, at most
	// maxWarnings of them.
	Warnings []Warning `json:"warnings,omitempty"`
	// WarningsDropped counts the warnings beyond maxWarnings.
	WarningsDropped int `json:"warningsDropped,omitempty"`
	// Error is set when the child failed.
	Error *Failure `json:"error,omitempty"`
}

// maxWarnings bounds the warnings a child reports, so that a layer with
// millions of skipped entries cannot flood the parent's log.
const maxWarnings = 100

// Warning is an entry the child skipped or changed.
type Warning struct {
	Entry  string `json:"entry"`
	Reason string `json:"reason"`
}

// Failure is a failure inside the child.
type Failure struct {
	// Kind is one of the Kind constants.
	Kind string `json:"kind"`
	// Stage is the child's step at the failure: "options", "confine" or
	// "extract".
	Stage string `json:"stage"`
	// Entry is the tar entry being applied, if any.
	Entry string `json:"entry,omitempty"`
	// Message is the error text.
	Message string `json:"message"`
}

// Kinds of child error, mapped to errdefs kinds by the parent.
const (
	KindInvalid     = "invalid"     // the layer's content is invalid
	KindNoSpace     = "no-space"    // the target file system is full
	KindNotFound    = "not-found"   // a path the request names does not exist
	KindUnsupported = "unsupported" // the kernel has no file system of a mount's type
	KindReadOnly    = "read-only"   // the target is on a read-only file system
	KindInternal    = "internal"    // anything else
)

// maxResultField bounds the JSON-encoded size of each entry name, reason and
// message in a Result. With maxWarnings warnings the whole result stays
// well under the parent's 1 MiB stdout buffer, so it always decodes.
const maxResultField = 4 << 10

// shortenedMarker replaces the middle of a field that shortenField cut.
const shortenedMarker = " ... (shortened) ... "

// shortenField returns s cut so that its JSON encoding, escapes included,
// takes at most maxResultField bytes. A cut field keeps its start and its
// end, where an error message names the cause, around shortenedMarker.
func shortenField(s string) string {
	if jsonSize(s) <= maxResultField {
		return s
	}
	// Two bytes are the quotes.
	budget := maxResultField - 2 - len(shortenedMarker)
	head, size := 0, 0
	for i, r := range s {
		n := jsonRuneSize(r)
		if size+n > budget*3/4 {
			head = i
			break
		}
		size += n
	}
	tail := len(s)
	for tail > head {
		r, width := utf8.DecodeLastRuneInString(s[:tail])
		n := jsonRuneSize(r)
		if size+n > budget {
			break
		}
		size += n
		tail -= width
	}
	return s[:head] + shortenedMarker + s[tail:]
}

// jsonSize returns an upper bound of the length of the JSON encoding of s.
func jsonSize(s string) int {
	size := 2
	for _, r := range s {
		size += jsonRuneSize(r)
	}
	return size
}

// jsonRuneSize returns an upper bound of the bytes encoding/json writes for r,
// which escapes control characters, HTML characters, U+2028, U+2029 and
// invalid UTF-8 as \uXXXX.
func jsonRuneSize(r rune) int {
	switch {
	case r == '"' || r == '\\':
		return 2
	case r < 0x20 || r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029' ||
		r == utf8.RuneError:
		return 6
	}
	return utf8.RuneLen(r)
}
