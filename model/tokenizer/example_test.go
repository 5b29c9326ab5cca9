package tokenizer_test

import (
	"fmt"
	"log"
	"strings"

	"github.com/cafeq/cafeq/model/tokenizer"
)

func Example() {
	tok, err := tokenizer.Load("../../testdata/gemma2-tiny")
	if err != nil {
		log.Fatal(err)
	}
	// Encode never adds BOS; a prompt starts with it.
	ids := append([]int{tok.BOS()}, tok.Encode("<start_of_turn>user\nOnce upon a time")...)
	var pieces []string
	for _, id := range ids {
		pieces = append(pieces, fmt.Sprintf("%d:%q", id, tok.Piece(id)))
	}
	fmt.Println(strings.Join(pieces, " "))
	fmt.Printf("%q\n", tok.Decode(ids))

	// Streaming: the three byte pieces of "タ" produce output only together.
	d := tok.NewStreamDecoder()
	for _, id := range tok.Encode("タワー") {
		fmt.Printf("%q ", d.Add(id))
	}
	fmt.Printf("%q\n", d.Flush())
	// Output:
	// 2:"<bos>" 4:"<start_of_turn>" 465:"u" 458:"s" 263:"er" 16:"<0x0A>" 400:"Once" 314:"▁u" 386:"pon" 264:"▁a" 262:"▁t" 376:"ime"
	// "<start_of_turn>user\nOnce upon a time"
	// "" "" "タ" "" "" "ワ" "" "" "ー" ""
}
