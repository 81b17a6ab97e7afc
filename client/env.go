package client

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Env is a bootstrap.env file as countersign writes it on its first start.
type Env struct {
	APIURL         string // DFNS_API_URL
	OrgID          string // DFNS_ORG_ID
	AuthToken      string // DFNS_AUTH_TOKEN
	CredID         string // DFNS_CRED_ID
	PrivateKeyFile string // DFNS_PRIVATE_KEY_FILE
}

// LoadEnv reads KEY=VALUE lines ('#' comments allowed).
func LoadEnv(path string) (*Env, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	vals := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			vals[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	e := &Env{APIURL: vals["DFNS_API_URL"], OrgID: vals["DFNS_ORG_ID"], AuthToken: vals["DFNS_AUTH_TOKEN"],
		CredID: vals["DFNS_CRED_ID"], PrivateKeyFile: vals["DFNS_PRIVATE_KEY_FILE"]}
	if e.APIURL == "" || e.AuthToken == "" || e.CredID == "" || e.PrivateKeyFile == "" {
		return nil, fmt.Errorf("%s: DFNS_API_URL, DFNS_AUTH_TOKEN, DFNS_CRED_ID and DFNS_PRIVATE_KEY_FILE are required", path)
	}
	if !filepath.IsAbs(e.PrivateKeyFile) {
		e.PrivateKeyFile = filepath.Join(filepath.Dir(path), e.PrivateKeyFile)
	}
	return e, nil
}

// Client builds a client from the env file's credentials.
func (e *Env) Client() (*Client, error) {
	pemBytes, err := os.ReadFile(e.PrivateKeyFile)
	if err != nil {
		return nil, err
	}
	key, err := ParsePrivateKeyPEM(pemBytes)
	if err != nil {
		return nil, err
	}
	s, err := NewKeySigner(e.CredID, key)
	if err != nil {
		return nil, err
	}
	return New(e.APIURL, e.AuthToken, s), nil
}
