// Package errs defines the neutral error kinds of countersign. Domain packages return
// errors built with E; only the HTTP layer turns a Kind into a status code, so business
// code never decides what the wire says.
package errs

import (
	"errors"
	"fmt"
)

// Kind classifies an error for the caller. The zero value is Internal.
type Kind int

const (
	Internal         Kind = iota // bug or infrastructure failure; the message never reaches clients
	Invalid                      // malformed or semantically wrong input (400)
	Unauthenticated              // missing, malformed, expired or revoked credentials (401)
	PermissionDenied             // authenticated but not allowed, incl. a missing or bad user action (403)
	NotFound                     // no such object visible to the caller (404)
	Conflict                     // uniqueness or idempotency conflict (409)
	TooLarge                     // request body over the limit (413)
	Unavailable                  // a dependency is down; retry later (503)
)

func (k Kind) String() string {
	switch k {
	case Invalid:
		return "Invalid"
	case Unauthenticated:
		return "Unauthenticated"
	case PermissionDenied:
		return "PermissionDenied"
	case NotFound:
		return "NotFound"
	case Conflict:
		return "Conflict"
	case TooLarge:
		return "TooLarge"
	case Unavailable:
		return "Unavailable"
	default:
		return "Internal"
	}
}

// Error carries a kind, a message chosen on purpose for clients, optional public details,
// and a cause that is only ever logged.
type Error struct {
	Kind    Kind
	Message string
	Details map[string]any
	Cause   error
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %s: %v", e.Kind, e.Message, e.Cause)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Message)
}

func (e *Error) Unwrap() error { return e.Cause }

// E builds an error of the given kind. publicMessage is what clients see; cause may be nil.
func E(kind Kind, publicMessage string, cause error) error {
	return &Error{Kind: kind, Message: publicMessage, Cause: cause}
}

// Ef is E with a formatted public message and no cause.
func Ef(kind Kind, format string, args ...any) error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// WithDetails attaches public details (shown in the Dfns error body) to an error of ours.
func WithDetails(err error, details map[string]any) error {
	var e *Error
	if errors.As(err, &e) {
		c := *e
		c.Details = details
		return &c
	}
	return err
}

// KindOf reports the kind of err, Internal for errors that are not ours.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Is reports whether err is of kind k.
func Is(err error, k Kind) bool { return err != nil && KindOf(err) == k }

// Public returns the client-safe message and details of err. Internal errors, and errors
// that are not ours, never expose their text.
func Public(err error) (string, map[string]any) {
	var e *Error
	if errors.As(err, &e) && e.Kind != Internal {
		return e.Message, e.Details
	}
	return "Internal Server Error", nil
}
