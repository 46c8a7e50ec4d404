// Command tilesclient is a third-party C2SP tlog-tiles client for a glasslog
// server. Given only the server's base URL and the log's verifier key it
//
//   - fetches <base>/checkpoint and opens it with note.Open (signed note,
//     Ed25519, the verifier key) and parses it as a C2SP tlog-checkpoint;
//   - reads hashes only through tlog.TileHashReader over an HTTP
//     tlog.TileReader fetching <base>/tile/<L>/<N>[.p/<W>], and recomputes the
//     checkpoint's root from the tiles (tlog.TreeHash);
//   - for each requested entry: reads its leaf hash from the level-0 tile,
//     builds an inclusion proof from the tiles (tlog.ProveRecord) and checks it
//     against the checkpoint's root (tlog.CheckRecord), fetches the entry's
//     bundle <base>/tile/entries/<N>[.p/<W>] and checks that
//     tlog.RecordHash(entry) is that leaf hash; every other entry of each
//     fetched bundle is checked the same way;
//   - with -state: if the state file holds an earlier checkpoint, opens it
//     with the same key, refuses a smaller tree (rollback) or the same size
//     with another root (split view), and proves consistency from the old
//     tree to the new one from tiles (tlog.ProveTree, tlog.CheckTree). On
//     success the new checkpoint replaces the one in the state file.
//
// It trusts nothing the server says beyond what these checks establish; it
// uses no glasslog code and no /v1 endpoint.
//
// Usage:
//
//	tilesclient -base http://127.0.0.1:8000 -key 'origin+hash+base64' \
//	    [-state state.json] [-indexes first,last,partial,random:5,17|all] [-seed 1]
//
// It always writes one JSON document (see Report) to standard output. Exit
// status: 0 everything verified, 1 a check failed or the server could not be
// read (Report.Error says which), 2 bad usage (flags, malformed key).
//
// Note on x/mod v0.7.0 (Debian's golang-golang-x-mod-dev): its
// TileHashReader does not authenticate every full tile it fetches against
// its parent (its "authenticate full tiles" loop starts at the number of
// root subtrees rather than at the number of distinct tiles holding them).
// This client therefore never trusts a hash just because the reader returned
// it: every leaf hash it relies on is also checked with tlog.CheckRecord
// against the signed root, which is pure computation.
//
// Build offline against Debian's x/mod source, like tests/go/glasslogcheck:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o tilesclient .
//
// or in module mode with the go.mod beside this file.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

const (
	tileHeight = 8 // C2SP tlog-tiles
	tileWidth  = 1 << tileHeight
	// Response size limits.
	maxCheckpoint = 1 << 20
	maxTile       = tileWidth * tlog.HashSize
	maxBundle     = tileWidth * (2 + 65535)
)

// Checkpoint is a verified C2SP tlog-checkpoint.
type Checkpoint struct {
	Note     string `json:"note"`
	Origin   string `json:"origin"`
	TreeSize int64  `json:"tree_size"`
	Root     string `json:"root"`

	root tlog.Hash
}

// Inclusion is what the client established for one requested entry.
type Inclusion struct {
	Index    int64    `json:"index"`
	LeafHash string   `json:"leaf_hash"` // from the level-0 tile, base64
	Proof    []string `json:"proof"`     // tlog.ProveRecord from tiles, base64
	Entry    string   `json:"entry"`     // the entry's bytes from its bundle, base64
	Bundle   string   `json:"bundle"`    // path of the entry bundle it was read from
}

// Consistency is the proof between the previous and the current checkpoint.
type Consistency struct {
	OldSize int64    `json:"old_size"`
	NewSize int64    `json:"new_size"`
	OldRoot string   `json:"old_root"`
	NewRoot string   `json:"new_root"`
	Proof   []string `json:"proof"`
}

// Report is the document written to standard output.
type Report struct {
	GoVersion        string       `json:"go_version"`
	OK               bool         `json:"ok"`
	Error            string       `json:"error,omitempty"`
	Checkpoint       *Checkpoint  `json:"checkpoint,omitempty"`
	Previous         *Checkpoint  `json:"previous,omitempty"`
	TreeHashFromTile string       `json:"tree_hash_from_tiles,omitempty"`
	Consistency      *Consistency `json:"consistency,omitempty"`
	Inclusion        []Inclusion  `json:"inclusion"`
	// BundleEntriesChecked counts entries (requested or not) whose bytes
	// were read from a bundle and proven included in the signed tree.
	BundleEntriesChecked int      `json:"bundle_entries_checked"`
	Fetched              []string `json:"fetched"` // URL paths fetched, in order
}

// State is the client's memory between runs.
type State struct {
	Checkpoint string `json:"checkpoint"`
}

type usageError struct{ error }

func main() {
	rep := &Report{GoVersion: runtime.Version(), Inclusion: []Inclusion{}, Fetched: []string{}}
	code := 0
	if err := run(rep, os.Args[1:]); err != nil {
		rep.Error = err.Error()
		code = 1
		var ue usageError
		if errors.As(err, &ue) {
			code = 2
		}
	} else {
		rep.OK = true
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, "tilesclient:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func run(rep *Report, args []string) error {
	fs := flag.NewFlagSet("tilesclient", flag.ContinueOnError)
	fs.SetOutput(os.Stderr)
	base := fs.String("base", "", "base URL of the log (the tlog-tiles prefix)")
	key := fs.String("key", "", "verifier key name+keyhash+base64")
	origin := fs.String("origin", "", "expected checkpoint origin (default: the verifier key's name)")
	statePath := fs.String("state", "", "state file keeping the last verified checkpoint")
	indexSpec := fs.String("indexes", "first,last,partial", "entries to prove: comma-separated indexes and first, last, partial, random:K, all")
	seed := fs.Int64("seed", 1, "seed for random:K")
	timeout := fs.Duration("timeout", 30*time.Second, "HTTP timeout per request")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if *base == "" || *key == "" || fs.NArg() != 0 {
		return usageError{errors.New("usage: tilesclient -base URL -key VERIFIER_KEY [-state FILE] [-indexes SPEC]")}
	}
	verifier, err := note.NewVerifier(*key)
	if err != nil {
		return usageError{fmt.Errorf("verifier key: note.NewVerifier: %w", err)}
	}
	if *origin == "" {
		*origin = verifier.Name()
	}

	c := &client{base: strings.TrimRight(*base, "/"), http: &http.Client{Timeout: *timeout}, rep: rep,
		saved: map[tlog.Tile][]byte{}}
	verifiers := note.VerifierList(verifier)

	// The previous checkpoint, if any, is re-opened with the same key.
	var prev *Checkpoint
	if *statePath != "" {
		raw, err := os.ReadFile(*statePath)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return fmt.Errorf("state file: %w", err)
		default:
			var st State
			if err := json.Unmarshal(raw, &st); err != nil {
				return fmt.Errorf("state file %s: %w", *statePath, err)
			}
			prev, err = openCheckpoint([]byte(st.Checkpoint), verifiers, *origin)
			if err != nil {
				return fmt.Errorf("previous checkpoint in state file: %w", err)
			}
			rep.Previous = prev
		}
	}

	// The current checkpoint.
	body, err := c.get("/checkpoint", maxCheckpoint)
	if err != nil {
		return err
	}
	cp, err := openCheckpoint(body, verifiers, *origin)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	rep.Checkpoint = cp
	tree := tlog.Tree{N: cp.TreeSize, Hash: cp.root}
	reader := tlog.TileHashReader(tree, c)

	if cp.TreeSize > 0 {
		th, err := tlog.TreeHash(cp.TreeSize, reader)
		if err != nil {
			return fmt.Errorf("tlog.TreeHash(%d) from tiles: %w", cp.TreeSize, err)
		}
		rep.TreeHashFromTile = b64(th[:])
		if th != cp.root {
			return fmt.Errorf("root computed from tiles %v differs from the checkpoint's %v", th, cp.root)
		}
	}

	// Consistency with the previous checkpoint.
	if prev != nil {
		switch {
		case cp.TreeSize < prev.TreeSize:
			return fmt.Errorf("rollback: the server's checkpoint has tree size %d, smaller than the %d already verified",
				cp.TreeSize, prev.TreeSize)
		case cp.TreeSize == prev.TreeSize:
			if cp.root != prev.root {
				return fmt.Errorf("split view: tree size %d with root %v, but root %v was verified before",
					cp.TreeSize, cp.root, prev.root)
			}
			rep.Consistency = &Consistency{OldSize: prev.TreeSize, NewSize: cp.TreeSize, OldRoot: prev.Root,
				NewRoot: cp.Root, Proof: []string{}}
		case prev.TreeSize == 0:
			rep.Consistency = &Consistency{OldSize: 0, NewSize: cp.TreeSize, OldRoot: prev.Root, NewRoot: cp.Root,
				Proof: []string{}}
		default:
			p, err := tlog.ProveTree(cp.TreeSize, prev.TreeSize, reader)
			if err != nil {
				return fmt.Errorf("tlog.ProveTree(%d, %d) from tiles: %w", cp.TreeSize, prev.TreeSize, err)
			}
			rep.Consistency = &Consistency{OldSize: prev.TreeSize, NewSize: cp.TreeSize, OldRoot: prev.Root,
				NewRoot: cp.Root, Proof: encodeHashes(p)}
			if err := tlog.CheckTree(p, cp.TreeSize, cp.root, prev.TreeSize, prev.root); err != nil {
				return fmt.Errorf("consistency from tree size %d to %d: tlog.CheckTree: %w", prev.TreeSize, cp.TreeSize, err)
			}
		}
	}

	// Inclusion of the requested entries, with their bytes from entry bundles.
	indexes, err := resolveIndexes(*indexSpec, cp.TreeSize, *seed)
	if err != nil {
		return usageError{err}
	}
	bundles := map[int64][][]byte{}
	for _, i := range indexes {
		n := i / tileWidth
		entries, ok := bundles[n]
		if !ok {
			entries, err = c.bundle(n, cp.TreeSize)
			if err != nil {
				return err
			}
			// Every entry of the bundle: its bytes hash to a leaf proven in the signed tree.
			for k, e := range entries {
				if err := proveEntry(reader, tree, n*tileWidth+int64(k), e, nil); err != nil {
					return err
				}
				rep.BundleEntriesChecked++
			}
			bundles[n] = entries
		}
		inc := Inclusion{Index: i, Bundle: entriesPath(n, len(entries))}
		if err := proveEntry(reader, tree, i, entries[i%tileWidth], &inc); err != nil {
			return err
		}
		rep.Inclusion = append(rep.Inclusion, inc)
	}

	if *statePath != "" {
		raw, _ := json.MarshalIndent(State{Checkpoint: cp.Note}, "", " ")
		tmp := *statePath + ".tmp"
		if err := os.WriteFile(tmp, raw, 0o644); err != nil {
			return fmt.Errorf("state file: %w", err)
		}
		if err := os.Rename(tmp, filepath.Clean(*statePath)); err != nil {
			return fmt.Errorf("state file: %w", err)
		}
	}
	return nil
}

// proveEntry checks that entry is leaf i of the signed tree: its leaf hash as
// read from the level-0 tile equals tlog.RecordHash(entry), and an inclusion
// proof built from the tiles verifies against the signed root.
func proveEntry(reader tlog.HashReader, tree tlog.Tree, i int64, entry []byte, out *Inclusion) error {
	hs, err := reader.ReadHashes([]int64{tlog.StoredHashIndex(0, i)})
	if err != nil {
		return fmt.Errorf("entry %d: leaf hash from tiles: %w", i, err)
	}
	leaf := hs[0]
	p, err := tlog.ProveRecord(tree.N, i, reader)
	if err != nil {
		return fmt.Errorf("entry %d: tlog.ProveRecord(%d, %d) from tiles: %w", i, tree.N, i, err)
	}
	if out != nil {
		out.LeafHash = b64(leaf[:])
		out.Proof = encodeHashes(p)
		out.Entry = b64(entry)
	}
	if err := tlog.CheckRecord(p, tree.N, tree.Hash, i, leaf); err != nil {
		return fmt.Errorf("entry %d: tlog.CheckRecord of the tile-derived proof against the signed root: %w", i, err)
	}
	if rh := tlog.RecordHash(entry); rh != leaf {
		return fmt.Errorf("entry %d: tlog.RecordHash of its bytes in the entry bundle is %v, but its leaf hash in the level-0 tile is %v",
			i, rh, leaf)
	}
	return nil
}

// resolveIndexes turns -indexes into sorted, distinct entry indexes below n.
func resolveIndexes(spec string, n int64, seed int64) ([]int64, error) {
	set := map[int64]bool{}
	rng := rand.New(rand.NewSource(seed))
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if n == 0 {
			return nil, fmt.Errorf("index %q: the tree is empty", part)
		}
		switch {
		case part == "first":
			set[0] = true
		case part == "last":
			set[n-1] = true
		case part == "partial":
			// Middle of the rightmost, partial level-0 tile (none if the tree fills whole tiles).
			if w := n % tileWidth; w != 0 {
				set[n-w+w/2] = true
			}
		case part == "all":
			for i := int64(0); i < n; i++ {
				set[i] = true
			}
		case strings.HasPrefix(part, "random:"):
			k, err := strconv.Atoi(strings.TrimPrefix(part, "random:"))
			if err != nil || k < 0 {
				return nil, fmt.Errorf("bad index spec %q", part)
			}
			for j := 0; j < k; j++ {
				set[rng.Int63n(n)] = true
			}
		default:
			i, err := strconv.ParseInt(part, 10, 64)
			if err != nil || i < 0 {
				return nil, fmt.Errorf("bad index spec %q", part)
			}
			if i >= n {
				return nil, fmt.Errorf("index %d is not below the checkpoint's tree size %d", i, n)
			}
			set[i] = true
		}
	}
	out := make([]int64, 0, len(set))
	for i := range set {
		out = append(out, i)
	}
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out, nil
}

// ------------------------------------------------------------- checkpoints

// openCheckpoint verifies a signed note with note.Open and parses its text as
// a C2SP tlog-checkpoint (origin, decimal tree size, base64 root, optional
// extension lines).
func openCheckpoint(msg []byte, verifiers note.Verifiers, origin string) (*Checkpoint, error) {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return nil, fmt.Errorf("note.Open: %w", err)
	}
	if len(n.Sigs) == 0 {
		return nil, errors.New("note.Open returned no verified signature")
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return nil, fmt.Errorf("checkpoint text %q: want origin, size and root lines", n.Text)
	}
	if lines[0] != origin {
		return nil, fmt.Errorf("checkpoint origin %q, want %q", lines[0], origin)
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return nil, fmt.Errorf("checkpoint tree size %q is not a canonical decimal", lines[1])
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize || b64(raw) != lines[2] {
		return nil, fmt.Errorf("checkpoint root %q is not canonical base64 of %d bytes", lines[2], tlog.HashSize)
	}
	for _, ext := range lines[3 : len(lines)-1] {
		if ext == "" {
			return nil, errors.New("checkpoint has an empty extension line")
		}
	}
	cp := &Checkpoint{Note: string(msg), Origin: lines[0], TreeSize: size, Root: lines[2]}
	copy(cp.root[:], raw)
	return cp, nil
}

// ------------------------------------------------------------------- HTTP

// client fetches checkpoints, tiles and entry bundles, and is the
// tlog.TileReader behind tlog.TileHashReader.
type client struct {
	base  string
	http  *http.Client
	rep   *Report
	saved map[tlog.Tile][]byte // tiles TileHashReader has authenticated
}

type statusError struct {
	path   string
	status int
	body   string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("GET %s: HTTP %d: %s", e.path, e.status, e.body)
}

func (c *client) get(path string, limit int64) ([]byte, error) {
	c.rep.Fetched = append(c.rep.Fetched, path)
	resp, err := c.http.Get(c.base + path)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: reading body: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		if len(body) > 300 {
			body = body[:300]
		}
		return nil, &statusError{path, resp.StatusCode, strings.TrimSpace(string(body))}
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("GET %s: response longer than %d bytes", path, limit)
	}
	return body, nil
}

// encodeIndex writes a tile index as C2SP tlog-tiles 3-digit path elements,
// all but the last prefixed with "x" (1234067 -> x001/x234/067).
func encodeIndex(n int64) string {
	s := fmt.Sprintf("%03d", n%1000)
	for n >= 1000 {
		n /= 1000
		s = fmt.Sprintf("x%03d/%s", n%1000, s)
	}
	return s
}

func widthSuffix(w int) string {
	if w == tileWidth {
		return ""
	}
	return fmt.Sprintf(".p/%d", w)
}

// tilePath is /tile/<L>/<N>[.p/<W>]. It is written from the C2SP spec and
// cross-checked against x/mod's own (height-prefixed) tile path.
func tilePath(t tlog.Tile) (string, error) {
	p := fmt.Sprintf("/tile/%d/%s%s", t.L, encodeIndex(t.N), widthSuffix(t.W))
	if want := strings.Replace(t.Path(), fmt.Sprintf("tile/%d/", tileHeight), "tile/", 1); "/"+want != p {
		return "", fmt.Errorf("tile path %s disagrees with x/mod's %s", p, t.Path())
	}
	return p, nil
}

func entriesPath(n int64, w int) string {
	return fmt.Sprintf("/tile/entries/%s%s", encodeIndex(n), widthSuffix(w))
}

// Height implements tlog.TileReader.
func (c *client) Height() int { return tileHeight }

// ReadTiles implements tlog.TileReader: tiles already authenticated are
// served from memory, the rest are fetched. A partial tile that is gone
// is read as the prefix of the full tile (C2SP tlog-tiles allows logs to
// delete partial tiles once the full tile exists).
func (c *client) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		if t.H != tileHeight {
			return nil, fmt.Errorf("tile of height %d requested", t.H)
		}
		if data, ok := c.saved[t]; ok {
			out[i] = data
			continue
		}
		path, err := tilePath(t)
		if err != nil {
			return nil, err
		}
		data, err := c.get(path, maxTile)
		var se *statusError
		if err != nil && errors.As(err, &se) && se.status == http.StatusNotFound && t.W < tileWidth {
			full := t
			full.W = tileWidth
			fullPath, perr := tilePath(full)
			if perr != nil {
				return nil, perr
			}
			if fd, ferr := c.get(fullPath, maxTile); ferr == nil && len(fd) == maxTile {
				data, err = fd[:t.W*tlog.HashSize], nil
			}
		}
		if err != nil {
			return nil, err
		}
		if len(data) != t.W*tlog.HashSize {
			return nil, fmt.Errorf("GET %s: %d bytes, want %d (%d hashes)", path, len(data), t.W*tlog.HashSize, t.W)
		}
		out[i] = data
	}
	return out, nil
}

// SaveTiles implements tlog.TileReader: keep authenticated tiles in memory.
func (c *client) SaveTiles(tiles []tlog.Tile, data [][]byte) {
	for i, t := range tiles {
		c.saved[t] = data[i]
	}
}

// bundle fetches entry bundle n of a tree of size treeSize and splits it into
// entries (big-endian uint16 length, then the bytes). It must hold exactly
// as many entries as the tree has in that bundle's range.
func (c *client) bundle(n, treeSize int64) ([][]byte, error) {
	w := treeSize - n*tileWidth
	if w > tileWidth {
		w = tileWidth
	}
	if w <= 0 {
		return nil, fmt.Errorf("entry bundle %d is beyond tree size %d", n, treeSize)
	}
	path := entriesPath(n, int(w))
	data, err := c.get(path, maxBundle)
	if err != nil {
		return nil, err
	}
	var entries [][]byte
	for r := bytes.NewReader(data); r.Len() > 0; {
		var size uint16
		if err := binary.Read(r, binary.BigEndian, &size); err != nil {
			return nil, fmt.Errorf("GET %s: entry bundle ends inside a length prefix", path)
		}
		if int(size) > r.Len() {
			return nil, fmt.Errorf("GET %s: entry %d of the bundle is %d bytes, only %d left", path, len(entries), size, r.Len())
		}
		e := make([]byte, size)
		if _, err := io.ReadFull(r, e); err != nil {
			return nil, fmt.Errorf("GET %s: %w", path, err)
		}
		entries = append(entries, e)
	}
	if int64(len(entries)) != w {
		return nil, fmt.Errorf("GET %s: entry bundle holds %d entries, want %d", path, len(entries), w)
	}
	return entries, nil
}

// ------------------------------------------------------------------ helpers

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func encodeHashes(p []tlog.Hash) []string {
	out := make([]string, len(p))
	for i, h := range p {
		out[i] = b64(h[:])
	}
	return out
}
