package server

import (
	"net"
	"net/http"
	httppprof "net/http/pprof"
	"net/url"
	"strings"

	"github.com/reactorgo/reactor/cmd/poker/web"
	"github.com/reactorgo/reactor/gateway"
)

// Who may use the operator endpoints (/status, /status.json, /metrics,
// /debug/pprof/) on the public Handler.
const (
	// AdminLoopback (the default): only clients on the loopback interface
	// that came through no proxy (no Forwarded, X-Forwarded-For or
	// X-Real-IP header). Others get 403.
	AdminLoopback = "loopback"
	// AdminPublic: every client. Choose it only behind something that
	// guards the operator paths.
	AdminPublic = "public"
	// AdminOff: not on the public Handler at all (404); serve AdminHandler
	// on a listener of its own.
	AdminOff = "off"
)

// adminRoutes mounts the operator endpoints on m, each wrapped by gate.
func (s *Server) adminRoutes(m *http.ServeMux, gate func(http.Handler) http.Handler) {
	m.Handle("GET /metrics", gate(s.metricsHandler()))
	m.Handle("GET /status", gate(gateway.SecureHeaders(http.HandlerFunc(s.status))))
	m.Handle("GET /status.json", gate(http.HandlerFunc(s.statusJSON)))
	m.Handle("GET /status.js", gate(gateway.SecureHeaders(http.FileServerFS(web.FS))))
	m.Handle("GET /debug/pprof/", gate(http.HandlerFunc(httppprof.Index)))
	m.Handle("GET /debug/pprof/cmdline", gate(http.HandlerFunc(httppprof.Cmdline)))
	m.Handle("GET /debug/pprof/profile", gate(http.HandlerFunc(httppprof.Profile)))
	m.Handle("GET /debug/pprof/symbol", gate(http.HandlerFunc(httppprof.Symbol)))
	m.Handle("GET /debug/pprof/trace", gate(http.HandlerFunc(httppprof.Trace)))
}

// adminGate applies cfg.Admin to an operator endpoint of the public
// Handler.
func (s *Server) adminGate(h http.Handler) http.Handler {
	switch s.cfg.Admin {
	case AdminPublic:
		return h
	case AdminOff:
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			gateway.Error(w, http.StatusNotFound, "not_found", "not found")
		})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !fromLoopback(r) {
			gateway.Error(w, http.StatusForbidden, "forbidden",
				"operator pages are served only to this machine (loopback) or on the admin address (poker -admin-addr)")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// fromLoopback reports whether r comes from this machine, directly: a
// reverse proxy on the same machine connects from loopback too, so a
// request carrying a forwarding header counts as remote.
func fromLoopback(r *http.Request) bool {
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Real-Ip"} {
		if r.Header.Get(h) != "" {
			return false
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// AdminHandler serves the operator endpoints (/status, /status.json,
// /metrics, /debug/pprof/) to every client, for a listener of their own
// (poker -admin-addr); "/" redirects to /status. It has no request
// deadline, so a CPU profile may run as long as asked.
func (s *Server) AdminHandler() http.Handler {
	m := http.NewServeMux()
	s.adminRoutes(m, func(h http.Handler) http.Handler { return h })
	m.Handle("GET /app.css", gateway.SecureHeaders(http.FileServerFS(web.FS)))
	m.Handle("GET /{$}", http.RedirectHandler("/status", http.StatusFound))
	return m
}

// ValidatePublicURL checks a public base URL (http or https, a host, no
// query or fragment) and returns it without a trailing slash.
func ValidatePublicURL(raw string) (string, error) {
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "", &configError{"PublicURL", "not a URL: " + err.Error()}
	case u.Scheme != "http" && u.Scheme != "https":
		return "", &configError{"PublicURL", "must start with http:// or https://"}
	case u.Host == "":
		return "", &configError{"PublicURL", "must name a host"}
	case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
		return "", &configError{"PublicURL", "must have no user, query or fragment"}
	}
	return strings.TrimRight(u.String(), "/"), nil
}

type configError struct{ field, msg string }

func (e *configError) Error() string { return "server: Config." + e.field + ": " + e.msg }

// configBody is the answer of GET /api/config: what the UI needs to know
// about the deployment.
type configBody struct {
	// PublicURL is the base of invite links ("" : the browser's address).
	PublicURL string `json:"publicUrl"`
	// Timer bounds a countdown's length in seconds.
	TimerMin int `json:"timerMin"`
	TimerMax int `json:"timerMax"`
}
