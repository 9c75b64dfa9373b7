//! What runs a strategy inside its component: compiled code (Rust, C…),
//! or an interpreter built in (CPython from componentize-py, SpiderMonkey
//! from componentize-js). An interpreter burns far more fuel per bar, so
//! the fuel budget is per runtime (docs/sandbox.md, "Fuel per runtime").
//!
//! The runtime is read from markers the two toolchains leave in every
//! component they build. A component claiming an interpreter it does not
//! carry only gets that interpreter's budget, which is still bounded, so
//! the detection needs to be right for honest builds, not unforgeable.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GuestRuntime {
    /// Compiled to wasm ahead of time: the Rust SDK, or any other.
    Compiled,
    /// CPython, embedded by componentize-py.
    Python,
    /// SpiderMonkey (StarlingMonkey), embedded by componentize-js.
    Javascript,
}

/// componentize-py links its runtime as this shared library.
const PYTHON_MARKER: &[u8] = b"libcomponentize_py_runtime.so";
/// componentize-js embeds the StarlingMonkey engine, which names itself;
/// componentize-qjs (QuickJS, experimental in the JS SDK) names itself.
const JAVASCRIPT_MARKERS: [&[u8]; 2] = [b"StarlingMonkey", b"componentize-qjs"];

impl GuestRuntime {
    /// Reads the runtime from a component's bytes (a few ms for 18 MB).
    pub fn detect(bytes: &[u8]) -> Self {
        if memchr::memmem::find(bytes, PYTHON_MARKER).is_some() {
            GuestRuntime::Python
        } else if JAVASCRIPT_MARKERS
            .iter()
            .any(|marker| memchr::memmem::find(bytes, marker).is_some())
        {
            GuestRuntime::Javascript
        } else {
            GuestRuntime::Compiled
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            GuestRuntime::Compiled => "compiled",
            GuestRuntime::Python => "python",
            GuestRuntime::Javascript => "javascript",
        }
    }

    /// How an author of this runtime builds a component that imports
    /// nothing but the log: added to a refusal of WASI imports.
    pub fn build_hint(self) -> &'static str {
        match self {
            GuestRuntime::Compiled => {
                "build it with `stratbox plugin build DIR` (wasm32-unknown-unknown), or drop the \
                 code that needs the system (files, clock, entropy, environment)"
            }
            GuestRuntime::Python => {
                "this Python component was built without `--stub-wasi`; build it with \
                 `stratbox plugin build DIR`, or run componentize-py with `--stub-wasi`"
            }
            GuestRuntime::Javascript => {
                "build it with `stratbox plugin build DIR`, or run componentize-js with the \
                 features stdio, random, clocks, http and fetch-event disabled"
            }
        }
    }
}

impl std::fmt::Display for GuestRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_name_the_runtime() {
        let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
        assert_eq!(GuestRuntime::detect(&bytes), GuestRuntime::Compiled);
        bytes.extend_from_slice(b"..StarlingMonkey..");
        assert_eq!(GuestRuntime::detect(&bytes), GuestRuntime::Javascript);
        bytes.extend_from_slice(b"libcomponentize_py_runtime.so");
        assert_eq!(GuestRuntime::detect(&bytes), GuestRuntime::Python);
    }
}
