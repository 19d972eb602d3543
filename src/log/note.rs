//! Checkpoints as C2SP signed notes: the tlog-checkpoint body (origin, tree
//! size, base64 root), then one Ed25519 signature line per log key
//! (`signed_note`), key id = first 4 bytes of SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key).

use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use signed_note::{Note, Signer, StandardVerifier, VerifierList};
use tlog_tiles::{Checkpoint, Hash};

/// A log key of the ring, as a signed-note signer named after the origin.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl NoteSigner {
    pub fn new(name: &str, key: SigningKey) -> Self {
        NoteSigner {
            name: name.to_owned(),
            key,
        }
    }
}

impl Signer for NoteSigner {
    fn name(&self) -> &str {
        &self.name
    }
    fn key_id(&self) -> u32 {
        key_id(&self.name, &self.key.verifying_key())
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
        Ok(self.key.sign(msg).to_bytes().to_vec())
    }
}

fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut encoded = vec![1u8];
    encoded.extend_from_slice(key.as_bytes());
    signed_note::key_id(name, &encoded)
}

/// `<name>+<hex key id>+<base64(0x01 ‖ key)>`, what `/log/key` answers.
pub fn verifier_key(name: &str, key: &VerifyingKey) -> String {
    signed_note::new_ed25519_verifier_key(name, key)
}

/// The signed checkpoint of a tree, signed by each of `signers` in turn.
pub fn sign(origin: &str, size: u64, root: Hash, signers: &[NoteSigner]) -> Result<String, String> {
    let body = Checkpoint::new(origin, size, root, "").map_err(|e| e.to_string())?;
    let mut note = Note::new(&body.to_bytes(), &[]).map_err(|e| e.to_string())?;
    let signers: Vec<&dyn Signer> = signers.iter().map(|s| s as &dyn Signer).collect();
    note.add_sigs(&signers).map_err(|e| e.to_string())?;
    String::from_utf8(note.to_bytes()).map_err(|e| e.to_string())
}

/// A checkpoint whose signature by `vkey` verified.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// Opens a signed checkpoint with the verifier key: the signature by that
/// key must verify (others are ignored) and the body must be a checkpoint
/// whose origin is the key's name.
pub fn open(note: &[u8], vkey: &str) -> Result<Verified, String> {
    let verifier =
        StandardVerifier::new(vkey).map_err(|e| format!("the verifier key is not valid: {e}"))?;
    let name = signed_note::Verifier::name(&verifier).to_owned();
    let parsed =
        Note::from_bytes(note).map_err(|e| format!("the checkpoint is not a signed note: {e}"))?;
    parsed
        .verify(&VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|e| match e {
            signed_note::NoteError::UnverifiedNote => {
                format!("the checkpoint carries no signature by the key {vkey}")
            }
            other => format!("the checkpoint's signature does not verify: {other}"),
        })?;
    let body = Checkpoint::from_bytes(parsed.text())
        .map_err(|e| format!("the signed text is not a checkpoint: {e}"))?;
    if body.origin() != name {
        return Err(format!(
            "the checkpoint's origin is {:?}, the key's name {name:?}",
            body.origin()
        ));
    }
    Ok(Verified {
        origin: body.origin().to_owned(),
        size: body.size(),
        root: *body.hash(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn checkpoints_are_signed_notes_with_c2sp_key_ids() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let origin = "passnum.example/log";
        let vkey = verifier_key(origin, &key.verifying_key());
        // The key id by hand: SHA-256(name ‖ 0x0A ‖ 0x01 ‖ key), first 4 bytes.
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(origin.as_bytes());
        h.update([0x0a, 0x01]);
        h.update(key.verifying_key().as_bytes());
        let id = hex4(&h.finalize()[..4]);
        let mut raw = vec![1u8];
        raw.extend_from_slice(key.verifying_key().as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(raw);
        assert_eq!(vkey, format!("{origin}+{id}+{b64}"));

        let root = tlog_tiles::record_hash(b"x");
        let note = sign(origin, 5, root, &[NoteSigner::new(origin, key.clone())]).unwrap();
        let lines: Vec<&str> = note.split('\n').collect();
        assert_eq!(lines[0], origin);
        assert_eq!(lines[1], "5");
        assert_eq!(lines[2], root.to_string());
        assert_eq!(lines[3], "");
        assert!(
            lines[4].starts_with(&format!("\u{2014} {origin} ")),
            "{}",
            lines[4]
        );
        assert_eq!(lines[5], "");
        let opened = open(note.as_bytes(), &vkey).unwrap();
        assert_eq!((opened.size, opened.root), (5, root));

        let other = SigningKey::from_bytes(&[8; 32]);
        let err = open(
            note.as_bytes(),
            &verifier_key(origin, &other.verifying_key()),
        )
        .unwrap_err();
        assert!(err.contains("no signature by the key"), "{err}");
        let forged = note.replacen("\n5\n", "\n6\n", 1);
        assert!(open(forged.as_bytes(), &vkey)
            .unwrap_err()
            .contains("does not verify"));
    }

    fn hex4(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }
}
