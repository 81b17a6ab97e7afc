// Package ids makes the opaque identifiers and secrets of the API. Ids follow the Dfns shape
// <prefix>-<5>-<5>-<16> in lower-case base32hex so clients that pattern-match them keep working.
package ids

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"strings"
	"time"
)

var b32 = base32.NewEncoding(alphabet).WithPadding(base32.NoPadding)

// New returns a fresh id such as "us-1f04s-lqc9q-8v1860pcj1bh5irf". The first ten
// characters are the time in milliseconds, so ids sort by creation time: rows inserted
// by id land at the end of their B-tree (cheap inserts) and old rows can be found by id
// range. The last sixteen are 80 random bits.
func New(prefix string) string { return at(prefix, time.Now(), true) }

// NewAt is New for a creation time from an injected clock.
func NewAt(prefix string, t time.Time) string { return at(prefix, t, true) }

// Floor returns the smallest id of the prefix created at t: every id made before t sorts
// below it.
func Floor(prefix string, t time.Time) string { return at(prefix, t, false) }

func at(prefix string, t time.Time, random bool) string {
	var b [16]byte // 48-bit time, 80 random bits (the encoding uses the first 130 bits)
	ms := uint64(t.UnixMilli())
	for i := 0; i < 6; i++ {
		b[i] = byte(ms >> (40 - 8*i))
	}
	if random {
		rand.Read(b[6:])
	}
	// Re-pack as 10 characters of time (50 bits, top bits zero) + 16 of randomness.
	var sb strings.Builder
	sb.Grow(len(prefix) + 29)
	sb.WriteString(prefix)
	sb.WriteByte('-')
	var tchars [10]byte
	for i := 9; i >= 0; i-- {
		tchars[i] = alphabet[ms&31]
		ms >>= 5
	}
	sb.Write(tchars[:5])
	sb.WriteByte('-')
	sb.Write(tchars[5:])
	sb.WriteByte('-')
	sb.WriteString(b32.EncodeToString(b[6:])[:16])
	return sb.String()
}

const alphabet = "0123456789abcdefghijklmnopqrstuv"

// Secret returns n random bytes as unpadded base64url: canonical text that clients may
// embed in JSON or base64url-decode (challenges, one-time tokens).
func Secret(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
