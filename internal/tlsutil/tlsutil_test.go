package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
)

func TestSelfSignedServesHTTPS(t *testing.T) {
	dir := t.TempDir()
	cert, files, err := EnsureSelfSigned(dir)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	defer srv.Close()
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(files.CA)
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("bad CA PEM")
	}
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, err := c.Get(srv.URL) // https://127.0.0.1:port: the IP SAN must verify
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	// A second call reuses the files.
	cert2, _, err := EnsureSelfSigned(dir)
	if err != nil || string(cert2.Certificate[0]) != string(cert.Certificate[0]) {
		t.Fatalf("certificate not reused: %v", err)
	}
	if st, _ := os.Stat(files.Key); st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", st.Mode().Perm())
	}
}
