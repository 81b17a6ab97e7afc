// Package ids makes the opaque identifiers and secrets of the API. Ids follow the Dfns shape
// <prefix>-<5>-<5>-<16> in lower-case base32hex so clients that pattern-match them keep working.
package ids

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"strings"
)

var b32 = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// New returns a fresh id such as "us-1f04s-lqc9q-8v1860pcj1bh5irf" (130 random bits).
func New(prefix string) string {
	var b [17]byte
	rand.Read(b[:])
	s := b32.EncodeToString(b[:])[:26]
	var sb strings.Builder
	sb.Grow(len(prefix) + 29)
	sb.WriteString(prefix)
	sb.WriteByte('-')
	sb.WriteString(s[:5])
	sb.WriteByte('-')
	sb.WriteString(s[5:10])
	sb.WriteByte('-')
	sb.WriteString(s[10:])
	return sb.String()
}

// Secret returns n random bytes as unpadded base64url: canonical text that clients may
// embed in JSON or base64url-decode (challenges, one-time tokens).
func Secret(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
