//! Precompiled components on disk, keyed by the component's sha256 and the
//! engine's compatibility key (wasmtime version plus every compilation
//! setting), so a worker compiles each strategy once per machine.
//!
//! Loading precompiled code means trusting it as native code. We only ever
//! read files this cache wrote, in a directory private to the user (0700):
//! `<sha256>-<engine key>.cwasm` holds wasmtime's serialized component and
//! `.check` beside it its length and CRC-32, written after the code file
//! was renamed into place. A file whose check is missing or does not match
//! (a torn write, a truncated disk) is discarded and recompiled; wasmtime
//! itself refuses code from another version or configuration. Bytes from a
//! client are never deserialized: uploads are always compiled from source.
//! The code file is mapped, not copied, so a cached load costs about a
//! millisecond against about a hundred for a compile.

use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};
use wasmtime::component::Component;
use wasmtime::Engine;

/// The wasmtime this host links; checked against Cargo.lock by a test.
pub const WASMTIME_VERSION: &str = "48.0.8";

#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    engine_key: String,
}

impl DiskCache {
    /// `transform` names what rewrote the bytes before compilation (the
    /// NaN pass and its version, or ""): part of the key like the engine.
    pub fn open(dir: &Path, engine: &Engine, transform: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            engine_key: engine_key(engine, transform),
        })
    }

    fn paths(&self, sha256: &str) -> (PathBuf, PathBuf) {
        let stem = format!("{sha256}-{}", self.engine_key);
        (
            self.dir.join(format!("{stem}.cwasm")),
            self.dir.join(format!("{stem}.check")),
        )
    }

    /// True when a precompiled file for `sha256` exists (not verified).
    pub fn contains(&self, sha256: &str) -> bool {
        let (code, check) = self.paths(sha256);
        code.is_file() && check.is_file()
    }

    /// The cached component, or `None` when absent or not verifiable.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let (code, check) = self.paths(sha256);
        let expected = std::fs::read_to_string(&check).ok()?;
        let verified = std::fs::read(&code)
            .ok()
            .is_some_and(|bytes| checksum(&bytes) == expected.trim());
        if !verified {
            let _ = std::fs::remove_file(&check);
            let _ = std::fs::remove_file(&code);
            return None;
        }
        // SAFETY: the file was written by `store` below from
        // `Component::serialize` of this engine configuration (the name
        // binds it to the engine key), its length and CRC match what was
        // recorded after it was complete, and wasmtime re-checks version and
        // configuration before using it. See the module docs.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize_file(engine, &code) };
        match component {
            Ok(component) => Some(component),
            Err(_) => {
                let _ = std::fs::remove_file(&check);
                let _ = std::fs::remove_file(&code);
                None
            }
        }
    }

    /// Writes a serialized component. Failures only cost a recompile.
    pub fn store(&self, sha256: &str, serialized: &[u8]) -> std::io::Result<()> {
        let (code, check) = self.paths(sha256);
        write_then_rename(&self.dir, &code, serialized)?;
        write_then_rename(&self.dir, &check, checksum(serialized).as_bytes())
    }
}

fn write_then_rename(dir: &Path, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.unwrap_or_default(),
        std::process::id()
    ));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Length and CRC-32: catches torn and corrupted files at memory speed.
fn checksum(bytes: &[u8]) -> String {
    format!("{} {:08x}", bytes.len(), crc32fast::hash(bytes))
}

/// A short stable key for the engine's compilation settings.
fn engine_key(engine: &Engine, transform: &str) -> String {
    let mut hasher = Sha256Hasher(Sha256::new());
    WASMTIME_VERSION.hash(&mut hasher);
    transform.hash(&mut hasher);
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
mod tests {
    use super::*;

    #[test]
    fn wasmtime_version_matches_the_lockfile() {
        let lock =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Cargo.lock"))
                .unwrap();
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
    fn the_checksum_changes_with_any_byte_or_the_length() {
        let bytes = b"serialized component".to_vec();
        let good = checksum(&bytes);
        let mut flipped = bytes.clone();
        flipped[3] ^= 1;
        assert_ne!(checksum(&flipped), good);
        assert_ne!(checksum(&bytes[..bytes.len() - 1]), good);
        assert!(good.starts_with("20 "));
    }
}
