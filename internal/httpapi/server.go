// Package httpapi serves the Dfns-compatible HTTP API: routing, request decoding and
// limits, bearer authentication, User Action Signing enforcement, and the single mapping
// from error kinds to HTTP statuses and the Dfns error shape.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/countersign/countersign/internal/audit"
	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/errs"
	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/keys"
	"github.com/countersign/countersign/internal/useraction"
	"github.com/countersign/countersign/internal/users"
	"github.com/countersign/countersign/internal/wallets"
	"github.com/countersign/countersign/internal/webhooks"
)

// MaxBody is the largest request body accepted (413 above it).
const MaxBody = 1 << 20

// Deps are the services the API serves.
type Deps struct {
	Log         *slog.Logger
	Auth        *auth.Authenticator
	UserActions *useraction.Service
	Identity    *identity.Service
	Audit       *audit.Service
	Keys        *keys.Service
	Wallets     *wallets.Service
	Users       *users.Service
	Webhooks    *webhooks.Service
	RP          RP
	Health      func(ctx context.Context) error
}

// RP is the WebAuthn relying party announced in challenges.
type RP struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Server is the API's http.Handler.
type Server struct {
	Deps
	log    *slog.Logger
	mux    *http.ServeMux
	reqSeq atomic.Uint64
	node   string
}

// New builds the API.
func New(d Deps) *Server {
	s := &Server{Deps: d, log: d.Log, mux: http.NewServeMux(), node: strconv.FormatInt(time.Now().UnixNano()%1e6, 36)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.routes()
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// call is what a handler gets besides the request: the caller and the raw body.
type call struct {
	p    auth.Principal
	body []byte
	code int // success status; 200 unless the handler says otherwise
}

// handlerFunc decodes, calls one service method and returns the value to encode.
type handlerFunc func(r *http.Request, c *call) (any, error)

type routeOpt int

const (
	public routeOpt = iota + 1 // no bearer token
	noUA                       // a write that needs no user action (dfns-api.md §2.7)
)

// handle registers a route. Every non-GET route requires a user action unless it says
// noUA, so routes added later are protected by default.
func (s *Server) handle(pattern string, h handlerFunc, opts ...routeOpt) {
	method, _, _ := strings.Cut(pattern, " ")
	needAuth, needUA := true, method != http.MethodGet
	for _, o := range opts {
		switch o {
		case public:
			needAuth, needUA = false, false
		case noUA:
			needUA = false
		}
	}
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		s.serve(w, r, h, needAuth, needUA)
	})
}

// serve runs the middleware chain and the handler. A request whose user action was consumed
// gets its final status recorded in the audit entry before the answer goes out (so a client
// that has its answer also sees the entry finished), a handler panic included.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, h handlerFunc, needAuth, needUA bool) {
	reqID := s.node + "-" + strconv.FormatUint(s.reqSeq.Add(1), 36)
	c := &call{code: http.StatusOK}
	auditID := ""
	var pending *audit.Pending
	out, err := func() (out any, err error) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					if auditID != "" {
						s.finishAudit(r, auditID, 499)
					}
					panic(v)
				}
				err = errs.E(errs.Internal, "internal error", errors.New("panic: "+strings.TrimSpace(slogValue(v))))
			}
		}()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if c.body, err = readBody(w, r); err != nil {
				return nil, err
			}
		}
		if needAuth {
			if c.p, err = s.Auth.Authenticate(r.Context(), r.Header.Get("Authorization")); err != nil {
				return nil, err
			}
			r = r.WithContext(auth.WithPrincipal(r.Context(), c.p))
		}
		if needUA {
			if _, auditID, err = s.UserActions.Consume(r.Context(), c.p, r.Header.Get("X-DFNS-USERACTION"), r.Method, r.RequestURI, c.body); err != nil {
				return nil, err
			}
			var ctx context.Context
			ctx, pending = s.Audit.Begin(r.Context(), auditID)
			r = r.WithContext(ctx)
		}
		return h(r, c)
	}()
	// A successful request's status was recorded by its write transaction; anything else
	// (an error, or a request that wrote nothing) is recorded here.
	if auditID != "" && (err != nil || c.code != http.StatusOK || pending == nil || !pending.Done()) {
		code := c.code
		if err != nil {
			code = status(errs.KindOf(err))
		}
		s.finishAudit(r, auditID, code)
	}
	if err != nil {
		s.writeError(w, r, reqID, err)
		return
	}
	writeJSON(w, c.code, out)
}

// finishAudit records a signed request's final status. The request's own context may be
// gone once the client hung up; the audit must not be.
func (s *Server) finishAudit(r *http.Request, auditID string, code int) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
	defer cancel()
	if err := s.Audit.Finish(ctx, auditID, code); err != nil {
		s.log.Error("audit finish failed", "audit", auditID, "err", err)
	}
}

func slogValue(v any) string {
	if e, ok := v.(error); ok {
		return e.Error()
	}
	if s, ok := v.(string); ok {
		return s
	}
	return "non-error panic"
}

// readBody reads the whole body, refusing more than MaxBody bytes with 413.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > MaxBody {
		return nil, errs.E(errs.TooLarge, "request body is larger than 1 MiB", nil)
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, errs.E(errs.TooLarge, "request body is larger than 1 MiB", err)
		}
		return nil, errs.E(errs.Invalid, "could not read request body", err)
	}
	return b, nil
}

// decode parses a JSON body into v. An empty body counts as {} (the Go SDK sends none for
// body-less calls); anything that is not one JSON object of the right types is refused.
func decode(body []byte, v any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		body = []byte("{}")
	}
	if body[0] != '{' {
		return errs.E(errs.Invalid, "request body must be a JSON object", nil)
	}
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return errs.Ef(errs.Invalid, "field %s has the wrong type (want %s)", te.Field, te.Type)
		}
		return errs.E(errs.Invalid, "malformed JSON body", err)
	}
	if d.More() {
		return errs.E(errs.Invalid, "malformed JSON body: trailing data", nil)
	}
	return nil
}

var jsonCT = []string{"application/json"}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"error":{"status":500,"message":"Internal Server Error"}}`)
	}
	h := w.Header()
	h["Content-Type"] = jsonCT
	h["Content-Length"] = []string{strconv.Itoa(len(b))}
	w.WriteHeader(code)
	w.Write(b)
}
