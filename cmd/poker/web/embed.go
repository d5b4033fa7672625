// Package web holds the planning-poker browser UI: static files with no
// build step, embedded into the server binary.
//
// Serve FS at the site root ("/app.js", "/app.css", "/favicon.svg") and
// answer both "/" and "/r/{room}" with index.html; app.js routes on
// location.pathname. Serve the pages with gateway.SecureHeaders: the UI
// uses no inline script or style, so a strict same-origin CSP works.
package web

import "embed"

// FS contains index.html, app.js, app.css, favicon.svg and status.js (the
// operator status page's charts).
//
//go:embed index.html app.js app.css favicon.svg status.js
var FS embed.FS
