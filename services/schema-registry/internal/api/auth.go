package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/sluicehq/sluice/services/schema-registry/internal/registry"
)

// Role is what a credential may do.
type Role int

// Roles.
const (
	RoleRead Role = iota + 1
	RoleReadWrite
)

// Auth checks basic-auth users and bearer tokens. Secrets are kept as
// SHA-256 digests and compared in constant time.
type Auth struct {
	users  map[string]cred // user -> password digest, role
	tokens []cred
}

type cred struct {
	digest [32]byte
	role   Role
}

func parseRole(s string) (Role, error) {
	switch strings.ToLower(s) {
	case "ro", "read", "readonly", "read-only":
		return RoleRead, nil
	case "rw", "write", "readwrite", "read-write":
		return RoleReadWrite, nil
	}
	return 0, fmt.Errorf("unknown role %q (want ro or rw)", s)
}

// ParseAuth builds Auth from "user:password:role" and "token:role" lists;
// both empty means no authentication (nil).
func ParseAuth(users, tokens []string) (*Auth, error) {
	if len(users) == 0 && len(tokens) == 0 {
		return nil, nil
	}
	a := &Auth{users: map[string]cred{}}
	for _, u := range users {
		i, j := strings.IndexByte(u, ':'), strings.LastIndexByte(u, ':')
		if i <= 0 || j <= i {
			return nil, fmt.Errorf("user entry must be user:password:role")
		}
		role, err := parseRole(u[j+1:])
		if err != nil {
			return nil, fmt.Errorf("user %s: %w", u[:i], err)
		}
		a.users[u[:i]] = cred{sha256.Sum256([]byte(u[i+1 : j])), role}
	}
	for n, t := range tokens {
		j := strings.LastIndexByte(t, ':')
		if j <= 0 {
			return nil, fmt.Errorf("token entry %d must be token:role", n+1)
		}
		role, err := parseRole(t[j+1:])
		if err != nil {
			return nil, fmt.Errorf("token entry %d: %w", n+1, err)
		}
		a.tokens = append(a.tokens, cred{sha256.Sum256([]byte(t[:j])), role})
	}
	return a, nil
}

// RoleOf returns the role of the request's credentials, or 0.
func (a *Auth) RoleOf(authorization string) Role {
	if tok, ok := strings.CutPrefix(authorization, "Bearer "); ok {
		d := sha256.Sum256([]byte(tok))
		for _, c := range a.tokens {
			if subtle.ConstantTimeCompare(d[:], c.digest[:]) == 1 {
				return c.role
			}
		}
		return 0
	}
	r := &http.Request{Header: http.Header{"Authorization": {authorization}}}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return 0
	}
	c, found := a.users[user]
	d := sha256.Sum256([]byte(pass))
	if subtle.ConstantTimeCompare(d[:], c.digest[:]) == 1 && found {
		return c.role
	}
	return 0
}

// readOnlyRequest reports whether a request changes nothing: GETs, and the
// POSTs that only look up or check.
func readOnlyRequest(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return true
	case http.MethodPost:
		p := r.URL.Path
		if strings.HasPrefix(p, "/compatibility/") {
			return true
		}
		return strings.HasPrefix(p, "/subjects/") && !strings.Contains(strings.TrimPrefix(p, "/subjects/"), "/")
	}
	return false
}

func (a *Auth) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role := a.RoleOf(r.Header.Get("Authorization"))
		if role == 0 {
			w.Header().Set("WWW-Authenticate", `Basic realm="schema-registry"`)
			writeError(w, &registry.Error{Status: http.StatusUnauthorized, Code: registry.CodeUnauthorized, Message: "Unauthorized: missing or invalid credentials"})
			return
		}
		if role == RoleRead && !readOnlyRequest(r) {
			writeError(w, &registry.Error{Status: http.StatusForbidden, Code: registry.CodeForbidden, Message: "Forbidden: these credentials are read-only"})
			return
		}
		next.ServeHTTP(w, r)
	})
}
