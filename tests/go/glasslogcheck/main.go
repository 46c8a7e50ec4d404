// Command glasslogcheck verifies glasslog checkpoints, proofs and tiles with
// Go's checksum-database client code (golang.org/x/mod/sumdb/note and
// golang.org/x/mod/sumdb/tlog), which the glasslog team did not write.
//
// Usage:
//
//	glasslogcheck cases.json > results.json
//
// It reads one JSON document (see the Input type), checks every case
// independently and writes one JSON document (see the Output type) with a
// result per case: ok=true when Go accepts the case, ok=false with Go's
// error otherwise. Deciding whether a case *should* pass is the caller's job
// (tests/test_go_interop.py); this program only reports what Go says. It
// exits non-zero only when the input itself cannot be read.
//
// All hashes and proof elements are standard base64 of 32 bytes; entries and
// tile data are standard base64 of raw bytes.
//
// Build offline against Debian's golang-golang-x-mod-dev, either in GOPATH
// mode:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o glasslogcheck .
//
// or in module mode with the go.mod beside this file (its replace directive
// points at /usr/share/gocode/src/golang.org/x/mod):
//
//	GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local go build -o glasslogcheck .
//
// The program uses only the standard library of Go 1.17+ and x/mod.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Input is the document read from the file named on the command line.
type Input struct {
	// VerifierKey is the default verifier key (name+keyhash+base64), used by
	// every case that does not name its own.
	VerifierKey string `json:"verifier_key"`
	// Origin is the default expected checkpoint origin (first line).
	Origin string `json:"origin"`

	Checkpoints []CheckpointCase  `json:"checkpoints"`
	Inclusion   []InclusionCase   `json:"inclusion"`
	Consistency []ConsistencyCase `json:"consistency"`
	Tiles       []TileCase        `json:"tiles"`
}

// CheckpointCase is a signed checkpoint note to open with note.Open.
// If TreeSize / Root are given, the checkpoint must state exactly them.
type CheckpointCase struct {
	ID          string  `json:"id"`
	Note        string  `json:"note"`
	VerifierKey string  `json:"verifier_key,omitempty"`
	Origin      string  `json:"origin,omitempty"`
	TreeSize    *int64  `json:"tree_size,omitempty"`
	Root        *string `json:"root,omitempty"`
}

// InclusionCase is checked with tlog.CheckRecord(proof, tree_size, root, index, leaf_hash).
// If Entry is given, tlog.RecordHash(entry) must equal LeafHash.
// If Checkpoint is given, it is opened with note.Open and must state
// TreeSize and Root (the root is then the one a signed checkpoint vouches for).
type InclusionCase struct {
	ID          string   `json:"id"`
	Index       int64    `json:"index"`
	TreeSize    int64    `json:"tree_size"`
	LeafHash    string   `json:"leaf_hash"`
	Entry       *string  `json:"entry,omitempty"`
	Proof       []string `json:"proof"`
	Root        string   `json:"root"`
	Checkpoint  string   `json:"checkpoint,omitempty"`
	VerifierKey string   `json:"verifier_key,omitempty"`
}

// ConsistencyCase is checked with tlog.CheckTree(proof, new_size, new_root, old_size, old_root).
// OldCheckpoint / NewCheckpoint, if given, are opened and must state the
// corresponding size and root.
type ConsistencyCase struct {
	ID            string   `json:"id"`
	OldSize       int64    `json:"old_size"`
	NewSize       int64    `json:"new_size"`
	OldRoot       string   `json:"old_root"`
	NewRoot       string   `json:"new_root"`
	Proof         []string `json:"proof"`
	OldCheckpoint string   `json:"old_checkpoint,omitempty"`
	NewCheckpoint string   `json:"new_checkpoint,omitempty"`
	VerifierKey   string   `json:"verifier_key,omitempty"`
}

// Tile is one C2SP hash tile tile/<level>/<index>[.p/<width>] (height 8).
type Tile struct {
	Level int    `json:"level"`
	Index int64  `json:"index"`
	Width int    `json:"width"`
	Data  string `json:"data"`
}

// TileCase gives the tiles of a tree of TreeSize leaves with root Root.
// Go reads hashes only through tlog.TileHashReader, which authenticates
// every tile it uses against Root. It then recomputes the tree hash
// (tlog.TreeHash), and for each of RecordIndexes reads the leaf hash and
// builds an inclusion proof (tlog.ProveRecord) and checks it
// (tlog.CheckRecord); for each of OldSizes it computes the old root
// (tlog.TreeHash) and builds a consistency proof (tlog.ProveTree) and checks
// it (tlog.CheckTree). The leaf hashes, proofs and old roots Go derived are
// returned in the result so the caller can compare them with its own.
type TileCase struct {
	ID            string  `json:"id"`
	TreeSize      int64   `json:"tree_size"`
	Root          string  `json:"root"`
	Tiles         []Tile  `json:"tiles"`
	RecordIndexes []int64 `json:"record_indexes"`
	OldSizes      []int64 `json:"old_sizes"`
}

// Result is Go's verdict on one case.
type Result struct {
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	// Data holds values Go derived (tile cases only).
	Data *TileData `json:"data,omitempty"`
}

// TileData is what Go derived from the tiles of a TileCase.
type TileData struct {
	TreeHash   string              `json:"tree_hash"`
	LeafHashes map[string]string   `json:"leaf_hashes"`
	Inclusion  map[string][]string `json:"inclusion"`
	OldRoots   map[string]string   `json:"old_roots"`
	Tree       map[string][]string `json:"consistency"`
}

// Output is the document written to standard output.
type Output struct {
	GoVersion string   `json:"go_version"`
	Results   []Result `json:"results"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: glasslogcheck cases.json")
		os.Exit(2)
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "glasslogcheck:", err)
		os.Exit(2)
	}
	var in Input
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		fmt.Fprintln(os.Stderr, "glasslogcheck: bad input:", err)
		os.Exit(2)
	}

	out := Output{GoVersion: runtime.Version(), Results: []Result{}}
	add := func(id, kind string, data *TileData, err error) {
		r := Result{ID: id, Kind: kind, OK: err == nil, Data: data}
		if err != nil {
			r.Error = err.Error()
		}
		out.Results = append(out.Results, r)
	}
	for _, c := range in.Checkpoints {
		add(c.ID, "checkpoint", nil, checkCheckpointCase(&in, c))
	}
	for _, c := range in.Inclusion {
		add(c.ID, "inclusion", nil, checkInclusion(&in, c))
	}
	for _, c := range in.Consistency {
		add(c.ID, "consistency", nil, checkConsistency(&in, c))
	}
	for _, c := range in.Tiles {
		data, err := checkTiles(c)
		add(c.ID, "tiles", data, err)
	}

	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		fmt.Fprintln(os.Stderr, "glasslogcheck:", err)
		os.Exit(2)
	}
}

// ---------------------------------------------------------------- checkpoints

// checkpoint is a parsed C2SP tlog-checkpoint body.
type checkpoint struct {
	Origin   string
	TreeSize int64
	Root     tlog.Hash
}

// openCheckpoint verifies a signed note with note.Open against one verifier
// key and parses its text as a C2SP tlog-checkpoint with the given origin.
func openCheckpoint(msg, vkey, origin string) (checkpoint, error) {
	var cp checkpoint
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return cp, fmt.Errorf("note.NewVerifier: %w", err)
	}
	n, err := note.Open([]byte(msg), note.VerifierList(v))
	if err != nil {
		return cp, fmt.Errorf("note.Open: %w", err)
	}
	if len(n.Sigs) == 0 {
		return cp, errors.New("note.Open returned no verified signature")
	}
	// C2SP tlog-checkpoint: origin, decimal size, base64 root, then optional
	// extension lines; the text ends with a newline.
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return cp, fmt.Errorf("checkpoint text %q: want origin, size and root lines", n.Text)
	}
	cp.Origin = lines[0]
	if cp.Origin != origin {
		return cp, fmt.Errorf("checkpoint origin %q, want %q", cp.Origin, origin)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return cp, fmt.Errorf("checkpoint tree size %q is not a canonical decimal", lines[1])
	}
	cp.TreeSize = size
	cp.Root, err = decodeHash(lines[2])
	if err != nil {
		return cp, fmt.Errorf("checkpoint root: %w", err)
	}
	if base64.StdEncoding.EncodeToString(cp.Root[:]) != lines[2] {
		return cp, fmt.Errorf("checkpoint root %q is not canonical base64", lines[2])
	}
	for _, ext := range lines[3 : len(lines)-1] {
		if ext == "" {
			return cp, errors.New("checkpoint has an empty extension line")
		}
	}
	return cp, nil
}

func pick(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

func checkCheckpointCase(in *Input, c CheckpointCase) error {
	cp, err := openCheckpoint(c.Note, pick(c.VerifierKey, in.VerifierKey), pick(c.Origin, in.Origin))
	if err != nil {
		return err
	}
	if c.TreeSize != nil && cp.TreeSize != *c.TreeSize {
		return fmt.Errorf("checkpoint tree size %d, want %d", cp.TreeSize, *c.TreeSize)
	}
	if c.Root != nil {
		want, err := decodeHash(*c.Root)
		if err != nil {
			return fmt.Errorf("expected root: %w", err)
		}
		if cp.Root != want {
			return fmt.Errorf("checkpoint root %v, want %v", cp.Root, want)
		}
	}
	return nil
}

// checkpointStates opens a checkpoint and requires it to state size and root.
func checkpointStates(in *Input, msg, vkey string, size int64, root tlog.Hash) error {
	cp, err := openCheckpoint(msg, pick(vkey, in.VerifierKey), in.Origin)
	if err != nil {
		return err
	}
	if cp.TreeSize != size || cp.Root != root {
		return fmt.Errorf("checkpoint states size %d root %v, the proof is for size %d root %v", cp.TreeSize, cp.Root, size, root)
	}
	return nil
}

// ------------------------------------------------------------------- proofs

func decodeHash(s string) (tlog.Hash, error) {
	var h tlog.Hash
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return h, fmt.Errorf("hash %q: %w", s, err)
	}
	if len(b) != tlog.HashSize {
		return h, fmt.Errorf("hash %q is %d bytes, want %d", s, len(b), tlog.HashSize)
	}
	copy(h[:], b)
	return h, nil
}

func decodeProof(list []string) ([]tlog.Hash, error) {
	p := make([]tlog.Hash, 0, len(list))
	for i, s := range list {
		h, err := decodeHash(s)
		if err != nil {
			return nil, fmt.Errorf("proof[%d]: %w", i, err)
		}
		p = append(p, h)
	}
	return p, nil
}

func encodeProof(p []tlog.Hash) []string {
	out := make([]string, len(p))
	for i, h := range p {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out
}

func checkInclusion(in *Input, c InclusionCase) error {
	leaf, err := decodeHash(c.LeafHash)
	if err != nil {
		return fmt.Errorf("leaf_hash: %w", err)
	}
	root, err := decodeHash(c.Root)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	proof, err := decodeProof(c.Proof)
	if err != nil {
		return err
	}
	if c.Entry != nil {
		data, err := base64.StdEncoding.DecodeString(*c.Entry)
		if err != nil {
			return fmt.Errorf("entry: %w", err)
		}
		if got := tlog.RecordHash(data); got != leaf {
			return fmt.Errorf("tlog.RecordHash(entry) = %v, leaf_hash is %v", got, leaf)
		}
	}
	if c.Checkpoint != "" {
		if err := checkpointStates(in, c.Checkpoint, c.VerifierKey, c.TreeSize, root); err != nil {
			return err
		}
	}
	if err := tlog.CheckRecord(tlog.RecordProof(proof), c.TreeSize, root, c.Index, leaf); err != nil {
		return fmt.Errorf("tlog.CheckRecord: %w", err)
	}
	return nil
}

func checkConsistency(in *Input, c ConsistencyCase) error {
	oldRoot, err := decodeHash(c.OldRoot)
	if err != nil {
		return fmt.Errorf("old_root: %w", err)
	}
	newRoot, err := decodeHash(c.NewRoot)
	if err != nil {
		return fmt.Errorf("new_root: %w", err)
	}
	proof, err := decodeProof(c.Proof)
	if err != nil {
		return err
	}
	if c.OldCheckpoint != "" {
		if err := checkpointStates(in, c.OldCheckpoint, c.VerifierKey, c.OldSize, oldRoot); err != nil {
			return fmt.Errorf("old checkpoint: %w", err)
		}
	}
	if c.NewCheckpoint != "" {
		if err := checkpointStates(in, c.NewCheckpoint, c.VerifierKey, c.NewSize, newRoot); err != nil {
			return fmt.Errorf("new checkpoint: %w", err)
		}
	}
	if err := tlog.CheckTree(tlog.TreeProof(proof), c.NewSize, newRoot, c.OldSize, oldRoot); err != nil {
		return fmt.Errorf("tlog.CheckTree: %w", err)
	}
	return nil
}

// -------------------------------------------------------------------- tiles

const tileHeight = 8 // C2SP tlog-tiles

type tileKey struct {
	L int
	N int64
	W int
}

// mapTileReader serves tiles from the input; tlog.TileHashReader
// authenticates whatever it returns.
type mapTileReader struct {
	tiles map[tileKey][]byte
}

func (r *mapTileReader) Height() int { return tileHeight }

func (r *mapTileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		if t.H != tileHeight {
			return nil, fmt.Errorf("tile of height %d requested", t.H)
		}
		data, ok := r.tiles[tileKey{t.L, t.N, t.W}]
		if !ok {
			return nil, fmt.Errorf("tile level %d index %d width %d was not provided", t.L, t.N, t.W)
		}
		out[i] = data
	}
	return out, nil
}

func (r *mapTileReader) SaveTiles([]tlog.Tile, [][]byte) {}

func checkTiles(c TileCase) (*TileData, error) {
	root, err := decodeHash(c.Root)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	tr := &mapTileReader{tiles: map[tileKey][]byte{}}
	for _, t := range c.Tiles {
		data, err := base64.StdEncoding.DecodeString(t.Data)
		if err != nil {
			return nil, fmt.Errorf("tile %d/%d: %w", t.Level, t.Index, err)
		}
		tr.tiles[tileKey{t.Level, t.Index, t.Width}] = data
	}
	reader := tlog.TileHashReader(tlog.Tree{N: c.TreeSize, Hash: root}, tr)

	d := &TileData{
		LeafHashes: map[string]string{},
		Inclusion:  map[string][]string{},
		OldRoots:   map[string]string{},
		Tree:       map[string][]string{},
	}
	th, err := tlog.TreeHash(c.TreeSize, reader)
	if err != nil {
		return nil, fmt.Errorf("tlog.TreeHash(%d): %w", c.TreeSize, err)
	}
	d.TreeHash = base64.StdEncoding.EncodeToString(th[:])
	if th != root {
		return d, fmt.Errorf("tree hash from tiles %v, checkpoint root %v", th, root)
	}
	for _, idx := range c.RecordIndexes {
		key := strconv.FormatInt(idx, 10)
		hs, err := reader.ReadHashes([]int64{tlog.StoredHashIndex(0, idx)})
		if err != nil {
			return d, fmt.Errorf("leaf hash %d: %w", idx, err)
		}
		d.LeafHashes[key] = base64.StdEncoding.EncodeToString(hs[0][:])
		p, err := tlog.ProveRecord(c.TreeSize, idx, reader)
		if err != nil {
			return d, fmt.Errorf("tlog.ProveRecord(%d, %d): %w", c.TreeSize, idx, err)
		}
		d.Inclusion[key] = encodeProof(p)
		if err := tlog.CheckRecord(p, c.TreeSize, root, idx, hs[0]); err != nil {
			return d, fmt.Errorf("tlog.CheckRecord(%d, %d) of a tile-derived proof: %w", c.TreeSize, idx, err)
		}
	}
	for _, m := range c.OldSizes {
		key := strconv.FormatInt(m, 10)
		oldRoot, err := tlog.TreeHash(m, reader)
		if err != nil {
			return d, fmt.Errorf("tlog.TreeHash(%d): %w", m, err)
		}
		d.OldRoots[key] = base64.StdEncoding.EncodeToString(oldRoot[:])
		p, err := tlog.ProveTree(c.TreeSize, m, reader)
		if err != nil {
			return d, fmt.Errorf("tlog.ProveTree(%d, %d): %w", c.TreeSize, m, err)
		}
		d.Tree[key] = encodeProof(p)
		if err := tlog.CheckTree(p, c.TreeSize, root, m, oldRoot); err != nil {
			return d, fmt.Errorf("tlog.CheckTree(%d, %d) of a tile-derived proof: %w", c.TreeSize, m, err)
		}
	}
	return d, nil
}
