package bank

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/reactorgo/reactor"
	"github.com/reactorgo/reactor/gateway"
	"github.com/reactorgo/reactor/sqlreactor"
)

var httpErrors = (&gateway.ErrorMapper{}).
	Map(ErrUnknownAccount, http.StatusNotFound, "unknown_account", "").
	Map(ErrAccountExists, http.StatusConflict, "account_exists", "").
	Map(ErrOverdraft, http.StatusConflict, "insufficient_funds", "").
	Map(ErrBadAmount, http.StatusBadRequest, "bad_amount", "").
	Map(ErrBadRequest, http.StatusBadRequest, "bad_request", "").
	Map(ErrKeyReused, http.StatusUnprocessableEntity, "idempotency_key_reused", "").
	Map(sqlreactor.ErrCommit, http.StatusServiceUnavailable, "commit_failed", "the database did not commit; retry with the same key")

// Handler serves the bank's HTTP API:
//
//	POST /accounts                      {"id"}                      → 201 Account
//	POST /accounts/{id}/deposits        {"key","amount"}            → Receipt
//	POST /transfers                     {"key","from","to","amount"} → Receipt
//	GET  /accounts/{id}                                             → Account (coherent cache)
//	GET  /accounts/{id}/statement?limit=N                           → []Entry (read-only pool)
//
// The key may also come in an Idempotency-Key header. Errors are JSON
// {"error","message"}: 400 bad input, 404 unknown account, 409 overdraft
// or existing account, 422 key reused with another body, 503 busy (with
// Retry-After) or commit failed.
func Handler(db *sqlreactor.DB, ref reactor.Ref, timeout time.Duration) http.Handler {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	mux := http.NewServeMux()
	call := func(w http.ResponseWriter, r *http.Request, status int, fn func(ctx context.Context) (any, error)) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		v, err := fn(ctx)
		if err != nil {
			httpErrors.WriteError(w, err)
			return
		}
		gateway.JSON(w, status, v)
	}
	mux.HandleFunc("POST /accounts", func(w http.ResponseWriter, r *http.Request) {
		var req OpenAccount
		if err := gateway.DecodeJSON(w, r, &req, 0); err != nil {
			gateway.WriteError(w, err)
			return
		}
		call(w, r, http.StatusCreated, func(ctx context.Context) (any, error) { return Open.Call(ctx, ref, req) })
	})
	mux.HandleFunc("POST /accounts/{id}/deposits", func(w http.ResponseWriter, r *http.Request) {
		var req Deposit
		if err := gateway.DecodeJSON(w, r, &req, 0); err != nil {
			gateway.WriteError(w, err)
			return
		}
		req.Account = r.PathValue("id")
		if k := r.Header.Get("Idempotency-Key"); k != "" && req.Key == "" {
			req.Key = k
		}
		call(w, r, http.StatusOK, func(ctx context.Context) (any, error) { return DepositMoney.Call(ctx, ref, req) })
	})
	mux.HandleFunc("POST /transfers", func(w http.ResponseWriter, r *http.Request) {
		var req Transfer
		if err := gateway.DecodeJSON(w, r, &req, 0); err != nil {
			gateway.WriteError(w, err)
			return
		}
		if k := r.Header.Get("Idempotency-Key"); k != "" && req.Key == "" {
			req.Key = k
		}
		call(w, r, http.StatusOK, func(ctx context.Context) (any, error) { return TransferMoney.Call(ctx, ref, req) })
	})
	mux.HandleFunc("GET /accounts/{id}", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		call(w, r, http.StatusOK, func(ctx context.Context) (any, error) { return Balance.Call(ctx, ref, id) })
	})
	mux.HandleFunc("GET /accounts/{id}/statement", func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		call(w, r, http.StatusOK, func(ctx context.Context) (any, error) {
			es, err := Statement(ctx, db, id, limit)
			if es == nil {
				es = []Entry{}
			}
			return es, err
		})
	})
	return mux
}
