package runtime

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// JSONSchema is a compiled subset of JSON Schema that constrained decoding
// (JSONConstraint) can enforce token by token. The subset:
//
//   - "type": one of object, array, string, number, integer, boolean, null, or
//     an array of them; absent means any type;
//   - "properties" (at most 64) and "required": an object has only the listed
//     properties, each at most once, and closes only when every required one
//     is given; without "properties" any keys are allowed;
//   - "items": the schema of every array element;
//   - "enum" (at most 64 values): the value is one of them, written as
//     encoding/json writes it (compact, keys sorted);
//   - annotations that constrain nothing are ignored: title, description,
//     $schema, $id, $comment, default, examples, and additionalProperties
//     false (listed properties are the only ones allowed anyway).
//
// Any other keyword is refused, so a schema is never silently weakened.
type JSONSchema struct{ root *schemaNode }

// jsonType is a set of JSON value types.
type jsonType uint8

const (
	typeObject jsonType = 1 << iota
	typeArray
	typeString
	typeNumber
	typeInteger
	typeBoolean
	typeNull
	typeAny = typeObject | typeArray | typeString | typeNumber | typeInteger | typeBoolean | typeNull
)

var jsonTypeNames = map[string]jsonType{
	"object": typeObject, "array": typeArray, "string": typeString, "number": typeNumber,
	"integer": typeInteger, "boolean": typeBoolean, "null": typeNull,
}

// schemaNode is one (sub)schema. A nil *schemaNode allows any value.
type schemaNode struct {
	types     jsonType
	closed    bool          // "properties" was given: no other keys
	props     []string      // property names, as they appear between quotes
	propNodes []*schemaNode // their schemas
	required  uint64        // bit i: props[i] is required
	items     *schemaNode   // array elements; nil: any
	enum      [][]byte      // allowed values' encodings; nil: no enum
}

// Limits that keep a compiled schema small and a constraint's state a
// fixed-size value.
const (
	maxSchemaProps = 64
	maxSchemaEnum  = 64
	maxSchemaDepth = 32
)

// JSONObjectSchema is what OpenAI's response_format {"type": "json_object"}
// asks for: any JSON object.
var JSONObjectSchema = &JSONSchema{root: &schemaNode{types: typeObject}}

// CompileJSONSchema compiles a JSON Schema document in the subset JSONSchema
// describes.
func CompileJSONSchema(data []byte) (*JSONSchema, error) {
	n, err := compileSchema(data, "schema", 0)
	if err != nil {
		return nil, err
	}
	return &JSONSchema{root: n}, nil
}

var ignoredKeywords = map[string]bool{
	"title": true, "description": true, "$schema": true, "$id": true, "$comment": true,
	"default": true, "examples": true,
}

func compileSchema(data []byte, path string, depth int) (*schemaNode, error) {
	if depth > maxSchemaDepth {
		return nil, fmt.Errorf("%s: nested deeper than %d", path, maxSchemaDepth)
	}
	var kw map[string]json.RawMessage
	if err := json.Unmarshal(data, &kw); err != nil || kw == nil {
		return nil, fmt.Errorf("%s: a schema must be a JSON object", path)
	}
	n := &schemaNode{types: typeAny}
	keys := make([]string, 0, len(kw))
	for k := range kw {
		keys = append(keys, k)
	}
	sort.Strings(keys) // deterministic errors
	var required []string
	for _, k := range keys {
		v := kw[k]
		switch k {
		case "type":
			t, err := parseSchemaType(v)
			if err != nil {
				return nil, fmt.Errorf("%s.type: %v", path, err)
			}
			n.types = t
		case "properties":
			if err := n.compileProperties(v, path, depth); err != nil {
				return nil, err
			}
		case "required":
			if err := json.Unmarshal(v, &required); err != nil {
				return nil, fmt.Errorf("%s.required: must be an array of strings", path)
			}
		case "items":
			items, err := compileSchema(v, path+".items", depth+1)
			if err != nil {
				return nil, err
			}
			n.items = items
		case "enum":
			var values []json.RawMessage
			if err := json.Unmarshal(v, &values); err != nil || len(values) == 0 || len(values) > maxSchemaEnum {
				return nil, fmt.Errorf("%s.enum: must be an array of 1 to %d values", path, maxSchemaEnum)
			}
			for _, val := range values {
				var x any
				if err := json.Unmarshal(val, &x); err != nil {
					return nil, fmt.Errorf("%s.enum: %v", path, err)
				}
				enc, _ := json.Marshal(x) // canonical: compact, keys sorted
				n.enum = append(n.enum, enc)
			}
		case "additionalProperties":
			if !bytes.Equal(bytes.TrimSpace(v), []byte("false")) {
				return nil, fmt.Errorf("%s.additionalProperties: only false is supported", path)
			}
		default:
			if !ignoredKeywords[k] {
				return nil, fmt.Errorf("%s: unsupported JSON Schema keyword %q (supported: type, properties, required, items, enum)", path, k)
			}
		}
	}
	for _, r := range required {
		i := -1
		for j, p := range n.props {
			if p == r {
				i = j
			}
		}
		if i < 0 {
			return nil, fmt.Errorf("%s.required: %q is not in properties", path, r)
		}
		n.required |= 1 << i
	}
	if n.types&typeNumber != 0 {
		n.types |= typeInteger // every integer is a number
	}
	return n, nil
}

func parseSchemaType(v json.RawMessage) (jsonType, error) {
	var names []string
	var one string
	if err := json.Unmarshal(v, &one); err == nil {
		names = []string{one}
	} else if err := json.Unmarshal(v, &names); err != nil || len(names) == 0 {
		return 0, fmt.Errorf("must be a type name or a non-empty array of them")
	}
	var t jsonType
	for _, name := range names {
		bit, ok := jsonTypeNames[name]
		if !ok {
			return 0, fmt.Errorf("unknown type %q", name)
		}
		t |= bit
	}
	return t, nil
}

func (n *schemaNode) compileProperties(v json.RawMessage, path string, depth int) error {
	var props map[string]json.RawMessage
	if err := json.Unmarshal(v, &props); err != nil || props == nil {
		return fmt.Errorf("%s.properties: must be an object", path)
	}
	if len(props) > maxSchemaProps {
		return fmt.Errorf("%s.properties: more than %d properties", path, maxSchemaProps)
	}
	n.closed = true
	for name := range props {
		n.props = append(n.props, name)
	}
	sort.Strings(n.props)
	for _, name := range n.props {
		// Names are matched byte by byte as the model writes them, so they
		// must read the same without escapes.
		if strings.ContainsAny(name, "\"\\") || strings.IndexFunc(name, func(r rune) bool { return r < 0x20 }) >= 0 {
			return fmt.Errorf("%s.properties: name %q needs escaping, which is not supported", path, name)
		}
		child, err := compileSchema(props[name], path+".properties."+name, depth+1)
		if err != nil {
			return err
		}
		n.propNodes = append(n.propNodes, child)
	}
	return nil
}
