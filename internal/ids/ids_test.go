package ids

import (
	"regexp"
	"testing"
	"time"
)

func TestNewShape(t *testing.T) {
	re := regexp.MustCompile(`^us-[0-9a-v]{5}-[0-9a-v]{5}-[0-9a-v]{16}$`)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := New("us")
		if !re.MatchString(id) {
			t.Fatalf("bad id %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestSecretLength(t *testing.T) {
	if got := len(Secret(32)); got != 43 {
		t.Fatalf("Secret(32) has %d chars, want 43", got)
	}
}

func TestNewSortsByTime(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, b := at("ch", t0, true), at("ch", t0.Add(time.Millisecond), true)
	if !(a < b) || !(Floor("ch", t0) <= a) || !(a < Floor("ch", t0.Add(time.Millisecond))) {
		t.Fatalf("order: %s %s floor %s", a, b, Floor("ch", t0))
	}
	if !(New("ch") > a) {
		t.Fatal("a newer id sorts lower")
	}
}
