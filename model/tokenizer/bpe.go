package tokenizer

import "unicode/utf8"

// mergeRules is what differs between the two BPE flavours: which adjacent
// pairs may merge, into which piece, and in what order.
type mergeRules interface {
	// pair returns the piece that merging l and r (adjacent in text) forms
	// and its priority; lower priorities merge first.
	pair(text string, l, r *symbol) (id int32, prio float64, ok bool)
}

// scoreRules is SentencePiece BPE: two symbols merge when their
// concatenation is a normal, user-defined or unused piece; the piece with
// the highest score merges first.
type scoreRules struct {
	ids      map[string]int32
	types    []pieceType
	negScore []float64 // -score, so that lower is better as for ranks
}

func (r *scoreRules) pair(text string, ls, rs *symbol) (int32, float64, bool) {
	id, ok := r.ids[text[ls.start:rs.end]]
	if !ok {
		return 0, 0, false
	}
	switch r.types[id] {
	case typeNormal, typeUserDefined, typeUnused:
		return id, r.negScore[id], true
	}
	return 0, 0, false
}

// rankRules is Hugging Face BPE: a pair merges only if it is listed in
// merges; the earliest listed (lowest rank) merges first.
//
// A merge "a b" is found through the merged piece a+b and the length of a
// rather than through the ids of a and b: the pair is the same (vocabulary
// strings are unique). Loading then needs one full-vocabulary lookup per
// merge instead of three, and no hash map of 580604 pairs: for Gemma those
// map operations, mostly cache misses, were most of the load time.
type rankRules struct {
	ids map[string]int32
	// The merges forming piece id are splits[first[id]:first[id+1]], in
	// listing order.
	first  []int32
	splits []rankSplit
}

type rankSplit struct {
	leftLen int32 // bytes of the left part
	rank    int32
}

func (r *rankRules) pair(text string, ls, rs *symbol) (int32, float64, bool) {
	if ls.id < 0 || rs.id < 0 {
		return 0, 0, false
	}
	id, ok := r.ids[text[ls.start:rs.end]]
	if !ok {
		return 0, 0, false
	}
	leftLen := ls.end - ls.start
	rank := int32(-1)
	for _, s := range r.splits[r.first[id]:r.first[id+1]] {
		if s.leftLen == leftLen {
			rank = s.rank // a pair listed twice keeps its last rank
		}
	}
	return id, float64(rank), rank >= 0
}

// symbol is a node of the doubly linked list BPE works on: a byte range of
// the normalized segment. A symbol merged into its left neighbour is left
// empty (start == end).
type symbol struct {
	start, end int32
	prev, next int32 // indices into the symbol slice, -1 at the ends
	id         int32 // piece of text[start:end], -1 if not in the vocabulary
}

// candidate is a possible merge in the priority queue. It is stale once
// either symbol has changed; end (the right symbol's end when queued)
// detects that.
type candidate struct {
	prio        float64
	left, right int32
	end         int32
	id          int32
}

// encoder holds the scratch space of one Encode call.
type encoder struct {
	t       *Tokenizer
	syms    []symbol
	queue   []candidate
	rev     map[string][2]string // SentencePiece: unused piece -> the pair that formed it
	lastUnk bool
}

// bpe appends the ids of one normalized segment (valid UTF-8, no atomic
// pieces inside) to out. Cost is O(n log n) in the segment's length.
func (e *encoder) bpe(text string, out []int) []int {
	t := e.t
	if text == "" {
		return out
	}
	if t.ignoreMerges {
		if id, ok := t.ids[text]; ok {
			return append(out, int(id))
		}
	}
	syms := e.syms[:0]
	for i := 0; i < len(text); {
		_, size := utf8.DecodeRuneInString(text[i:])
		id, ok := t.ids[text[i:i+size]]
		if !ok {
			id = -1
		}
		n := int32(len(syms))
		syms = append(syms, symbol{start: int32(i), end: int32(i + size), prev: n - 1, next: n + 1, id: id})
		i += size
	}
	syms[len(syms)-1].next = -1
	e.syms = syms
	e.queue = e.queue[:0]
	clear(e.rev)

	for i := 1; i < len(syms); i++ {
		e.push(text, int32(i-1), int32(i))
	}
	for len(e.queue) > 0 {
		c := e.pop()
		l, r := &syms[c.left], &syms[c.right]
		if l.start == l.end || r.start == r.end || l.next != c.right || r.end != c.end {
			continue // stale
		}
		l.end = r.end
		l.id = c.id
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = c.left
		}
		r.end = r.start
		e.push(text, l.prev, c.left)
		e.push(text, c.left, l.next)
	}

	e.lastUnk = false
	// Symbol 0 is never merged away: merges keep the left index.
	for i := int32(0); i >= 0; i = syms[i].next {
		s := &syms[i]
		out = e.emit(text[s.start:s.end], s.id, out)
	}
	return out
}

func (e *encoder) push(text string, left, right int32) {
	if left < 0 || right < 0 {
		return
	}
	l, r := &e.syms[left], &e.syms[right]
	id, prio, ok := e.t.rules.pair(text, l, r)
	if !ok {
		return
	}
	if e.t.types[id] == typeUnused {
		// SentencePiece never outputs unused pieces: it remembers the last
		// pair that could form one and splits it back on output.
		if e.rev == nil {
			e.rev = make(map[string][2]string)
		}
		e.rev[text[l.start:r.end]] = [2]string{text[l.start:l.end], text[r.start:r.end]}
	}
	e.queue = append(e.queue, candidate{prio: prio, left: left, right: right, end: r.end, id: id})
	// Sift up.
	q := e.queue
	for i := len(q) - 1; i > 0; {
		p := (i - 1) / 2
		if !q[i].before(&q[p]) {
			break
		}
		q[i], q[p] = q[p], q[i]
		i = p
	}
}

func (e *encoder) pop() candidate {
	q := e.queue
	top := q[0]
	n := len(q) - 1
	q[0] = q[n]
	q = q[:n]
	for i := 0; ; {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q[r].before(&q[l]) {
			m = r
		}
		if !q[m].before(&q[i]) {
			break
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
	e.queue = q
	return top
}

// before orders the queue: lowest priority value first, then leftmost.
func (c *candidate) before(d *candidate) bool {
	return c.prio < d.prio || (c.prio == d.prio && c.left < d.left)
}

// emit appends the ids for one final symbol: unused pieces are split back,
// pieces missing from the vocabulary fall back to bytes (or <unk>).
func (e *encoder) emit(s string, id int32, out []int) []int {
	t := e.t
	if id >= 0 && t.types[id] == typeUnused {
		if p, ok := e.rev[s]; ok {
			out = e.emit(p[0], t.lookup(p[0]), out)
			return e.emit(p[1], t.lookup(p[1]), out)
		}
	}
	if id >= 0 {
		e.lastUnk = false
		return append(out, int(id))
	}
	if t.byteFallback && (!t.bytesAllOrNothing || t.hasBytes(s)) {
		// SentencePiece uses <unk> for a byte without a piece; Hugging Face
		// uses one <unk> for the whole symbol (bytesAllOrNothing).
		e.lastUnk = false
		for i := 0; i < len(s); i++ {
			if b := t.byteIDs[s[i]]; b >= 0 {
				out = append(out, int(b))
			} else {
				out = append(out, int(t.unk))
			}
		}
		return out
	}
	if t.fuseUnk && e.lastUnk {
		return out
	}
	e.lastUnk = true
	return append(out, int(t.unk))
}

func (t *Tokenizer) lookup(s string) int32 {
	if id, ok := t.ids[s]; ok {
		return id
	}
	return -1
}

func (t *Tokenizer) hasBytes(s string) bool {
	for i := 0; i < len(s); i++ {
		if t.byteIDs[s[i]] < 0 {
			return false
		}
	}
	return true
}
