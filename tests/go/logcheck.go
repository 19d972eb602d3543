// logcheck checks a passnum transparency log with Go's reference code for
// the formats it follows (golang.org/x/mod/sumdb/note for the signed note,
// golang.org/x/mod/sumdb/tlog for RFC 6962 hashing, tiles and proofs),
// written apart from passnum's Rust code and sharing nothing with it.
//
// It fetches <url>/key and <url>/checkpoint, opens the checkpoint with the
// key (note.Open), rebuilds the tree hash from the served tiles
// (tlog.TileHashReader, which checks each tile against the signed tree),
// proves the inclusion of every entry of the entry bundles, and, given
// -kept, the consistency of the served tree with a checkpoint kept earlier.
//
// Built offline in GOPATH mode with Debian's golang-go and
// golang-golang-x-mod-dev (see tests/api/log.rs):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go run tests/go/logcheck.go -url http://127.0.0.1:8080/log
package main

import (
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var (
	prefix string
	client = &http.Client{Timeout: 30 * time.Second}
)

func get(path string) ([]byte, error) {
	res, err := client.Get(prefix + "/" + path)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != 200 {
		return nil, fmt.Errorf("%s/%s answered %s", prefix, path, res.Status)
	}
	return body, nil
}

// c2spPath turns Go's sumdb tile path (tile/8/L/N, tile/8/data/N) into the
// C2SP tlog-tiles one (tile/L/N, tile/entries/N): the height is always 8.
func c2spPath(t tlog.Tile) string {
	p := strings.TrimPrefix(t.Path(), "tile/8/")
	if strings.HasPrefix(p, "data/") {
		return "tile/entries/" + strings.TrimPrefix(p, "data/")
	}
	return "tile/" + p
}

type tiles struct{}

func (tiles) Height() int { return 8 }

func (tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, t := range ts {
		data, err := get(c2spPath(t))
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

func (tiles) SaveTiles([]tlog.Tile, [][]byte) {}

// checkpoint opens a signed checkpoint (C2SP tlog-checkpoint: origin, size,
// base64 root hash) with the verifier.
func checkpoint(msg []byte, v note.Verifier) (tlog.Tree, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return tlog.Tree{}, fmt.Errorf("note.Open: %v", err)
	}
	lines := strings.Split(n.Text, "\n")
	if len(lines) < 4 || lines[len(lines)-1] != "" {
		return tlog.Tree{}, fmt.Errorf("not a checkpoint: %q", n.Text)
	}
	if lines[0] != v.Name() {
		return tlog.Tree{}, fmt.Errorf("origin %q is not the key's name %q", lines[0], v.Name())
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != lines[1] {
		return tlog.Tree{}, fmt.Errorf("bad tree size %q", lines[1])
	}
	raw, err := base64.StdEncoding.DecodeString(lines[2])
	if err != nil || len(raw) != tlog.HashSize {
		return tlog.Tree{}, fmt.Errorf("bad root hash %q", lines[2])
	}
	var h tlog.Hash
	copy(h[:], raw)
	return tlog.Tree{N: size, Hash: h}, nil
}

func run() error {
	url := flag.String("url", "", "the log's prefix, ending in /log")
	kept := flag.String("kept", "", "a checkpoint kept earlier, to check consistency with")
	flag.Parse()
	prefix = strings.TrimSuffix(*url, "/")

	key, err := get("key")
	if err != nil {
		return err
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(key)))
	if err != nil {
		return fmt.Errorf("note.NewVerifier: %v", err)
	}
	msg, err := get("checkpoint")
	if err != nil {
		return err
	}
	tree, err := checkpoint(msg, v)
	if err != nil {
		return err
	}
	fmt.Printf("go: checkpoint of %s signed by key %08x: %d entries, root %s\n", v.Name(), v.KeyHash(), tree.N, tree.Hash)

	hr := tlog.TileHashReader(tree, tiles{})
	th, err := tlog.TreeHash(tree.N, hr)
	if err != nil {
		return fmt.Errorf("tlog.TreeHash from the tiles: %v", err)
	}
	if th != tree.Hash {
		return fmt.Errorf("the tiles give root %s, the checkpoint %s", th, tree.Hash)
	}

	proven := int64(0)
	for n := int64(0); n*256 < tree.N; n++ {
		w := tree.N - n*256
		if w > 256 {
			w = 256
		}
		bundle, err := get(c2spPath(tlog.Tile{H: 8, L: -1, N: n, W: int(w)}))
		if err != nil {
			return err
		}
		for i := int64(0); i < w; i++ {
			if len(bundle) < 2 {
				return fmt.Errorf("entry bundle %d is cut short", n)
			}
			size := int(bundle[0])<<8 | int(bundle[1])
			if len(bundle) < 2+size {
				return fmt.Errorf("entry bundle %d is cut short", n)
			}
			entry := bundle[2 : 2+size]
			bundle = bundle[2+size:]
			index := n*256 + i
			p, err := tlog.ProveRecord(tree.N, index, hr)
			if err != nil {
				return fmt.Errorf("tlog.ProveRecord(%d): %v", index, err)
			}
			if err := tlog.CheckRecord(p, tree.N, tree.Hash, index, tlog.RecordHash(entry)); err != nil {
				return fmt.Errorf("entry %d: tlog.CheckRecord: %v", index, err)
			}
			proven++
		}
		if len(bundle) != 0 {
			return fmt.Errorf("entry bundle %d holds more than %d entries", n, w)
		}
	}
	fmt.Printf("go: the tiles give the signed root; %d entries proven included\n", proven)

	if *kept != "" {
		old, err := os.ReadFile(*kept)
		if err != nil {
			return err
		}
		oldTree, err := checkpoint(old, v)
		if err != nil {
			return fmt.Errorf("the kept checkpoint: %v", err)
		}
		p, err := tlog.ProveTree(tree.N, oldTree.N, hr)
		if err != nil {
			return fmt.Errorf("tlog.ProveTree: %v", err)
		}
		if err := tlog.CheckTree(p, tree.N, tree.Hash, oldTree.N, oldTree.Hash); err != nil {
			return fmt.Errorf("tlog.CheckTree against the kept checkpoint of %d entries: %v", oldTree.N, err)
		}
		fmt.Printf("go: consistent with the kept checkpoint of %d entries\n", oldTree.N)
	}
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "go:", err)
		os.Exit(1)
	}
}
