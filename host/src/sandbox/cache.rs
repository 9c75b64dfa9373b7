//! Precompiled components on disk, keyed by the component's sha256 and the
//! engine's compatibility key (wasmtime version plus every compilation
//! setting), so a worker compiles each strategy once per machine.
//!
//! Loading precompiled code means trusting it as native code. We only ever
//! read files this cache wrote: a file carries a header with the sha256 of
//! its payload, written atomically (temp file, then rename) in a directory
//! private to the user (0700), and anything that does not verify is
//! discarded and recompiled. Bytes from a client are never deserialized:
//! uploads are always compiled from source.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The wasmtime this host links; checked against Cargo.lock by a test.
pub const WASMTIME_VERSION: &str = "48.0.8";
const MAGIC: &[u8; 8] = b"SBXCWASM";
const HEADER_LEN: usize = MAGIC.len() + 32;

#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    engine_key: String,
}

impl DiskCache {
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            engine_key: engine_key(engine),
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.engine_key))
    }

    /// The cached component, or `None` when absent or not verifiable.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        let bytes = std::fs::read(&path).ok()?;
        let payload = verified_payload(&bytes);
        if payload.is_none() {
            let _ = std::fs::remove_file(&path);
            return None;
        }
        let payload = payload?;
        // SAFETY: `payload` was produced by `Engine::precompile_component`
        // in this cache (the header's digest matches, the file name binds
        // it to this engine's configuration) and wasmtime re-checks the
        // engine compatibility before using it. See the module docs.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, payload) };
        match component {
            Ok(component) => Some(component),
            Err(_) => {
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Writes the precompiled form of `wasm`. Failures only cost a recompile.
    pub fn store(&self, sha256: &str, precompiled: &[u8]) -> std::io::Result<()> {
        let path = self.path(sha256);
        let tmp = self
            .dir
            .join(format!(".{sha256}.{}.tmp", std::process::id()));
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(MAGIC)?;
        file.write_all(&Sha256::digest(precompiled))?;
        file.write_all(precompiled)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    }
}

fn verified_payload(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return None;
    }
    let (digest, payload) = bytes[MAGIC.len()..].split_at(32);
    (Sha256::digest(payload).as_slice() == digest).then_some(payload)
}

/// A short stable key for the engine's compilation settings.
fn engine_key(engine: &Engine) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    WASMTIME_VERSION.hash(&mut hasher);
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes([
            digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7],
        ])
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn wasmtime_version_matches_the_lockfile() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
        let entry = lock
            .split("[[package]]")
            .find(|p| p.contains("\nname = \"wasmtime\"\n"))
            .unwrap();
        assert!(
            entry.contains(&format!("version = \"{WASMTIME_VERSION}\"")),
            "update WASMTIME_VERSION: {entry}"
        );
    }

    #[test]
    fn tampered_or_truncated_files_do_not_verify() {
        let payload = b"precompiled bytes".to_vec();
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&Sha256::digest(&payload));
        file.extend_from_slice(&payload);
        assert_eq!(verified_payload(&file), Some(&payload[..]));
        let mut tampered = file.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(verified_payload(&tampered), None);
        assert_eq!(verified_payload(&file[..HEADER_LEN - 1]), None);
        assert_eq!(verified_payload(b"\0asm\x0d\0\x01\0"), None);
    }
}
