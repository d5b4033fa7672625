package load

import (
	"context"
	"net/http"
	"time"
)

// Post sends one command through a runner built like Run's and returns the
// runner's counts.
func Post(ctx context.Context, cfg Config, n, parallel int, path string) (*Result, error) {
	if cfg.Conns <= 0 {
		cfg.Conns = parallel
	}
	if cfg.Retries <= 0 {
		cfg.Retries = 10
	}
	if cfg.MaxRetryWait <= 0 {
		cfg.MaxRetryWait = 5 * time.Second
	}
	r := &runner{cfg: cfg, res: &Result{ConnsLimit: int64(cfg.Conns)}}
	r.client = &http.Client{Timeout: 30 * time.Second, Transport: r.commandTransport()}
	errs := make(chan error, n)
	sem := make(chan struct{}, parallel)
	for range n {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			_, err := r.post(ctx, path, "tok", map[string]string{"value": "1"}, true, nil)
			errs <- err
		}()
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return r.res, first
}
