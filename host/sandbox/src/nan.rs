//! NaN canonicalisation where a NaN's bits can be observed.
//!
//! WebAssembly leaves the sign and payload of a NaN that arithmetic
//! produces to the CPU: `0.0 / 0.0` is `0xfff8…` on x86-64 and `0x7ff8…`
//! on aarch64. A strategy that reads those bits (`to_bits`, `total_cmp`,
//! `is_sign_negative`, a float stored and reloaded as an integer) would
//! give different reports on different machines, against docs/conventions/contract.md ("Determinism").
//!
//! Cranelift can canonicalise after every float operation, but that puts
//! a compare and a blend (about 7 cycles) on every float dependency chain:
//! an EMA crossover runs a quarter slower. This pass instead rewrites each
//! core module of a component, before compilation, so that every NaN is
//! made canonical (`0x7fc00000` / `0x7ff8000000000000`) at the only places
//! where its bits can leave float arithmetic:
//! - a float stored to linear memory (`f32.store`, `f64.store`);
//! - a float reinterpreted as an integer (`i32.reinterpret_f32`,
//!   `i64.reinterpret_f64`);
//! - the sign operand of `copysign`, whose sign bit reaches a number;
//! - a scalar float put into a vector lane (`splat`, `replace_lane`), and
//!   the result of every float SIMD operation, since vector lanes are
//!   freely read as integers.
//!
//! Everything else only moves a NaN between float values, where no
//! instruction can tell one NaN from another (comparisons are false,
//! arithmetic gives a NaN), or is a fixed bit operation (`abs`, `neg`).
//! Values cross the component boundary through memory (stores above) or
//! as host-read floats that the engine rejects when NaN. One visible
//! difference from plain WebAssembly: a NaN's payload does not survive a
//! store, so NaN-boxing code must keep its boxes as integers.

use wasm_encoder::reencode::{self, Error, Reencode, ReencodeComponent};
use wasm_encoder::{CodeSection, Function, Ieee32, Ieee64, Instruction, ValType};
use wasmparser::{FunctionBody, Operator, Parser, Payload};

/// Part of the precompiled-cache key: bump it whenever the rewrite changes.
pub const PASS_VERSION: &str = "nan-at-observation-1";

const CANONICAL_F32: u32 = 0x7fc0_0000;
const CANONICAL_F64: u64 = 0x7ff8_0000_0000_0000;

/// The component with every core module rewritten as described above.
pub fn canonicalize(component: &[u8]) -> Result<Vec<u8>, String> {
    // The re-encoder trusts section sizes; malformed input must be an
    // error here, not a panic. Every feature: wasmtime judges them later.
    wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
        .validate_all(component)
        .map_err(|e| format!("invalid component: {e}"))?;
    let mut pass = NanGuard::default();
    let mut out = wasm_encoder::Component::new();
    pass.parse_component(&mut out, Parser::new(0), component)
        .map_err(|e| match e {
            Error::UserError(message) => message,
            other => format!("cannot rewrite the component: {other}"),
        })?;
    Ok(out.finish())
}

#[derive(Default)]
struct NanGuard {
    /// Parameter counts of the functions the current module defines, in
    /// code-section order: new locals are numbered after params and locals.
    params: Vec<u32>,
    next_body: usize,
}

/// What a guard canonicalises, and where.
#[derive(Clone, Copy, PartialEq)]
enum Guard {
    /// The scalar on top of the stack, before the operator.
    F32Before,
    F64Before,
    /// The vector result, after the operator.
    F32x4After,
    F64x2After,
}

fn guard_of(op: &Operator<'_>) -> Option<Guard> {
    use Operator as O;
    Some(match op {
        O::F32Store { .. }
        | O::I32ReinterpretF32
        | O::F32Copysign
        | O::F32x4Splat
        | O::F32x4ReplaceLane { .. } => Guard::F32Before,
        O::F64Store { .. }
        | O::I64ReinterpretF64
        | O::F64Copysign
        | O::F64x2Splat
        | O::F64x2ReplaceLane { .. } => Guard::F64Before,
        O::F32x4Add
        | O::F32x4Sub
        | O::F32x4Mul
        | O::F32x4Div
        | O::F32x4Min
        | O::F32x4Max
        | O::F32x4Sqrt
        | O::F32x4Ceil
        | O::F32x4Floor
        | O::F32x4Trunc
        | O::F32x4Nearest
        | O::F32x4DemoteF64x2Zero
        | O::F32x4RelaxedMadd
        | O::F32x4RelaxedNmadd
        | O::F32x4RelaxedMin
        | O::F32x4RelaxedMax => Guard::F32x4After,
        O::F64x2Add
        | O::F64x2Sub
        | O::F64x2Mul
        | O::F64x2Div
        | O::F64x2Min
        | O::F64x2Max
        | O::F64x2Sqrt
        | O::F64x2Ceil
        | O::F64x2Floor
        | O::F64x2Trunc
        | O::F64x2Nearest
        | O::F64x2PromoteLowF32x4
        | O::F64x2RelaxedMadd
        | O::F64x2RelaxedNmadd
        | O::F64x2RelaxedMin
        | O::F64x2RelaxedMax => Guard::F64x2After,
        _ => return None,
    })
}

/// Scratch locals added to a function, by type, as needed.
#[derive(Default)]
struct Scratch {
    f32: Option<u32>,
    f64: Option<u32>,
    v128: Option<u32>,
}

impl Scratch {
    /// `select(canonical, x, x != x)` on the scalar on top of the stack.
    fn scalar(&self, f: &mut Function, guard: Guard) {
        let (local, nan, ne) = match guard {
            Guard::F32Before => (
                self.f32,
                Instruction::F32Const(Ieee32::new(CANONICAL_F32)),
                Instruction::F32Ne,
            ),
            _ => (
                self.f64,
                Instruction::F64Const(Ieee64::new(CANONICAL_F64)),
                Instruction::F64Ne,
            ),
        };
        let local = local.expect("scratch local allocated in the pre-scan");
        f.instruction(&Instruction::LocalSet(local))
            .instruction(&nan)
            .instruction(&Instruction::LocalGet(local))
            .instruction(&Instruction::LocalGet(local))
            .instruction(&Instruction::LocalGet(local))
            .instruction(&ne)
            .instruction(&Instruction::Select);
    }

    /// `bitselect(canonical, v, v != v)` lane by lane on the vector on top.
    fn vector(&self, f: &mut Function, guard: Guard) {
        let (nan, ne) = if guard == Guard::F32x4After {
            let lane = u128::from(CANONICAL_F32);
            (
                lane | lane << 32 | lane << 64 | lane << 96,
                Instruction::F32x4Ne,
            )
        } else {
            let lane = u128::from(CANONICAL_F64);
            (lane | lane << 64, Instruction::F64x2Ne)
        };
        let local = self.v128.expect("scratch local allocated in the pre-scan");
        f.instruction(&Instruction::LocalSet(local))
            .instruction(&Instruction::V128Const(nan as i128))
            .instruction(&Instruction::LocalGet(local))
            .instruction(&Instruction::LocalGet(local))
            .instruction(&Instruction::LocalGet(local))
            .instruction(&ne)
            .instruction(&Instruction::V128Bitselect);
    }
}

impl Reencode for NanGuard {
    type Error = String;

    fn parse_function_body(
        &mut self,
        code: &mut CodeSection,
        func: FunctionBody<'_>,
    ) -> Result<(), Error<String>> {
        let params = *self.params.get(self.next_body).ok_or_else(|| {
            Error::UserError("a function body has no function declaration".to_string())
        })?;
        self.next_body += 1;

        let mut locals = Vec::new();
        let mut next_local = params;
        for pair in func.get_locals_reader()? {
            let (count, ty) = pair?;
            next_local = next_local
                .checked_add(count)
                .ok_or_else(|| Error::UserError("too many locals".to_string()))?;
            locals.push((count, self.val_type(ty)?));
        }
        let mut needs = [false; 3];
        let mut scan = func.get_operators_reader()?;
        while !scan.eof() {
            match guard_of(&scan.read()?) {
                Some(Guard::F32Before) => needs[0] = true,
                Some(Guard::F64Before) => needs[1] = true,
                Some(_) => needs[2] = true,
                None => {}
            }
        }
        let mut scratch = Scratch::default();
        for (needed, ty, slot) in [
            (needs[0], ValType::F32, &mut scratch.f32),
            (needs[1], ValType::F64, &mut scratch.f64),
            (needs[2], ValType::V128, &mut scratch.v128),
        ] {
            if needed {
                *slot = Some(next_local);
                next_local += 1;
                locals.push((1, ty));
            }
        }

        let mut f = Function::new(locals);
        let mut reader = func.get_operators_reader()?;
        while !reader.eof() {
            let op = reader.read()?;
            let guard = guard_of(&op);
            if let Some(g @ (Guard::F32Before | Guard::F64Before)) = guard {
                scratch.scalar(&mut f, g);
            }
            f.instruction(&self.instruction(op)?);
            if let Some(g @ (Guard::F32x4After | Guard::F64x2After)) = guard {
                scratch.vector(&mut f, g);
            }
        }
        code.function(&f);
        Ok(())
    }

    /// DWARF describes the code as it was; drop it rather than mislead.
    fn parse_custom_section(
        &mut self,
        module: &mut wasm_encoder::Module,
        section: wasmparser::CustomSectionReader<'_>,
    ) -> Result<(), Error<String>> {
        if section.name().starts_with(".debug_") {
            return Ok(());
        }
        reencode::utils::parse_custom_section(self, module, section)
    }
}

impl ReencodeComponent for NanGuard {
    fn parse_component_submodule(
        &mut self,
        component: &mut wasm_encoder::Component,
        parser: Parser,
        module: &[u8],
    ) -> Result<(), Error<String>> {
        self.params = defined_function_params(module)?;
        self.next_body = 0;
        reencode::component_utils::parse_component_submodule(self, component, parser, module)
    }
}

/// The parameter count of each function a core module defines.
fn defined_function_params(module: &[u8]) -> Result<Vec<u32>, Error<String>> {
    let mut type_params = Vec::new();
    let mut params = Vec::new();
    for payload in Parser::new(0).parse_all(module) {
        match payload? {
            Payload::TypeSection(types) => {
                for ty in types.into_iter_err_on_gc_types() {
                    type_params.push(ty?.params().len() as u32);
                }
            }
            Payload::FunctionSection(funcs) => {
                for ty in funcs {
                    let ty = ty? as usize;
                    let count = type_params.get(ty).copied().ok_or_else(|| {
                        Error::UserError(format!("function type {ty} is not defined"))
                    })?;
                    params.push(count);
                }
            }
            // Nested modules are parsed on their own; stop at this one's end.
            Payload::End(_) => break,
            _ => {}
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests;
