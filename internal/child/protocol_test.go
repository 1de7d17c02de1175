package child

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestShortenField(t *testing.T) {
	cases := []struct {
		name    string
		s       string
		wantCut bool
	}{
		{"short name is kept", "etc/passwd", false},
		{"name at the limit is kept", strings.Repeat("a", maxResultField-2), false},
		{"long name is cut", strings.Repeat("a", 600<<10), true},
		{"control characters count as escapes", strings.Repeat("\x01", maxResultField), true},
		{"html characters count as escapes", strings.Repeat("<", maxResultField), true},
		{"invalid utf-8 counts as escapes", strings.Repeat("\xff", maxResultField), true},
		{"multibyte runes are not split", strings.Repeat("é", maxResultField), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := shortenField(tc.s)
			encoded, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			if len(encoded) > maxResultField {
				t.Errorf("encoding takes %d bytes, want at most %d", len(encoded), maxResultField)
			}
			cut := got != tc.s
			if cut != tc.wantCut {
				t.Errorf("cut = %v, want %v", cut, tc.wantCut)
			}
			head, tail, marked := strings.Cut(got, shortenedMarker)
			if cut && !marked {
				t.Errorf("cut field %.40q... is not marked as shortened", got)
			}
			if cut && !strings.HasPrefix(tc.s, head) {
				t.Error("cut field does not keep the start of the original")
			}
			if cut && !strings.HasSuffix(tc.s, tail) {
				t.Error("cut field does not keep the end of the original")
			}
			if cut && len(tail) == 0 {
				t.Error("cut field keeps nothing of the end of the original")
			}
			if utf8.ValidString(tc.s) && !utf8.ValidString(got) {
				t.Error("cut field splits a multibyte rune")
			}
			if cut && len(encoded) < maxResultField-16 {
				t.Errorf("encoding takes %d bytes, want close to %d", len(encoded), maxResultField)
			}
		})
	}
}
