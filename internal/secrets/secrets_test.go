package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestSealOpenRotation(t *testing.T) {
	old, err := NewRing([]KEK{{ID: "k1", Key: key(1)}})
	if err != nil {
		t.Fatal(err)
	}
	s1 := old.Seal([]byte("secret"), []byte("row-1"))
	both, _ := NewRing([]KEK{{ID: "k1", Key: key(1)}, {ID: "k2", Key: key(2)}})
	if pt, err := both.Open(s1, []byte("row-1")); err != nil || string(pt) != "secret" {
		t.Fatalf("open with rotated ring: %q %v", pt, err)
	}
	if !both.NeedsReseal(s1) {
		t.Fatal("value sealed by old KEK should need reseal")
	}
	s2 := both.Seal([]byte("secret"), []byte("row-1"))
	if both.NeedsReseal(s2) {
		t.Fatal("fresh value should not need reseal")
	}
	if _, err := old.Open(s2, []byte("row-1")); err == nil {
		t.Fatal("old ring opened a value sealed by a newer KEK")
	}
	cases := map[string][]byte{
		"wrong-aad": nil,
		"tampered":  append(append([]byte{}, s2[:len(s2)-1]...), s2[len(s2)-1]^1),
		"truncated": s2[:5],
		"empty":     {},
	}
	for name, c := range cases {
		aad := []byte("row-1")
		if name == "wrong-aad" {
			c, aad = s2, []byte("row-2")
		}
		if _, err := both.Open(c, aad); err == nil {
			t.Errorf("%s: opened", name)
		}
	}
}

func TestLoadOrCreateFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "master.key")
	r1, created, err := LoadOrCreateFile(p)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
	sealed := r1.Seal([]byte("x"), nil)
	r2, created, err := LoadOrCreateFile(p)
	if err != nil || created {
		t.Fatalf("reload: %v %v", created, err)
	}
	if pt, err := r2.Open(sealed, nil); err != nil || string(pt) != "x" {
		t.Fatalf("reopen: %v", err)
	}
	os.Chmod(p, 0o644)
	if _, _, err := LoadOrCreateFile(p); err == nil {
		t.Fatal("world-readable key file accepted")
	}
}
