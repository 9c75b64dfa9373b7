//! Each observation point, run through wasmtime with Cranelift's own
//! canonicalisation off, so only the pass can make these NaNs canonical.

use super::*;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store};

const X86_DEFAULT_NAN: u64 = 0xfff8_0000_0000_0000;

/// A component whose exports each make a NaN by `0/0` and expose its bits.
const PROBES: &str = r#"
(component
  (core module $m
    (memory (export "memory") 1)
    (func (export "reinterpret") (result i64)
      f64.const 0 f64.const 0 f64.div
      i64.reinterpret_f64)
    (func (export "reinterpret32") (result i32)
      f32.const 0 f32.const 0 f32.div
      i32.reinterpret_f32)
    (func (export "store") (result i64)
      i32.const 8
      f64.const 0 f64.const 0 f64.div
      f64.store
      i32.const 8 i64.load)
    (func (export "copysign") (result f64)
      f64.const 1
      f64.const 0 f64.const 0 f64.div
      f64.copysign)
    (func (export "lanes") (result i64)
      v128.const f64x2 0 0 v128.const f64x2 0 0 f64x2.div
      i64x2.extract_lane 1)
    (func (export "splat") (result i64)
      f64.const 0 f64.const 0 f64.div
      f64x2.splat
      i64x2.extract_lane 0)
    ;; Params and locals keep their numbers: the scratch local comes after.
    (func (export "numbering") (param $x f64) (param $y i64) (result i64)
      (local $z i64)
      i64.const 3 local.set $z
      i32.const 16 local.get $x f64.store
      i32.const 16 i64.load
      local.get $y i64.add
      local.get $z i64.add)
  )
  (core instance $i (instantiate $m))
  (func (export "reinterpret") (result u64) (canon lift (core func $i "reinterpret")))
  (func (export "reinterpret32") (result u32) (canon lift (core func $i "reinterpret32")))
  (func (export "store") (result u64) (canon lift (core func $i "store")))
  (func (export "copysign") (result f64) (canon lift (core func $i "copysign")))
  (func (export "lanes") (result u64) (canon lift (core func $i "lanes")))
  (func (export "splat") (result u64) (canon lift (core func $i "splat")))
  (func (export "numbering") (param "x" f64) (param "y" u64) (result u64)
    (canon lift (core func $i "numbering")))
)
"#;

struct Probes {
    store: Store<()>,
    instance: wasmtime::component::Instance,
}

impl Probes {
    fn new(rewrite: bool) -> Self {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .cranelift_nan_canonicalization(false);
        let engine = Engine::new(&config).expect("engine");
        let original = wat::parse_str(PROBES).expect("probe component parses");
        let bytes = if rewrite {
            canonicalize(&original).expect("pass rewrites the probes")
        } else {
            original
        };
        let component = Component::new(&engine, &bytes).expect("rewritten component compiles");
        let mut store = Store::new(&engine, ());
        let instance = Linker::new(&engine)
            .instantiate(&mut store, &component)
            .expect("instantiates");
        Self { store, instance }
    }

    fn call<P, R>(&mut self, name: &str, params: P) -> R
    where
        P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower,
        R: wasmtime::component::ComponentNamedList + wasmtime::component::Lift,
    {
        let f = self
            .instance
            .get_typed_func::<P, R>(&mut self.store, name)
            .expect("export exists");
        f.call(&mut self.store, params).expect("call succeeds")
    }
}

#[test]
fn every_observation_point_sees_the_canonical_nan() {
    let mut p = Probes::new(true);
    assert_eq!(p.call::<(), (u64,)>("reinterpret", ()).0, CANONICAL_F64);
    assert_eq!(p.call::<(), (u32,)>("reinterpret32", ()).0, CANONICAL_F32);
    assert_eq!(p.call::<(), (u64,)>("store", ()).0, CANONICAL_F64);
    assert_eq!(
        p.call::<(), (f64,)>("copysign", ()).0.to_bits(),
        1f64.to_bits()
    );
    assert_eq!(p.call::<(), (u64,)>("lanes", ()).0, CANONICAL_F64);
    assert_eq!(p.call::<(), (u64,)>("splat", ()).0, CANONICAL_F64);
}

#[test]
fn numbers_pass_through_unchanged() {
    let mut p = Probes::new(true);
    let got = p.call::<(f64, u64), (u64,)>("numbering", (1.5, 10)).0;
    assert_eq!(got, 1.5f64.to_bits() + 10 + 3);
}

/// Without the pass the CPU's own NaN shows: the probes above can fail.
#[cfg(target_arch = "x86_64")]
#[test]
fn without_the_pass_x86_shows_its_default_nan() {
    let mut p = Probes::new(false);
    assert_eq!(p.call::<(), (u64,)>("reinterpret", ()).0, X86_DEFAULT_NAN);
    assert_eq!(p.call::<(), (u64,)>("store", ()).0, X86_DEFAULT_NAN);
    assert_eq!(
        p.call::<(), (f64,)>("copysign", ()).0.to_bits(),
        (-1f64).to_bits()
    );
}

#[test]
fn malformed_components_are_errors_not_panics() {
    assert!(canonicalize(b"\0asm\x0d\0\x01\0garbage").is_err());
    let probes = wat::parse_str(PROBES).expect("probe component parses");
    for cut in [9, probes.len() / 3, probes.len() / 2, probes.len() - 1] {
        assert!(canonicalize(&probes[..cut]).is_err(), "cut at {cut}");
    }
}
