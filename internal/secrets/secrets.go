// Package secrets seals data at rest with AES-256-GCM under a key-encryption key (KEK).
// KEKs live in a master key file outside the database, so a copy of the database alone
// reveals no key material. The file holds a list of KEKs; the newest seals, every one
// opens, which is how a KEK is rotated without re-encrypting everything at once.
package secrets

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/countersign/countersign/internal/ids"
)

// Ring is an ordered list of KEKs; the last one seals.
type Ring struct {
	ids   []string
	aeads map[string]cipher.AEAD
}

const sealedVersion = 1

// NewRing builds a ring from (id, 32-byte key) pairs, oldest first.
func NewRing(keys []KEK) (*Ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("secrets: no key-encryption key")
	}
	r := &Ring{aeads: make(map[string]cipher.AEAD)}
	for _, k := range keys {
		if len(k.Key) != 32 {
			return nil, fmt.Errorf("secrets: KEK %q is %d bytes, want 32", k.ID, len(k.Key))
		}
		if k.ID == "" || strings.ContainsAny(k.ID, ": \t") || len(k.ID) > 255 {
			return nil, fmt.Errorf("secrets: bad KEK id %q", k.ID)
		}
		if _, dup := r.aeads[k.ID]; dup {
			return nil, fmt.Errorf("secrets: duplicate KEK id %q", k.ID)
		}
		block, err := aes.NewCipher(k.Key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		r.ids = append(r.ids, k.ID)
		r.aeads[k.ID] = aead
	}
	return r, nil
}

// KEK is one key-encryption key.
type KEK struct {
	ID  string
	Key []byte
}

// Seal encrypts plaintext under the newest KEK. aad binds the ciphertext to its context
// (for example the row id and org), so a sealed value cannot be moved to another row.
// Layout: version(1) | len(kekID)(1) | kekID | nonce(12) | ciphertext+tag.
func (r *Ring) Seal(plaintext, aad []byte) []byte {
	id := r.ids[len(r.ids)-1]
	aead := r.aeads[id]
	out := make([]byte, 0, 2+len(id)+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out = append(out, sealedVersion, byte(len(id)))
	out = append(out, id...)
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plaintext, aad)
}

// Open decrypts a value made by Seal with any KEK of the ring.
func (r *Ring) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < 2 || sealed[0] != sealedVersion {
		return nil, errors.New("secrets: unknown sealed format")
	}
	n := int(sealed[1])
	if len(sealed) < 2+n {
		return nil, errors.New("secrets: truncated sealed value")
	}
	id := string(sealed[2 : 2+n])
	aead, ok := r.aeads[id]
	if !ok {
		return nil, fmt.Errorf("secrets: KEK %q is not in the master key file", id)
	}
	rest := sealed[2+n:]
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("secrets: truncated sealed value")
	}
	pt, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], aad)
	if err != nil {
		return nil, errors.New("secrets: sealed value does not authenticate")
	}
	return pt, nil
}

// NeedsReseal reports whether sealed was made by a KEK other than the newest.
func (r *Ring) NeedsReseal(sealed []byte) bool {
	if len(sealed) < 2 || len(sealed) < 2+int(sealed[1]) {
		return true
	}
	return string(sealed[2:2+int(sealed[1])]) != r.ids[len(r.ids)-1]
}

// LoadOrCreateFile reads a master key file, creating it (mode 0600) with one fresh KEK
// when it does not exist. Format: one "<id>:<base64 32 bytes>" per line, oldest first;
// '#' starts a comment. The file must not be readable by group or others.
func LoadOrCreateFile(path string) (*Ring, bool, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, false, err
		}
		key := make([]byte, 32)
		rand.Read(key)
		line := fmt.Sprintf("# countersign master key file: key-encryption keys, oldest first. Keep it secret and backed up.\n%s:%s\n",
			ids.New("kek"), base64.StdEncoding.EncodeToString(key))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			if errors.Is(err, os.ErrExist) { // another process won the race
				return loadFile(path, false)
			}
			return nil, false, err
		}
		if _, err := f.WriteString(line); err != nil {
			f.Close()
			return nil, false, err
		}
		if err := f.Close(); err != nil {
			return nil, false, err
		}
		return loadFile(path, true)
	}
	if err != nil {
		return nil, false, err
	}
	return parse(path, data, false)
}

func loadFile(path string, created bool) (*Ring, bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, false, err
	}
	return parse(path, data, created)
}

func parse(path string, data []byte, created bool) (*Ring, bool, error) {
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, false, fmt.Errorf("secrets: %s is readable by others (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	var keys []KEK
	sc := bufio.NewScanner(bytes.NewReader(data))
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, b64, ok := strings.Cut(line, ":")
		if !ok {
			return nil, false, fmt.Errorf("secrets: %s line %d: want <id>:<base64 key>", path, ln)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			return nil, false, fmt.Errorf("secrets: %s line %d: %v", path, ln, err)
		}
		keys = append(keys, KEK{ID: strings.TrimSpace(id), Key: key})
	}
	r, err := NewRing(keys)
	return r, created, err
}
