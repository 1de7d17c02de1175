package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// tableHeader names the columns of both the text and the Markdown table.
var tableHeader = []string{
	"input", "target", "via", "runs", "ours s", "walking s", "ours/walking (min-max)",
	"MB/s ours", "MB/s walking", "entries/s ours", "entries/s walking",
	"RSS MiB ours", "ours child", "walking", "far pairs", "speed target", "child RSS <= 64 MiB",
}

func (s summary) cells() []string {
	ratio := fmt.Sprintf("%.2f (%.2f-%.2f)", s.Ratio, s.RatioMin, s.RatioMax)
	target, ok := s.speedCheck()
	if s.Input == "empty" {
		ratio = fmt.Sprintf("%+.1f ms, %.2f (%.2f-%.2f)", s.CostMs, s.Ratio, s.RatioMin, s.RatioMax)
	}
	walkingRSS := mibString(s.WalkingRSS)
	if s.WalkingChildRSS > 0 {
		walkingRSS += " + " + mibString(s.WalkingChildRSS)
	}
	childRSS, childCheck := mibString(s.ChildRSS), verdict(s.rssCheck())
	if s.Via == viaDaemon {
		childRSS, childCheck = "-", "-"
	}
	return []string{
		s.Input, s.Kind, s.Via, fmt.Sprint(s.Runs),
		fmt.Sprintf("%.3f", s.Ours), fmt.Sprintf("%.3f", s.Walking), ratio,
		fmt.Sprintf("%.0f", s.OursMBs), fmt.Sprintf("%.0f", s.WalkingMBs),
		fmt.Sprintf("%.0f", s.OursEnts), fmt.Sprintf("%.0f", s.WalkingEnt),
		mibString(s.OursRSS), childRSS, walkingRSS, fmt.Sprintf("%d/%d", s.FarPairs, s.Runs),
		verdict(ok) + " " + target, childCheck,
	}
}

// writeText writes the rows as an aligned plain-text table.
func writeText(w io.Writer, rows []summary, extra []checkLine) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(tableHeader, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r.cells(), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, c := range extra {
		fmt.Fprintf(w, "%s: %s %s\n", c.Name, verdict(c.OK), c.Detail)
	}
	return nil
}

// writeMarkdown writes the rows as a Markdown table.
func writeMarkdown(w io.Writer, rows []summary, extra []checkLine) {
	fmt.Fprintf(w, "| %s |\n", strings.Join(tableHeader, " | "))
	fmt.Fprintf(w, "|%s\n", strings.Repeat(" --- |", len(tableHeader)))
	for _, r := range rows {
		fmt.Fprintf(w, "| %s |\n", strings.Join(r.cells(), " | "))
	}
	if len(extra) > 0 {
		fmt.Fprintln(w)
	}
	for _, c := range extra {
		fmt.Fprintf(w, "- %s: **%s** %s\n", c.Name, verdict(c.OK), c.Detail)
	}
}

// checkLine is a target checked outside the table, such as the daemon's
// peak RSS.
type checkLine struct {
	Name   string
	OK     bool
	Detail string
}
