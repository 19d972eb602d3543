//! `passnum log verify` and `passnum log prove`: a log checked from its
//! public files only, as a venue, a funder or an auditor would, with no
//! access to our database.

use std::cell::RefCell;
use std::path::Path;

use tlog_tiles::{record_hash, Hash, HashReader};

use super::entry::Entry;
use super::note::{self, Verified};
use super::tree::{all_tiles, hashes_of, tile_width, tiles_for, unbundle, TilePath, Tiles, FULL};

/// A log's public files, fetched over HTTP.
pub struct Remote {
    client: reqwest::Client,
    /// The URL prefix, e.g. `https://pass.example.fr/log`, no trailing slash.
    prefix: String,
}

impl Remote {
    /// `url` is the service's address or the log's prefix (ending in `/log`).
    pub fn new(url: &str) -> Result<Remote, String> {
        let url = url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("{url} is not an http or https address"));
        }
        let prefix = if url.ends_with("/log") {
            url.to_owned()
        } else {
            format!("{url}/log")
        };
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Remote { client, prefix })
    }

    async fn get(&self, path: &str) -> Result<Vec<u8>, String> {
        let url = format!("{}/{path}", self.prefix);
        let res = self
            .client
            .get(&url)
            .send()
            .await
            .map_err(|e| format!("cannot fetch {url}: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("{url} answered {}", res.status()));
        }
        res.bytes()
            .await
            .map(|b| b.to_vec())
            .map_err(|e| format!("cannot read {url}: {e}"))
    }

    /// The verifier key the log publishes.
    pub async fn key(&self) -> Result<String, String> {
        let bytes = self.get("key").await?;
        String::from_utf8(bytes)
            .map(|k| k.trim().to_owned())
            .map_err(|_| "the log's key is not text".to_owned())
    }

    pub async fn checkpoint(&self) -> Result<Vec<u8>, String> {
        self.get("checkpoint").await
    }

    /// A hash tile of the width a tree of `size` entries gives it.
    pub async fn tile(&self, size: u64, level: u8, n: u64) -> Result<Vec<Hash>, String> {
        let width = tile_width(size, level, n);
        let path = TilePath {
            level: Some(level),
            n,
            width,
        }
        .path();
        let bytes = self.get(&path).await?;
        match hashes_of(&bytes) {
            Some(hashes) if hashes.len() == width => Ok(hashes),
            _ => Err(format!(
                "{path} holds {} bytes, not {width} hashes",
                bytes.len()
            )),
        }
    }

    /// Entry bundle `n` of a tree of `size` entries.
    pub async fn bundle(&self, size: u64, n: u64) -> Result<Vec<Vec<u8>>, String> {
        let width = tile_width(size, 0, n);
        let path = TilePath {
            level: None,
            n,
            width,
        }
        .path();
        let bytes = self.get(&path).await?;
        match unbundle(&bytes) {
            Some(entries) if entries.len() == width => Ok(entries),
            Some(entries) => Err(format!(
                "{path} holds {} entries, not {width}",
                entries.len()
            )),
            None => Err(format!("{path} is not an entry bundle (cut short)")),
        }
    }

    /// The served checkpoint, its signature checked with `key` (or the
    /// log's own `/log/key`).
    pub async fn verified_checkpoint(
        &self,
        key: Option<&str>,
    ) -> Result<(Verified, Vec<u8>, String), String> {
        let key = match key {
            Some(k) => k.trim().to_owned(),
            None => self.key().await?,
        };
        let note = self.checkpoint().await?;
        let verified = note::open(&note, &key)?;
        Ok((verified, note, key))
    }
}

/// What `verify` found, line by line, when all is well.
pub type Report = Vec<String>;

/// Fetches the checkpoint, checks its signature, rebuilds the tree from every
/// entry and compares it with every served tile and with the signed root;
/// with `kept`, checks the tree extends the checkpoint kept there (and then
/// keeps the new one). The error names the first thing that differs.
pub async fn verify(
    remote: &Remote,
    key: Option<&str>,
    kept: Option<&Path>,
) -> Result<Report, String> {
    let (checkpoint, note, key) = remote.verified_checkpoint(key).await?;
    let size = checkpoint.size;
    let mut report = vec![format!(
        "checkpoint of {} ({size} entries) signed by {}",
        checkpoint.origin,
        key.split('+').take(2).collect::<Vec<_>>().join("+")
    )];

    // Every entry, hashed as RFC 6962 says.
    let mut ours = Tiles::default();
    let mut kinds = std::collections::BTreeMap::<String, u64>::new();
    for n in 0..size.div_ceil(FULL as u64) {
        for (i, entry) in remote.bundle(size, n).await?.into_iter().enumerate() {
            let index = n * FULL as u64 + i as u64;
            let parsed = Entry::parse(&entry).ok_or_else(|| {
                format!(
                    "entry {index} is not an entry in canonical JSON: {}",
                    String::from_utf8_lossy(&entry)
                )
            })?;
            *kinds.entry(parsed.kind).or_default() += 1;
            ours.append(record_hash(&entry));
        }
    }
    report.push(format!(
        "{size} entries read: {}",
        kinds
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    // Every served tile against the tree of the entries.
    let mut served = Tiles::of_size(size);
    for (level, n, _) in all_tiles(size) {
        let tile = remote.tile(size, level, n).await?;
        let expected = ours.get(level, n).unwrap_or_default();
        if let Some(i) = (0..tile.len()).find(|&i| expected.get(i) != Some(&tile[i])) {
            let what = match level {
                0 => format!("the hash of entry {}", n * FULL as u64 + i as u64),
                l => format!("the hash of tile {}/{}", l - 1, n * FULL as u64 + i as u64),
            };
            return Err(format!(
                "tile {} differs from the entries: its hash {i} is {}, {what} is {}",
                TilePath {
                    level: Some(level),
                    n,
                    width: tile.len()
                }
                .path(),
                tile[i],
                expected
                    .get(i)
                    .map_or("missing".to_owned(), Hash::to_string),
            ));
        }
        served.insert(level, n, tile);
    }
    let root = ours.root(size).map_err(|e| e.to_string())?;
    if root != checkpoint.root {
        return Err(format!(
            "the tree of the served entries has root {root}, the signed checkpoint says {}",
            checkpoint.root
        ));
    }
    report.push(format!(
        "the {} tiles match the entries; root hash {root} is the signed one",
        all_tiles(size).len()
    ));

    if let Some(file) = kept {
        match std::fs::read(file) {
            Ok(old_note) => {
                let old = note::open(&old_note, &key)
                    .map_err(|e| format!("the checkpoint kept in {}: {e}", file.display()))?;
                consistent(&served, &checkpoint, &old)
                    .map_err(|e| format!("{e} (the checkpoint kept in {})", file.display()))?;
                report.push(format!(
                    "consistent with the checkpoint of {} entries kept in {}: nothing before it was removed or changed",
                    old.size,
                    file.display()
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                report.push(format!("no checkpoint kept in {} yet", file.display()));
            }
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        }
        std::fs::write(file, &note).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        report.push(format!("this checkpoint is now kept in {}", file.display()));
    }
    Ok(report)
}

/// Whether `new` extends `old`: a consistency proof computed from the tiles
/// of `new`, checked against both signed roots (RFC 6962, 2.1.2).
pub fn consistent(tiles: &Tiles, new: &Verified, old: &Verified) -> Result<(), String> {
    if old.size > new.size {
        return Err(format!(
            "the log shrank: {} entries now, {} in the kept checkpoint",
            new.size, old.size
        ));
    }
    if old.size == new.size {
        return match old.root == new.root {
            true => Ok(()),
            false => Err(format!(
                "two checkpoints of {} entries with different roots ({} and {}): the log was rewritten",
                new.size, old.root, new.root
            )),
        };
    }
    let proof = tlog_tiles::prove_tree(new.size, old.size, tiles).map_err(|e| e.to_string())?;
    tlog_tiles::check_tree(&proof, new.size, new.root, old.size, old.root).map_err(|_| {
        format!(
            "the log of {} entries does not extend the checkpoint of {} entries (root {}): \
             entries before it were removed or changed",
            new.size, old.size, old.root
        )
    })
}

/// Records which hashes a proof needs (and answers zeros), so that only
/// those tiles are fetched.
#[derive(Default)]
struct Needs(RefCell<Vec<u64>>);

impl HashReader for Needs {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
        self.0.borrow_mut().extend_from_slice(indexes);
        Ok(vec![Hash([0; 32]); indexes.len()])
    }
}

/// Checks that entry `index` is in the served checkpoint's tree (an
/// inclusion proof from the tiles, against the signed root); returns it.
pub async fn prove(
    remote: &Remote,
    key: Option<&str>,
    index: u64,
) -> Result<(Verified, Entry), String> {
    let (checkpoint, _, _) = remote.verified_checkpoint(key).await?;
    let size = checkpoint.size;
    if index >= size {
        return Err(format!(
            "the log holds {size} entries: there is no entry {index}"
        ));
    }
    let bundle = remote.bundle(size, index / FULL as u64).await?;
    let bytes = bundle
        .get((index % FULL as u64) as usize)
        .ok_or_else(|| format!("the bundle of entry {index} is short"))?;
    let entry = Entry::parse(bytes)
        .ok_or_else(|| format!("entry {index} is not an entry in canonical JSON"))?;

    let needs = Needs::default();
    tlog_tiles::prove_record(size, index, &needs).map_err(|e| e.to_string())?;
    let mut tiles = Tiles::of_size(size);
    let needed = tiles_for(&needs.0.borrow());
    for (level, n) in needed {
        tiles.insert(level, n, remote.tile(size, level, n).await?);
    }
    let proof = tlog_tiles::prove_record(size, index, &tiles).map_err(|e| e.to_string())?;
    tlog_tiles::check_record(&proof, size, checkpoint.root, index, record_hash(bytes)).map_err(|_| {
        format!(
            "entry {index} is not in the signed tree of {size} entries (root {}): the served entry or tiles were changed",
            checkpoint.root
        )
    })?;
    Ok((checkpoint, entry))
}
