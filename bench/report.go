package main

import (
	"fmt"
	"slices"
)

const mib = 1 << 20

// Targets the table checks. Ratios are ours/walking wall time, medians of
// the per-pair ratios.
const (
	maxChildRSS  = 64 * mib
	maxDaemonRSS = 128 * mib
	// maxEmptyCostMs is the largest acceptable fixed cost per layer, ours
	// minus walking, in milliseconds.
	maxEmptyCostMs = 15
)

// maxRatio is the target ratio ours/walking of each input except empty.
var maxRatio = map[string]float64{
	"debian-gzip": 0.75,
	"debian-zstd": 0.9,
	"debian-tar":  0.9,
	"small":       0.8,
	"large":       0.9,
}

// summary is the row of one caseResult in the table.
type summary struct {
	Input, Kind, Via     string
	Ours, Walking        float64 // median seconds
	Ratio, RatioMin      float64
	RatioMax             float64
	CostMs               float64 // median ours minus median walking
	OursMBs, WalkingMBs  float64
	OursEnts, WalkingEnt float64 // entries per second
	OursRSS, ChildRSS    int64
	WalkingRSS           int64
	WalkingChildRSS      int64
	Runs                 int
	// FarPairs is the number of timed pairs run while the cross-core round
	// trip was above farRoundTrip.
	FarPairs int
}

func summarize(c caseResult) summary {
	s := summary{Input: c.Input.Name, Kind: c.Kind, Via: c.Via, Runs: len(c.Ours)}
	var ours, walking, ratios []float64
	for i := range c.Ours {
		ours = append(ours, c.Ours[i].Seconds)
		walking = append(walking, c.Walking[i].Seconds)
		ratios = append(ratios, c.Ours[i].Seconds/c.Walking[i].Seconds)
		s.OursRSS = max(s.OursRSS, c.Ours[i].SelfRSS)
		s.ChildRSS = max(s.ChildRSS, c.Ours[i].ChildRSS)
		s.WalkingRSS = max(s.WalkingRSS, c.Walking[i].SelfRSS)
		s.WalkingChildRSS = max(s.WalkingChildRSS, c.Walking[i].ChildRSS)
	}
	for _, roundTrip := range c.RoundTrips {
		if roundTrip > farRoundTrip {
			s.FarPairs++
		}
	}
	s.Ours, s.Walking = median(ours), median(walking)
	s.Ratio, s.RatioMin, s.RatioMax = median(ratios), slices.Min(ratios), slices.Max(ratios)
	s.CostMs = (s.Ours - s.Walking) * 1000
	mb := float64(c.Input.Uncompressed) / 1e6
	s.OursMBs, s.WalkingMBs = mb/s.Ours, mb/s.Walking
	s.OursEnts = float64(c.Input.Entries) / s.Ours
	s.WalkingEnt = float64(c.Input.Entries) / s.Walking
	return s
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// speedCheck returns the speed target of the row and whether it is met.
func (s summary) speedCheck() (string, bool) {
	if s.Input == "empty" {
		return fmt.Sprintf("cost %+.1f ms <= %d ms", s.CostMs, maxEmptyCostMs),
			s.CostMs <= maxEmptyCostMs
	}
	limit, ok := maxRatio[s.Input]
	if !ok {
		return "no target", true
	}
	return fmt.Sprintf("ratio <= %.2f", limit), s.Ratio <= limit
}

// rssCheck returns whether our child stayed within maxChildRSS. Through the
// daemon the child's RSS is not measured, and the check passes.
func (s summary) rssCheck() bool { return s.ChildRSS <= maxChildRSS }

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "MISS"
}

func mibString(n int64) string { return fmt.Sprintf("%.0f", float64(n)/mib) }
