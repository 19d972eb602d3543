//! The Merkle tree (RFC 6962 hashing) as C2SP tlog-tiles stores it: tiles of
//! height 8, tile (L, N) holding up to 256 hashes of tree level 8·L. The
//! proofs and tree hashes are `tlog_tiles`' (a port of Go's sumdb/tlog);
//! this module holds the tiles and their C2SP paths.

use std::collections::{BTreeMap, BTreeSet};

use tlog_tiles::{split_stored_hash_index, Error as TlogError, Hash, HashReader, Tile, HASH_SIZE};

/// Tile height: 2^8 = 256 hashes per full tile.
pub const HEIGHT: u8 = 8;
pub const FULL: usize = 1 << HEIGHT;

/// Hash tiles by (level, n), each up to 256 hashes.
#[derive(Debug, Default, Clone)]
pub struct Tiles {
    size: u64,
    tiles: BTreeMap<(u8, u64), Vec<Hash>>,
    touched: BTreeSet<(u8, u64)>,
}

impl Tiles {
    /// The tiles a tree of `size` entries needs to grow and to give its root:
    /// the rightmost tile of each level, as `stored` holds them. Fails
    /// unless each has the width the size implies.
    pub fn edge(size: u64, stored: Vec<(u8, u64, Vec<Hash>)>) -> Result<Tiles, String> {
        let mut tiles = Tiles {
            size,
            ..Tiles::default()
        };
        for (level, n, hashes) in stored {
            tiles.tiles.insert((level, n), hashes);
        }
        for (level, n, width) in edge_tiles(size) {
            let have = tiles.tiles.get(&(level, n)).map_or(0, Vec::len);
            if have != width {
                return Err(format!(
                    "tile {level}/{n} holds {have} hashes where a tree of {size} entries has {width}"
                ));
            }
        }
        Ok(tiles)
    }

    /// Every tile of a tree built from its leaf hashes.
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Tiles {
        let mut tiles = Tiles::default();
        for leaf in leaves {
            tiles.append(leaf);
        }
        tiles
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Tiles of a tree of `size` entries, to be filled with `insert`
    /// (a verifier's copy of what a log serves).
    pub fn of_size(size: u64) -> Tiles {
        Tiles {
            size,
            ..Tiles::default()
        }
    }

    pub fn insert(&mut self, level: u8, n: u64, hashes: Vec<Hash>) {
        self.tiles.insert((level, n), hashes);
    }

    /// Appends one leaf hash; completes the tiles above it that fill.
    pub fn append(&mut self, leaf: Hash) {
        let (mut hash, mut index) = (leaf, self.size);
        for level in 0u8.. {
            let key = (level, index >> HEIGHT);
            self.touched.insert(key);
            let tile = self.tiles.entry(key).or_default();
            tile.push(hash);
            if tile.len() < FULL {
                break;
            }
            hash = subtree_hash(tile);
            index >>= HEIGHT;
        }
        self.size += 1;
    }

    /// The tiles appended to since `edge` or `from_leaves`, with their hashes.
    pub fn touched(&self) -> impl Iterator<Item = (u8, u64, &[Hash])> {
        self.touched
            .iter()
            .filter_map(|k| self.tiles.get(k).map(|t| (k.0, k.1, t.as_slice())))
    }

    /// Every tile held, with its hashes.
    pub fn all(&self) -> impl Iterator<Item = (u8, u64, &[Hash])> {
        self.tiles.iter().map(|(k, t)| (k.0, k.1, t.as_slice()))
    }

    pub fn get(&self, level: u8, n: u64) -> Option<&[Hash]> {
        self.tiles.get(&(level, n)).map(Vec::as_slice)
    }

    /// The root hash of the first `size` entries (at most the tiles' size).
    pub fn root(&self, size: u64) -> Result<Hash, TlogError> {
        tlog_tiles::tree_hash(size, self)
    }
}

impl HashReader for Tiles {
    /// A node of tree level 8·L + r is the subtree hash of 2^r consecutive
    /// hashes of tile level L, all in one tile.
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, TlogError> {
        indexes
            .iter()
            .map(|&index| {
                let (level, n) = split_stored_hash_index(index);
                let (tile_level, r) = (level / HEIGHT, level % HEIGHT);
                let first = n << r;
                let tile = self
                    .tiles
                    .get(&(tile_level, first >> HEIGHT))
                    .ok_or(TlogError::IndexesNotInTree)?;
                let start = (first % FULL as u64) as usize;
                let hashes = tile
                    .get(start..start + (1 << r))
                    .ok_or(TlogError::IndexesNotInTree)?;
                Ok(subtree_hash(hashes))
            })
            .collect()
    }
}

/// The hash of a full subtree given its 2^k leaves at one level.
pub fn subtree_hash(hashes: &[Hash]) -> Hash {
    let bytes: Vec<u8> = hashes.iter().flat_map(|h| h.0).collect();
    Tile::subtree_hash(&bytes)
}

/// The rightmost tile of each level of a tree of `size` entries that holds
/// anything, with its width: (level, n, width).
pub fn edge_tiles(size: u64) -> Vec<(u8, u64, usize)> {
    let mut out = Vec::new();
    let mut count = size;
    let mut level = 0u8;
    while count > 0 {
        let n = count >> HEIGHT;
        let width = (count % FULL as u64) as usize;
        if width > 0 {
            out.push((level, n, width));
        }
        count >>= HEIGHT;
        level += 1;
    }
    out
}

/// The width of tile (level, n) in a tree of `size` entries (0: none).
pub fn tile_width(size: u64, level: u8, n: u64) -> usize {
    let count = if u32::from(level) * u32::from(HEIGHT) >= 64 {
        0
    } else {
        size >> (u32::from(level) * u32::from(HEIGHT))
    };
    let start = n.saturating_mul(FULL as u64);
    count.saturating_sub(start).min(FULL as u64) as usize
}

/// The tiles (level, n) holding the nodes `indexes` (stored hash indexes, as
/// `tlog_tiles` numbers them) need.
pub fn tiles_for(indexes: &[u64]) -> BTreeSet<(u8, u64)> {
    indexes
        .iter()
        .map(|&index| {
            let (level, n) = split_stored_hash_index(index);
            let (tile_level, r) = (level / HEIGHT, level % HEIGHT);
            (tile_level, (n << r) >> HEIGHT)
        })
        .collect()
}

/// Every tile of a tree of `size` entries, full and partial: (level, n, width).
pub fn all_tiles(size: u64) -> Vec<(u8, u64, usize)> {
    let mut out = Vec::new();
    let mut count = size;
    let mut level = 0u8;
    while count > 0 {
        let full = count >> HEIGHT;
        out.extend((0..full).map(|n| (level, n, FULL)));
        let width = (count % FULL as u64) as usize;
        if width > 0 {
            out.push((level, full, width));
        }
        count >>= HEIGHT;
        level += 1;
    }
    out
}

/// A tile's bytes: its hashes, concatenated.
pub fn tile_bytes(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.0).collect()
}

/// Reads tile bytes back into hashes.
pub fn hashes_of(bytes: &[u8]) -> Option<Vec<Hash>> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(HASH_SIZE) || bytes.len() > FULL * HASH_SIZE
    {
        return None;
    }
    Some(
        bytes
            .chunks_exact(HASH_SIZE)
            .map(|c| Hash(c.try_into().unwrap_or_default()))
            .collect(),
    )
}

/// What a tile path under `/log/` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TilePath {
    /// `None` for an entry bundle (`tile/entries/…`).
    pub level: Option<u8>,
    pub n: u64,
    pub width: usize,
}

impl TilePath {
    /// Parses `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]` exactly as
    /// C2SP tlog-tiles writes them: L a decimal without leading zero (0 to
    /// 63), N in groups of three digits, `x` before all but the last, W from
    /// 1 to 255 without leading zero; anything else is `None`.
    pub fn parse(path: &str) -> Option<TilePath> {
        let rest = path.strip_prefix("tile/")?;
        let (level, rest) = rest.split_once('/')?;
        let level = match level {
            "entries" => None,
            l if canonical_decimal(l) => Some(l.parse::<u8>().ok().filter(|l| *l <= 63)?),
            _ => return None,
        };
        let mut groups: Vec<&str> = rest.split('/').collect();
        let mut width = FULL;
        if groups.len() >= 2 && groups[groups.len() - 2].ends_with(".p") {
            let w = groups.pop()?;
            if !canonical_decimal(w) {
                return None;
            }
            width = w.parse::<usize>().ok().filter(|w| (1..FULL).contains(w))?;
            let last = groups.pop()?;
            groups.push(last.strip_suffix(".p")?);
        }
        let (last, leading) = groups.split_last()?;
        let mut n: u64 = 0;
        for (i, group) in leading
            .iter()
            .map(|g| g.strip_prefix('x'))
            .chain([Some(*last)])
            .enumerate()
        {
            let group = group?;
            if group.len() != 3 || !group.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            // No group of leading zeros: each number has one spelling.
            if i == 0 && !leading.is_empty() && group == "000" {
                return None;
            }
            n = n
                .checked_mul(1000)?
                .checked_add(group.parse::<u64>().ok()?)?;
        }
        Some(TilePath { level, n, width })
    }

    /// The C2SP path of this tile.
    pub fn path(&self) -> String {
        let mut digits = format!("{:03}", self.n % 1000);
        let mut rest = self.n / 1000;
        while rest > 0 {
            digits = format!("x{:03}/{digits}", rest % 1000);
            rest /= 1000;
        }
        let level = match self.level {
            Some(l) => l.to_string(),
            None => "entries".to_owned(),
        };
        let partial = match self.width {
            FULL => String::new(),
            w => format!(".p/{w}"),
        };
        format!("tile/{level}/{digits}{partial}")
    }
}

/// A decimal number as C2SP writes it: digits, no leading zero.
fn canonical_decimal(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 3
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'))
}

/// An entry bundle: each entry as a big-endian 16-bit length, then its bytes.
pub fn bundle(entries: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.iter().map(|e| e.len() + 2).sum());
    for e in entries {
        out.extend_from_slice(&(e.len() as u16).to_be_bytes());
        out.extend_from_slice(e);
    }
    out
}

/// Reads an entry bundle back; `None` if it is cut short.
pub fn unbundle(mut bytes: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]) as usize;
        out.push(bytes.get(2..2 + len)?.to_vec());
        bytes = &bytes[2 + len..];
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tlog_tiles::record_hash;

    fn leaf(i: u64) -> Hash {
        record_hash(format!("entry {i}").as_bytes())
    }

    #[test]
    fn paths_are_c2sp_paths() {
        let cases = [
            ("tile/0/000", Some(0), 0, 256),
            ("tile/1/x001/x234/067.p/8", Some(1), 1_234_067, 8),
            ("tile/entries/x001/234", None, 1234, 256),
            ("tile/entries/005.p/255", None, 5, 255),
            ("tile/8/000.p/1", Some(8), 0, 1),
            ("tile/0/x001/000", Some(0), 1000, 256),
        ];
        for (path, level, n, width) in cases {
            let parsed = TilePath::parse(path).unwrap();
            assert_eq!(parsed, TilePath { level, n, width }, "{path}");
            assert_eq!(parsed.path(), path);
        }
        for bad in [
            "tile/0/0",
            "tile/0/1234",
            "tile/0/000.p/256",
            "tile/0/000.p/0",
            "tile/64/000",
            "tile/data/000",
            "tile/0/x000/001",
            "tile/-1/000",
            "tiles/0/000",
            "tile/0/000.p/",
            "tile/00/000",
            "tile/0/000.p/08",
            "tile/0/001/002",
            "tile/0/x001",
            "tile/entries/000.p",
        ] {
            assert_eq!(TilePath::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn bundles_round_trip() {
        let entries = vec![b"{}".to_vec(), vec![b'x'; 300], b"a".to_vec()];
        let b = bundle(&entries);
        assert_eq!(&b[..4], &[0, 2, b'{', b'}']);
        assert_eq!(unbundle(&b).unwrap(), entries);
        assert_eq!(unbundle(&b[..b.len() - 1]), None);
    }

    #[test]
    fn the_edge_is_enough_to_grow_and_to_give_the_root() {
        let size = 256 * 256 + 3 * 256 + 7;
        let whole = Tiles::from_leaves((0..size).map(leaf));
        let stored = edge_tiles(size)
            .into_iter()
            .map(|(l, n, _)| (l, n, whole.get(l, n).unwrap().to_vec()))
            .collect();
        let mut edge = Tiles::edge(size, stored).unwrap();
        assert_eq!(edge.root(size).unwrap(), whole.root(size).unwrap());
        let mut grown = whole.clone();
        for i in size..size + 600 {
            edge.append(leaf(i));
            grown.append(leaf(i));
        }
        assert_eq!(
            edge.root(size + 600).unwrap(),
            grown.root(size + 600).unwrap()
        );
        for (l, n, hashes) in edge.touched() {
            assert_eq!(grown.get(l, n).unwrap(), hashes, "tile {l}/{n}");
        }
        assert!(Tiles::edge(size, vec![]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Our tiles give the same roots and proofs as ct-merkle, a second
        /// RFC 6962 implementation, and proofs that tlog_tiles accepts.
        #[test]
        fn tiles_agree_with_ct_merkle(size in 1u64..1200, old in 0u64..1200, index in 0u64..1200) {
            use sha2::Sha256;
            let old = old % size + 1;
            let index = index % size;
            let data: Vec<Vec<u8>> = (0..size).map(|i| format!("entry {i}").into_bytes()).collect();
            let tiles = Tiles::from_leaves(data.iter().map(|d| record_hash(d)));
            let mut ct = ct_merkle::mem_backed_tree::MemoryBackedTree::<Sha256, Vec<u8>>::new();
            for d in &data {
                ct.push(d.clone());
            }
            let root = tiles.root(size).unwrap();
            let ct_root = ct.root();
            prop_assert_eq!(root.0.as_slice(), ct_root.as_bytes().as_slice());
            let old_root = tiles.root(old).unwrap();
            let proof = tlog_tiles::prove_tree(size, old, &tiles).unwrap();
            prop_assert!(tlog_tiles::check_tree(&proof, size, root, old, old_root).is_ok());
            let ct_proof = ct.prove_consistency(size as usize - old as usize);
            let ours: Vec<u8> = proof.iter().flat_map(|h| h.0).collect();
            prop_assert_eq!(ours.as_slice(), ct_proof.as_bytes());
            let inclusion = tlog_tiles::prove_record(size, index, &tiles).unwrap();
            prop_assert!(tlog_tiles::check_record(&inclusion, size, root, index, record_hash(&data[index as usize])).is_ok());
            let ct_inclusion = ct.prove_inclusion(index as usize);
            let ours: Vec<u8> = inclusion.iter().flat_map(|h| h.0).collect();
            prop_assert_eq!(ours.as_slice(), ct_inclusion.as_bytes());
        }
    }
}
