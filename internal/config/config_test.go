package config

import (
	"slices"
	"testing"
	"time"
)

func TestWebOrigins(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		addr string
		want []string
	}{
		{"default", Config{RPID: "localhost"}, "127.0.0.1:8080", []string{"http://localhost:8080", "https://localhost:8080"}},
		{"rp-id", Config{RPID: "wallet.example.co"}, "0.0.0.0:9000", []string{"http://localhost:9000", "https://localhost:9000", "http://wallet.example.co:9000", "https://wallet.example.co:9000"}},
		{"public-url", Config{RPID: "example.co", PublicURL: "https://api.example.co/base/"}, "127.0.0.1:1", []string{"https://api.example.co"}},
		{"explicit", Config{RPID: "example.co", Origins: []string{"https://app.example.co"}}, "127.0.0.1:1", []string{"https://app.example.co"}},
	} {
		if got := tc.cfg.WebOrigins(tc.addr); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestValidateOrigins(t *testing.T) {
	base := Config{DataDir: "d", Listen: "127.0.0.1:0", ChallengeTTL: time.Minute}
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"https://app.example.co", true},
		{"http://localhost:8080", true},
		{"android:apk-key-hash:abc", true},
		{"ftp://x", false},
		{"https://app.example.co/path", false},
		{"app.example.co", false},
	} {
		c := base
		c.Origins = []string{tc.origin}
		if err := c.Validate(); (err == nil) != tc.ok {
			t.Errorf("%q: %v", tc.origin, err)
		}
	}
}
