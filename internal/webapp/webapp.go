// Package webapp serves a small end-user wallet page under /app/ (plain HTML and JavaScript,
// embedded, no build step): passkey sign-up and login, a wallet created and a transfer signed
// with the passkey through the user-action flow, exactly as a Dfns end-user front end does.
//
// Signing up an end user is the organization's server's job (delegated registration with its
// service account). POST /app/demo/signup plays that server with the bootstrap admin service
// account. It is a development tool: off unless --demo-app is set, and answered 404 otherwise,
// because anyone who can reach it can create end users of the bootstrap organization.
package webapp

import (
	"bytes"
	"embed"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"sync"

	"github.com/countersign/countersign/client"
)

//go:embed static
var static embed.FS

// Options configure the page.
type Options struct {
	Demo    bool   // serve POST /app/demo/signup
	EnvFile string // bootstrap.env of the admin service account the demo signs up with
}

// Handler serves /app/ and the demo route, and passes everything else to api.
func Handler(api http.Handler, o Options) http.Handler {
	sub, _ := fs.Sub(static, "static")
	d := &demo{envFile: o.EnvFile}
	mux := http.NewServeMux()
	files := http.StripPrefix("/app/", http.FileServer(http.FS(sub)))
	mux.Handle("GET /app/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The page runs only its own script and talks only to this server.
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	}))
	mux.Handle("GET /app", http.RedirectHandler("/app/", http.StatusMovedPermanently))
	mux.HandleFunc("POST /app/demo/signup", func(w http.ResponseWriter, r *http.Request) {
		if !o.Demo {
			writeErr(w, http.StatusNotFound, "the demo sign-up is off: start the server with --demo-app (development only)")
			return
		}
		d.signup(w, r)
	})
	mux.Handle("/", api)
	return mux
}

// demo is the organization's server of the demo: the bootstrap admin service account.
type demo struct {
	envFile string
	once    sync.Once
	admin   *client.Client
	err     error
}

func (d *demo) client() (*client.Client, error) {
	d.once.Do(func() {
		env, err := client.LoadEnv(d.envFile)
		if err != nil {
			d.err = err
			return
		}
		d.admin, d.err = env.Client()
	})
	return d.admin, d.err
}

// signup starts a delegated registration of an end user ({"email"}) and hands the browser
// the registration challenge; the browser finishes with POST /auth/registration/enduser.
func (d *demo) signup(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email string `json:"email"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req); err != nil {
		writeErr(w, http.StatusBadRequest, "body must be {\"email\": \"...\"}")
		return
	}
	admin, err := d.client()
	if err != nil {
		writeErr(w, http.StatusServiceUnavailable, "the demo cannot load the admin service account (bootstrap.env)")
		return
	}
	body, _ := json.Marshal(map[string]string{"email": req.Email, "kind": "EndUser"})
	const method, path = http.MethodPost, "/auth/registration/delegated"
	ua, err := admin.UserAction(r.Context(), method, path, body)
	if err != nil {
		writeErr(w, http.StatusBadGateway, "the demo could not sign the delegated registration: "+err.Error())
		return
	}
	status, out, err := admin.Raw(r.Context(), method, path, body, ua)
	if err != nil {
		writeErr(w, http.StatusBadGateway, "the demo could not reach the API: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(out)
}

func writeErr(w http.ResponseWriter, status int, msg string) {
	var b bytes.Buffer
	json.NewEncoder(&b).Encode(map[string]any{"error": map[string]any{"status": status, "message": msg}})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}
