package httpapi

import (
	"net/http"

	"github.com/countersign/countersign/internal/errs"
)

// status is the one place where error kinds become HTTP statuses.
func status(k errs.Kind) int {
	switch k {
	case errs.Invalid:
		return http.StatusBadRequest
	case errs.Unauthenticated:
		return http.StatusUnauthorized
	case errs.PermissionDenied:
		return http.StatusForbidden
	case errs.NotFound:
		return http.StatusNotFound
	case errs.Conflict:
		return http.StatusConflict
	case errs.TooLarge:
		return http.StatusRequestEntityTooLarge
	case errs.Unavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}

// errorBody is the Dfns error shape (dfns-api.md §6.1): the TS SDK reads error.message.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	ID      string         `json:"id,omitempty"`
	Status  int            `json:"status"`
	Message string         `json:"message"`
	Details map[string]any `json:"details,omitempty"`
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, reqID string, err error) int {
	code := status(errs.KindOf(err))
	msg, details := errs.Public(err)
	if code >= 500 {
		s.log.Error("request failed", "id", reqID, "method", r.Method, "path", r.URL.Path, "err", err)
	} else if s.log.Enabled(r.Context(), -4) {
		s.log.Debug("request refused", "id", reqID, "method", r.Method, "path", r.URL.Path, "status", code, "err", err)
	}
	writeJSON(w, code, errorBody{Error: errorDetail{ID: reqID, Status: code, Message: msg, Details: details}})
	return code
}
