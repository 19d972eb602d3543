//! Private keys on disk: one PKCS#8 PEM file per kid, readable by its owner only.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{spki::der::pem::LineEnding, DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::SigningKey;

use super::KeyError;

/// `keys/<kid>.pem`.
pub fn path_for(dir: &Path, kid: u8) -> PathBuf {
    dir.join(format!("{kid}.pem"))
}

/// Writes a new private key file, never overwriting one.
pub fn write(dir: &Path, kid: u8, key: &SigningKey) -> Result<PathBuf, KeyError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| KeyError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io(dir))?;
    let path = path_for(dir, kid);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| KeyError::BadPrivateKey {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(&path))?;
    file.write_all(pem.as_bytes()).map_err(io(&path))?;
    file.sync_all().map_err(io(&path))?;
    Ok(path)
}

/// Reads the private key of `kid`, refusing a file others could read.
pub fn read(dir: &Path, kid: u8) -> Result<SigningKey, KeyError> {
    let path = path_for(dir, kid);
    let meta = match fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::MissingPrivateKey { kid, path })
        }
        Err(source) => return Err(KeyError::Io { path, source }),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::PrivateKeyExposed { path, mode });
    }
    let pem = fs::read_to_string(&path).map_err(|source| KeyError::Io {
        path: path.clone(),
        source,
    })?;
    SigningKey::from_pkcs8_pem(&pem).map_err(|e| KeyError::BadPrivateKey {
        path,
        reason: e.to_string(),
    })
}

/// Removes a key file written for a key that was then not registered.
pub fn discard(dir: &Path, kid: u8) {
    let _ = fs::remove_file(path_for(dir, kid));
}
