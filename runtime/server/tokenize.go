package server

import (
	"net/http"
)

// POST /tokenize and /detokenize, as llama-server has them:
//
//	{"content": "text", "add_special": false} -> {"tokens": [ids]}
//	{"tokens": [ids]}                          -> {"content": "text"}
//
// add_special puts BOS first.

type tokenizeRequest struct {
	Content    *string `json:"content"`
	AddSpecial bool    `json:"add_special"`
}

type detokenizeRequest struct {
	Tokens *[]int `json:"tokens"`
}

func (s *Server) handleTokenize(w http.ResponseWriter, r *http.Request) *apiError {
	body, e := s.readBody(w, r)
	if e != nil {
		return e
	}
	var req tokenizeRequest
	if e := decodeJSON(body, &req); e != nil {
		return e
	}
	if req.Content == nil {
		return invalid("content", "content is required")
	}
	// Tokenizing a large text is costly: admitted and run in a turn like a
	// generation's prompt. There is no context to bound it by bytes.
	var ids []int
	if e := s.prepare(r, 0, "content", func() { ids = s.backend.Tokenize(*req.Content, req.AddSpecial) }); e != nil {
		return e
	}
	s.slots.leave()
	if ids == nil {
		ids = []int{}
	}
	writeJSON(w, http.StatusOK, map[string][]int{"tokens": ids})
	return nil
}

func (s *Server) handleDetokenize(w http.ResponseWriter, r *http.Request) *apiError {
	body, e := s.readBody(w, r)
	if e != nil {
		return e
	}
	var req detokenizeRequest
	if e := decodeJSON(body, &req); e != nil {
		return e
	}
	if req.Tokens == nil {
		return invalid("tokens", "tokens is required")
	}
	for _, id := range *req.Tokens {
		if id < 0 || id >= s.backend.VocabSize() {
			return invalid("tokens", "token id %d outside the vocabulary of %d", id, s.backend.VocabSize())
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"content": s.backend.Detokenize(*req.Tokens)})
	return nil
}
