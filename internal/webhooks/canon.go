package webhooks

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Canonical re-encodes a JSON document exactly as JavaScript's
// JSON.stringify(JSON.parse(doc)) would: compact, strings escaped only where JavaScript
// escapes them (so <, >, &, U+2028 and U+2029 stay raw, unlike Go's encoder), integer-like
// object keys first in ascending order, later duplicate keys replacing the earlier value
// in its place, and integers in the safe range written plainly.
//
// The documented receiver check (dfns-api.md §5.3) recomputes the HMAC over
// JSON.stringify(parsedBody), so a delivery body must survive that round trip byte for
// byte: every body countersign signs goes through Canonical.
func Canonical(doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var out bytes.Buffer
	if err := canonValue(dec, &out); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("webhooks: trailing data after JSON value")
	}
	return out.Bytes(), nil
}

type member struct {
	key string
	val []byte
}

func canonValue(dec *json.Decoder, out *bytes.Buffer) error {
	tok, err := dec.Token()
	if err != nil {
		return fmt.Errorf("webhooks: malformed JSON: %w", err)
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			var ms []member
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return fmt.Errorf("webhooks: malformed JSON: %w", err)
				}
				k, _ := kt.(string)
				var v bytes.Buffer
				if err := canonValue(dec, &v); err != nil {
					return err
				}
				if i := slices.IndexFunc(ms, func(m member) bool { return m.key == k }); i >= 0 {
					ms[i].val = v.Bytes()
				} else {
					ms = append(ms, member{k, v.Bytes()})
				}
			}
			if _, err := dec.Token(); err != nil {
				return fmt.Errorf("webhooks: malformed JSON: %w", err)
			}
			// ECMAScript orders integer-like keys (array indices) first, ascending.
			slices.SortStableFunc(ms, func(a, b member) int {
				ai, aok := arrayIndex(a.key)
				bi, bok := arrayIndex(b.key)
				switch {
				case aok && bok:
					return int(ai - bi)
				case aok:
					return -1
				case bok:
					return 1
				}
				return 0
			})
			out.WriteByte('{')
			for i, m := range ms {
				if i > 0 {
					out.WriteByte(',')
				}
				writeString(out, m.key)
				out.WriteByte(':')
				out.Write(m.val)
			}
			out.WriteByte('}')
		case '[':
			out.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					out.WriteByte(',')
				}
				if err := canonValue(dec, out); err != nil {
					return err
				}
			}
			if _, err := dec.Token(); err != nil {
				return fmt.Errorf("webhooks: malformed JSON: %w", err)
			}
			out.WriteByte(']')
		}
	case string:
		writeString(out, t)
	case json.Number:
		s, err := jsNumber(t)
		if err != nil {
			return err
		}
		out.WriteString(s)
	case bool:
		out.WriteString(strconv.FormatBool(t))
	case nil:
		out.WriteString("null")
	}
	return nil
}

// arrayIndex reports whether k is an ECMAScript array index ("0", "17"; not "017").
func arrayIndex(k string) (int64, bool) {
	if k == "" || len(k) > 10 || (len(k) > 1 && k[0] == '0') {
		return 0, false
	}
	n, err := strconv.ParseInt(k, 10, 64)
	if err != nil || n < 0 || n >= math.MaxUint32 {
		return 0, false
	}
	return n, true
}

// jsNumber formats a number as JavaScript's Number.prototype.toString does.
func jsNumber(n json.Number) (string, error) {
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) {
		return "", fmt.Errorf("webhooks: number %s out of range", n)
	}
	if f == 0 {
		return "0", nil // JSON.stringify(-0) is "0"
	}
	if a := math.Abs(f); a >= 1e-6 && a < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64), nil
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // 1e-07, 1.5e+21
	mant, exp, _ := strings.Cut(s, "e")
	sign := exp[0]
	exp = strings.TrimLeft(exp[1:], "0")
	return mant + "e" + string(sign) + exp, nil
}

const hexDigits = "0123456789abcdef"

// writeString quotes s as JSON.stringify does (well-formed JSON.stringify, ES2019).
func writeString(out *bytes.Buffer, s string) {
	out.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			out.WriteByte(c)
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				out.WriteString("\ufffd") // what a decoder makes of invalid UTF-8
			} else {
				out.WriteString(s[i : i+size])
			}
			i += size
			continue
		}
		switch c {
		case '"':
			out.WriteString(`\"`)
		case '\\':
			out.WriteString(`\\`)
		case '\b':
			out.WriteString(`\b`)
		case '\f':
			out.WriteString(`\f`)
		case '\n':
			out.WriteString(`\n`)
		case '\r':
			out.WriteString(`\r`)
		case '\t':
			out.WriteString(`\t`)
		default:
			out.WriteString(`\u00`)
			out.WriteByte(hexDigits[c>>4])
			out.WriteByte(hexDigits[c&0xf])
		}
		i++
	}
	out.WriteByte('"')
}

// SignatureHeader is the header that carries a delivery's signature (dfns-api.md §5.3).
const SignatureHeader = "X-DFNS-WEBHOOK-SIGNATURE"

// Sign returns the signature header value of body: "sha256=" and the lowercase hex of
// HMAC-SHA256 keyed with the webhook secret's UTF-8 bytes.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header value against body in constant time.
func Verify(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(strings.TrimSpace(header)))
}

// Envelope is the body POSTed to a receiver (dfns-api.md §5.2), before Canonical.
type Envelope struct {
	ID              string          `json:"id"`
	Kind            string          `json:"kind"`
	Date            string          `json:"date"`
	Data            json.RawMessage `json:"data"`
	DeliveryAttempt int             `json:"deliveryAttempt"`
	RetryOf         string          `json:"retryOf,omitempty"`
	TimestampSent   int64           `json:"timestampSent"`
}

// Body encodes e as the exact bytes to send and sign.
func (e Envelope) Body() ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	return Canonical(b)
}
