//! What the sandbox accepts at load, what it rejects (and how it says so),
//! and the compiled-code caches.

use stratbox_sandbox::{LoadError, Sandbox, SandboxConfig};

use crate::support::{
    path_str, plugin, plugin_bytes, scratch, stderr, stdout, stratbox, wasm_target_dir,
};

fn sandbox_in(dir: &std::path::Path) -> Sandbox {
    Sandbox::new(SandboxConfig {
        cache_dir: Some(dir.to_path_buf()),
        ..SandboxConfig::default()
    })
    .unwrap()
}

#[test]
fn a_filesystem_importing_plugin_is_rejected_naming_the_import() {
    let dir = scratch("reject-fs");
    let err = sandbox_in(&dir)
        .load(&plugin_bytes("hostile/fs-import"))
        .unwrap_err();
    let LoadError::ForbiddenImports { imports, .. } = &err else {
        panic!("expected forbidden imports, got {err}");
    };
    assert!(
        imports.iter().any(|i| i.starts_with("wasi:filesystem/")),
        "{imports:?}"
    );
    let message = err.to_string();
    assert!(message.contains("wasi:filesystem/"), "{message}");
    assert!(message.contains("stratbox:strategy/log@0.3.0"), "{message}");

    let out = stratbox(
        &dir,
        &["plugin", "inspect", path_str(&plugin("hostile/fs-import"))],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("forbidden import"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("wasi:filesystem/"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn another_contract_version_is_rejected() {
    let dir = scratch("reject-version");
    let err = sandbox_in(&dir)
        .load(&plugin_bytes("hostile/wrong-version"))
        .unwrap_err();
    assert!(matches!(err, LoadError::ContractVersion { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("stratbox:strategy@0.99.0"), "{message}");
    // It names every version the host does speak.
    assert!(message.contains("stratbox:strategy@0.1.0"), "{message}");
    assert!(message.contains("stratbox:strategy@0.2.0"), "{message}");
}

#[test]
fn non_wasm_and_core_modules_are_rejected_clearly() {
    let dir = scratch("reject-format");
    let sandbox = sandbox_in(&dir);
    assert!(matches!(
        sandbox.load(b"#!/bin/sh\necho hi\n"),
        Err(LoadError::NotWasm)
    ));
    assert!(matches!(sandbox.load(b""), Err(LoadError::NotWasm)));
    plugin("ema-crossover");
    let core = wasm_target_dir().join("wasm32-unknown-unknown/plugin/ema_crossover.wasm");
    let err = sandbox.load(&std::fs::read(core).unwrap()).unwrap_err();
    assert!(matches!(err, LoadError::CoreModule), "{err}");
    assert!(err.to_string().contains("stratbox plugin build"));
    // A truncated component is invalid, not a crash.
    let bytes = plugin_bytes("ema-crossover");
    let err = sandbox.load(&bytes[..bytes.len() / 2]).unwrap_err();
    assert!(matches!(err, LoadError::Invalid(_)), "{err}");
}

#[test]
fn the_second_load_comes_from_the_precompiled_cache() {
    let dir = scratch("cache");
    let bytes = plugin_bytes("ema-crossover");
    let first = sandbox_in(&dir).load(&bytes).unwrap();
    assert_eq!(first.source, "compiled");
    // A new process (a new sandbox) finds it on disk.
    let sandbox = sandbox_in(&dir);
    let second = sandbox.load(&bytes).unwrap();
    assert_eq!(second.source, "disk-cache");
    assert_eq!(second.sha256, first.sha256);
    // The same sandbox keeps it in memory.
    assert!(std::sync::Arc::ptr_eq(
        &second,
        &sandbox.load(&bytes).unwrap()
    ));
    // A corrupted cache file is discarded and the plugin recompiled.
    let compiled_dir = dir.join("compiled");
    for entry in std::fs::read_dir(&compiled_dir).unwrap() {
        let path = entry.unwrap().path();
        let mut data = std::fs::read(&path).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        std::fs::write(&path, data).unwrap();
    }
    let third = sandbox_in(&dir).load(&bytes).unwrap();
    assert_eq!(third.source, "compiled");
}

#[test]
fn inspect_shows_schema_sha_and_imports() {
    let dir = scratch("inspect");
    let out = stratbox(
        &dir,
        &[
            "plugin",
            "inspect",
            path_str(&plugin("ema-crossover")),
            "--json",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(info["name"], "EMA Crossover");
    assert_eq!(
        info["imports"],
        serde_json::json!(["stratbox:strategy/log@0.3.0"])
    );
    assert_eq!(info["sha256"].as_str().unwrap().len(), 64);
    let names: Vec<&str> = info["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["fast_period", "slow_period", "allow_short"]);
    assert_eq!(info["params"][0]["type"], "int");
    assert_eq!(info["params"][0]["default"], 12);
    assert_eq!(info["params"][2]["default"], false);
    // It reads only closes, so only closes cross into the sandbox.
    assert_eq!(info["columns"], serde_json::json!(["close"]));
}

/// The upload's quick check (no compile) and a full load agree: both
/// accept, or both refuse with the same words, and name the same runtime.
#[test]
fn the_precheck_agrees_with_a_full_load() {
    let dir = scratch("precheck");
    let sandbox = sandbox_in(&dir);
    let fixture = crate::support::workspace().join("tests/fixtures/ema-crossover-0.1.0.wasm");
    let cases: Vec<(String, Vec<u8>)> = vec![
        ("ema-crossover".into(), plugin_bytes("ema-crossover")),
        ("0.1.0 fixture".into(), std::fs::read(fixture).unwrap()),
        (
            "wrong-version".into(),
            plugin_bytes("hostile/wrong-version"),
        ),
        ("fs-import".into(), plugin_bytes("hostile/fs-import")),
        ("not wasm".into(), b"hello".to_vec()),
        ("core module".into(), b"\0asm\x01\0\0\0".to_vec()),
    ];
    let mut accepted = 0;
    for (name, bytes) in cases {
        let quick = stratbox_sandbox::precheck(&bytes);
        let full = sandbox.load(&bytes);
        match (quick, full) {
            (Ok(quick), Ok(full)) => {
                assert_eq!(quick.sha256, full.sha256, "{name}");
                assert_eq!(quick.runtime, full.runtime, "{name}");
                assert_eq!(quick.contract_version, full.contract_version, "{name}");
                accepted += 1;
            }
            (Err(quick), Err(full)) => assert_eq!(quick.to_string(), full.to_string(), "{name}"),
            (quick, full) => panic!(
                "{name}: precheck {quick:?}, load {:?}",
                full.map(|p| p.sha256.clone())
            ),
        }
    }
    assert_eq!(accepted, 2);
}

/// Slots of one worker that get the first tasks of a new strategy at once
/// share one load: one compile, one plugin.
#[test]
fn concurrent_loads_of_new_bytes_compile_once() {
    let dir = scratch("load-once");
    let sandbox = std::sync::Arc::new(sandbox_in(&dir));
    let bytes = std::sync::Arc::new(plugin_bytes("ema-crossover"));
    let start = std::sync::Arc::new(std::sync::Barrier::new(4));
    let loads: Vec<_> = (0..4)
        .map(|_| {
            let (sandbox, bytes, start) = (sandbox.clone(), bytes.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                sandbox.load(&bytes).unwrap()
            })
        })
        .collect();
    let plugins: Vec<_> = loads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(plugins[0].source, "compiled");
    for plugin in &plugins[1..] {
        assert!(std::sync::Arc::ptr_eq(plugin, &plugins[0]), "loaded twice");
    }
}
