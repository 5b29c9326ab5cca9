package tokenizer

import (
	"errors"
	"fmt"
	"math"
)

// A SentencePiece tokenizer.model is a serialized protobuf (proto2) message
// sentencepiece.ModelProto, defined in sentencepiece_model.proto. Only the
// fields below are read; all others are skipped by wire type.
//
//	ModelProto
//	  1  pieces          repeated SentencePiece (length-delimited)
//	  2  trainer_spec    TrainerSpec
//	  3  normalizer_spec NormalizerSpec
//	SentencePiece
//	  1  piece  string
//	  2  score  float (fixed32)
//	  3  type   enum: NORMAL=1 (default) UNKNOWN=2 CONTROL=3 USER_DEFINED=4 UNUSED=5 BYTE=6
//	TrainerSpec
//	  3  model_type    enum: UNIGRAM=1 (default) BPE=2 WORD=3 CHAR=4
//	  35 byte_fallback bool (default false)
//	  40 unk_id int32 (default 0), 41 bos_id (1), 42 eos_id (2), 43 pad_id (-1)
//	NormalizerSpec
//	  1  name                     string
//	  2  precompiled_charsmap     bytes
//	  3  add_dummy_prefix         bool (default true)
//	  4  remove_extra_whitespaces bool (default true)
//	  5  escape_whitespaces       bool (default true)
//
// Wire format: each field is a varint key (field<<3 | wire type) followed by
// a varint (type 0), 8 bytes (type 1), a varint length and that many bytes
// (type 2), or 4 bytes little-endian (type 5). Proto2 defaults apply to
// absent fields, and a repeated occurrence of a message field merges into
// the earlier one.

// Wire types.
const (
	wireVarint  = 0
	wireFixed64 = 1
	wireBytes   = 2
	wireFixed32 = 5
)

// Piece types of SentencePiece.Type.
const (
	spNormal      = 1
	spUnknown     = 2
	spControl     = 3
	spUserDefined = 4
	spUnused      = 5
	spByte        = 6
)

const spModelBPE = 2

type spPiece struct {
	text  string
	score float32
	typ   uint64
}

type spModel struct {
	pieces []spPiece

	modelType              uint64
	byteFallback           bool
	unkID, bosID, eosID    int32
	normName               string
	charsmap               []byte
	addDummyPrefix         bool
	removeExtraWhitespaces bool
	escapeWhitespaces      bool
	hasTrainerSpec         bool
}

// FromSentencePiece builds a tokenizer from the bytes of a SentencePiece
// tokenizer.model. Only BPE models with identity normalization and no dummy
// prefix (Gemma's settings) are accepted; others fail with ErrUnsupported.
func FromSentencePiece(data []byte) (*Tokenizer, error) {
	m := spModel{
		modelType:              1, // UNIGRAM
		unkID:                  0,
		bosID:                  1,
		eosID:                  2,
		addDummyPrefix:         true,
		removeExtraWhitespaces: true,
		escapeWhitespaces:      true,
	}
	if err := m.parse(data); err != nil {
		return nil, fmt.Errorf("tokenizer: sentencepiece model: %w", err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("tokenizer: sentencepiece model: %w", err)
	}

	pieces := make([]string, len(m.pieces))
	types := make([]pieceType, len(m.pieces))
	negScore := make([]float64, len(m.pieces))
	var atomic []int32
	for i, p := range m.pieces {
		pieces[i] = p.text
		negScore[i] = -float64(p.score)
		switch p.typ {
		case spNormal:
			types[i] = typeNormal
		case spUnknown:
			types[i] = typeUnknown
		case spControl:
			types[i] = typeControl
		case spUserDefined:
			types[i] = typeUserDefined
			atomic = append(atomic, int32(i))
		case spUnused:
			types[i] = typeUnused
		case spByte:
			types[i] = typeByte
		}
	}
	t, err := newTokenizer(KindSentencePiece, data, pieces, types)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: sentencepiece model: %w", err)
	}
	t.byteFallback = m.byteFallback
	t.escapeSpaces = m.escapeWhitespaces
	// SentencePiece matches user-defined symbols in the normalized text.
	t.buildMatchers(atomic, make([]bool, len(atomic)))
	t.rules = &scoreRules{ids: t.ids, types: t.types, negScore: negScore}
	n := int32(len(pieces))
	if 0 <= m.bosID && m.bosID < n {
		t.bos = m.bosID
	}
	if 0 <= m.eosID && m.eosID < n {
		t.eos = m.eosID
	}
	return t, nil
}

func (m *spModel) check() error {
	if !m.hasTrainerSpec {
		return errors.New("no trainer_spec")
	}
	switch m.modelType {
	case spModelBPE:
	case 1:
		return fmt.Errorf("%w: model type UNIGRAM (only BPE is supported)", ErrUnsupported)
	case 3:
		return fmt.Errorf("%w: model type WORD (only BPE is supported)", ErrUnsupported)
	case 4:
		return fmt.Errorf("%w: model type CHAR (only BPE is supported)", ErrUnsupported)
	default:
		return fmt.Errorf("unknown model type %d", m.modelType)
	}
	if len(m.charsmap) != 0 || (m.normName != "" && m.normName != "identity") {
		return fmt.Errorf("%w: normalizer %q (only identity is supported)", ErrUnsupported, m.normName)
	}
	if m.addDummyPrefix {
		return fmt.Errorf("%w: add_dummy_prefix=true", ErrUnsupported)
	}
	if m.removeExtraWhitespaces {
		return fmt.Errorf("%w: remove_extra_whitespaces=true", ErrUnsupported)
	}
	if len(m.pieces) == 0 {
		return errors.New("no pieces")
	}
	for i, p := range m.pieces {
		if p.typ < spNormal || p.typ > spByte {
			return fmt.Errorf("piece %d: unknown type %d", i, p.typ)
		}
		if p.typ == spByte && !m.byteFallback {
			return fmt.Errorf("piece %d: byte piece %q but byte_fallback is false", i, p.text)
		}
		if math.IsNaN(float64(p.score)) {
			return fmt.Errorf("piece %d: score is NaN", i)
		}
	}
	if m.unkID < 0 || int(m.unkID) >= len(m.pieces) || m.pieces[m.unkID].typ != spUnknown {
		return fmt.Errorf("unk_id %d is not the unknown piece", m.unkID)
	}
	return nil
}

// parse reads a ModelProto.
func (m *spModel) parse(b []byte) error {
	return eachField(b, func(field int, wt int, v uint64, data []byte) error {
		switch field {
		case 1:
			if wt != wireBytes {
				return fieldTypeError("ModelProto.pieces", wt)
			}
			p := spPiece{typ: spNormal}
			if err := p.parse(data); err != nil {
				return fmt.Errorf("piece %d: %w", len(m.pieces), err)
			}
			m.pieces = append(m.pieces, p)
		case 2:
			if wt != wireBytes {
				return fieldTypeError("ModelProto.trainer_spec", wt)
			}
			m.hasTrainerSpec = true
			if err := m.parseTrainer(data); err != nil {
				return fmt.Errorf("trainer_spec: %w", err)
			}
		case 3:
			if wt != wireBytes {
				return fieldTypeError("ModelProto.normalizer_spec", wt)
			}
			if err := m.parseNormalizer(data); err != nil {
				return fmt.Errorf("normalizer_spec: %w", err)
			}
		}
		return nil
	})
}

func (p *spPiece) parse(b []byte) error {
	return eachField(b, func(field int, wt int, v uint64, data []byte) error {
		switch field {
		case 1:
			if wt != wireBytes {
				return fieldTypeError("SentencePiece.piece", wt)
			}
			p.text = string(data)
		case 2:
			if wt != wireFixed32 {
				return fieldTypeError("SentencePiece.score", wt)
			}
			p.score = math.Float32frombits(uint32(v))
		case 3:
			if wt != wireVarint {
				return fieldTypeError("SentencePiece.type", wt)
			}
			p.typ = v
		}
		return nil
	})
}

func (m *spModel) parseTrainer(b []byte) error {
	return eachField(b, func(field int, wt int, v uint64, data []byte) error {
		var dst *int32
		switch field {
		case 3:
			if wt != wireVarint {
				return fieldTypeError("TrainerSpec.model_type", wt)
			}
			m.modelType = v
		case 35:
			if wt != wireVarint {
				return fieldTypeError("TrainerSpec.byte_fallback", wt)
			}
			m.byteFallback = v != 0
		case 40:
			dst = &m.unkID
		case 41:
			dst = &m.bosID
		case 42:
			dst = &m.eosID
		}
		if dst != nil {
			if wt != wireVarint {
				return fieldTypeError(fmt.Sprintf("TrainerSpec field %d", field), wt)
			}
			*dst = int32(v) // int32 varints are sign-extended to 64 bits
		}
		return nil
	})
}

func (m *spModel) parseNormalizer(b []byte) error {
	return eachField(b, func(field int, wt int, v uint64, data []byte) error {
		switch field {
		case 1:
			if wt != wireBytes {
				return fieldTypeError("NormalizerSpec.name", wt)
			}
			m.normName = string(data)
		case 2:
			if wt != wireBytes {
				return fieldTypeError("NormalizerSpec.precompiled_charsmap", wt)
			}
			m.charsmap = data
		case 3, 4, 5:
			if wt != wireVarint {
				return fieldTypeError(fmt.Sprintf("NormalizerSpec field %d", field), wt)
			}
			switch field {
			case 3:
				m.addDummyPrefix = v != 0
			case 4:
				m.removeExtraWhitespaces = v != 0
			case 5:
				m.escapeWhitespaces = v != 0
			}
		}
		return nil
	})
}

func fieldTypeError(name string, wt int) error {
	return fmt.Errorf("%s has wire type %d", name, wt)
}

// eachField calls fn for every field of the message in b. For varint and
// fixed fields v holds the value; for length-delimited ones data holds the
// bytes (a sub-slice of b).
func eachField(b []byte, fn func(field int, wt int, v uint64, data []byte) error) error {
	for len(b) > 0 {
		key, n := varint(b)
		if n <= 0 {
			return errors.New("truncated or overlong field key")
		}
		b = b[n:]
		field, wt := key>>3, int(key&7)
		if field == 0 || field > math.MaxInt32>>3 {
			return fmt.Errorf("invalid field number %d", field)
		}
		var v uint64
		var data []byte
		switch wt {
		case wireVarint:
			v, n = varint(b)
			if n <= 0 {
				return fmt.Errorf("field %d: truncated varint", field)
			}
			b = b[n:]
		case wireFixed64:
			if len(b) < 8 {
				return fmt.Errorf("field %d: truncated fixed64", field)
			}
			for i := 7; i >= 0; i-- {
				v = v<<8 | uint64(b[i])
			}
			b = b[8:]
		case wireFixed32:
			if len(b) < 4 {
				return fmt.Errorf("field %d: truncated fixed32", field)
			}
			v = uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24
			b = b[4:]
		case wireBytes:
			l, n := varint(b)
			if n <= 0 {
				return fmt.Errorf("field %d: truncated length", field)
			}
			b = b[n:]
			if l > uint64(len(b)) {
				return fmt.Errorf("field %d: length %d exceeds the %d bytes left", field, l, len(b))
			}
			data = b[:l]
			b = b[l:]
		default:
			// Groups (3, 4) are not used by sentencepiece_model.proto.
			return fmt.Errorf("field %d: unsupported wire type %d", field, wt)
		}
		if err := fn(int(field), wt, v, data); err != nil {
			return err
		}
	}
	return nil
}

// varint decodes a base-128 varint. n is the number of bytes read, 0 if b
// ends first, -1 if it is longer than 10 bytes or overflows 64 bits.
func varint(b []byte) (v uint64, n int) {
	for i := 0; i < len(b); i++ {
		if i == 10 {
			return 0, -1
		}
		c := b[i]
		if i == 9 && c > 1 {
			return 0, -1
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}
