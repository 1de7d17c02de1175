package config

import (
	"fmt"
	"sort"

	"github.com/containerd/containerd/v2/core/diff"
)

// RegisterStreamProcessors adds the configured stream processors to
// containerd's process-wide processor registry, where the applier finds them
// for media types it does not decode itself. Call it once, before serving.
func (c Config) RegisterStreamProcessors() {
	for _, id := range c.streamProcessorIDs() {
		p := c.StreamProcessors[id]
		diff.RegisterProcessor(diff.BinaryHandler(id, p.Returns, p.Accepts, p.Path, p.Args, p.Env))
	}
}

func (c Config) streamProcessorIDs() []string {
	ids := make([]string, 0, len(c.StreamProcessors))
	for id := range c.StreamProcessors {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

func (c Config) streamProcessorProblems() []string {
	var problems []string
	for _, id := range c.streamProcessorIDs() {
		p := c.StreamProcessors[id]
		if len(p.Accepts) == 0 {
			problems = append(problems, fmt.Sprintf("stream_processors.%q: accepts is empty", id))
		}
		if p.Returns == "" {
			problems = append(problems, fmt.Sprintf("stream_processors.%q: returns is empty", id))
		}
		if p.Path == "" {
			problems = append(problems, fmt.Sprintf("stream_processors.%q: path is empty", id))
		}
	}
	return problems
}
