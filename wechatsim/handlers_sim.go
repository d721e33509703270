package wechatsim

import (
	"errors"
	"net/http"
)

// The simulator-only endpoints under /sim/ answer like an ordinary admin API:
// HTTP status codes and {"error": "..."} bodies, not WeChat errcodes.

// handleSimAccounts serves POST /sim/accounts (upsert; 201 when created, 200
// when updated, the account without its secret) and GET /sim/accounts (list).
func (s *Simulator) handleSimAccounts(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		writeJSON(w, http.StatusOK, s.Accounts())
	case http.MethodPost:
		var in Account
		if err := decodeJSONBody(w, r, &in); err != nil {
			writeSimError(w, http.StatusBadRequest, "wechatsim: account must be a JSON object: "+err.Error())
			return
		}
		out, created, err := s.upsertAccount(in)
		if err != nil {
			writeSimError(w, http.StatusBadRequest, err.Error())
			return
		}
		status := http.StatusOK
		if created {
			status = http.StatusCreated
		}
		writeJSON(w, status, out)
	default:
		methodNotAllowed(w, "GET, POST")
	}
}

// handleSimStats serves GET /sim/stats, optionally ?appid=X.
func (s *Simulator) handleSimStats(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	writeJSON(w, http.StatusOK, s.Stats(r.URL.Query().Get("appid")))
}

// handleSimFaults serves POST /sim/faults (set or, with "clear", remove the
// faults of one appid or the global ones), GET /sim/faults (the current
// table) and DELETE /sim/faults (everything, or ?appid=X only).
func (s *Simulator) handleSimFaults(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
	case http.MethodPost:
		var f Faults
		if err := decodeJSONBody(w, r, &f); err != nil {
			msg := err.Error()
			if !errors.Is(err, ErrInvalidFaults) {
				msg = "wechatsim: faults must be a JSON object: " + msg
			}
			writeSimError(w, http.StatusBadRequest, msg)
			return
		}
		if err := s.SetFaults(f); err != nil {
			writeSimError(w, http.StatusBadRequest, err.Error())
			return
		}
	case http.MethodDelete:
		if appid := r.URL.Query().Get("appid"); appid != "" {
			_ = s.SetFaults(Faults{AppID: appid, Clear: true})
		} else {
			s.ClearAllFaults()
		}
	default:
		methodNotAllowed(w, "GET, POST, DELETE")
		return
	}
	writeJSON(w, http.StatusOK, s.Faults())
}

// handleSimReset serves POST /sim/reset: forget all accounts, tokens, faults
// and counters.
func (s *Simulator) handleSimReset(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	s.Reset()
	w.WriteHeader(http.StatusNoContent)
}

func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeSimError(w, http.StatusMethodNotAllowed, "wechatsim: method not allowed")
}
