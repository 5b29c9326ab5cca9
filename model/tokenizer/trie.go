package tokenizer

// trie is a byte trie over the atomic pieces (user-defined symbols, added
// tokens), used for leftmost-longest matching before BPE.
type trie struct {
	edges map[uint64]int32 // node<<8 | byte -> child node
	term  []int32          // node -> piece id ending here, or -1
	first [256]bool        // bytes that start some piece: a cheap reject
}

func newTrie() *trie {
	return &trie{edges: make(map[uint64]int32), term: []int32{-1}}
}

func (tr *trie) insert(s string, id int32) {
	tr.first[s[0]] = true
	node := int32(0)
	for i := 0; i < len(s); i++ {
		key := uint64(node)<<8 | uint64(s[i])
		next, ok := tr.edges[key]
		if !ok {
			next = int32(len(tr.term))
			tr.term = append(tr.term, -1)
			tr.edges[key] = next
		}
		node = next
	}
	tr.term[node] = id
}

func (tr *trie) step(node int32, b byte) (int32, bool) {
	next, ok := tr.edges[uint64(node)<<8|uint64(b)]
	return next, ok
}
