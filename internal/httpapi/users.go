package httpapi

import (
	"net/http"

	"github.com/countersign/countersign/internal/identity"
	"github.com/countersign/countersign/internal/users"
)

func toUser(u identity.User) userJSON {
	return userJSON{
		UserID: u.ID, Username: u.Username, Name: u.Name, Kind: u.Kind, OrgID: u.OrgID,
		IsActive: u.Status == identity.Active, IsServiceAccount: u.IsServiceAccount, IsRegistered: u.IsRegistered,
		ExternalID: u.ExternalID, PermissionAssignments: []any{},
	}
}

// createdUserJSON is the answer of POST /auth/users: the User object plus, only when no
// SMTP server delivers it, the registration code the admin must pass on (shown once).
type createdUserJSON struct {
	userJSON
	RegistrationCode string `json:"registrationCode,omitempty"`
}

func (s *Server) createUser(r *http.Request, c *call) (any, error) {
	var req users.CreateRequest
	if err := decode(c.body, &req); err != nil {
		return nil, err
	}
	out, err := s.Users.CreateUser(r.Context(), c.p, req)
	if err != nil {
		return nil, err
	}
	return createdUserJSON{userJSON: toUser(out.User), RegistrationCode: out.RegistrationCode}, nil
}

func (s *Server) listUsers(r *http.Request, c *call) (any, error) {
	q := r.URL.Query()
	limit, err := parseLimit(q.Get("limit"))
	if err != nil {
		return nil, err
	}
	us, next, err := s.Users.ListUsers(r.Context(), c.p, users.ListRequest{Kind: q.Get("kind"), Limit: limit, After: q.Get("paginationToken")})
	if err != nil {
		return nil, err
	}
	out := itemsJSON[userJSON]{Items: make([]userJSON, 0, len(us)), NextPageToken: next}
	for _, u := range us {
		out.Items = append(out.Items, toUser(u))
	}
	return out, nil
}

func (s *Server) getUser(r *http.Request, c *call) (any, error) {
	u, err := s.Users.GetUser(r.Context(), c.p, r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return toUser(u), nil
}

func (s *Server) userStatus(status string) handlerFunc {
	return func(r *http.Request, c *call) (any, error) {
		u, err := s.Users.SetUserStatus(r.Context(), c.p, r.PathValue("id"), status)
		if err != nil {
			return nil, err
		}
		return toUser(u), nil
	}
}
