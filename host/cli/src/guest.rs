//! Strategies in Python and JavaScript: finding (or installing) their
//! toolchains, building them into components, and scaffolding new ones.
//!
//! A Python strategy is a directory with `app.py`, built by componentize-py
//! with `--stub-wasi`; a JavaScript one has `strategy.js`, built by
//! componentize-js through `sdk/js/build.mjs` with every WASI feature off.
//! Both come out importing nothing but the log (docs/languages.md).
//!
//! Builds are cached by the sha256 of everything that goes in (sources,
//! SDK, contract, toolchain version): the toolchains are not byte-
//! reproducible, and a rebuild costs 7-18 s, so the same inputs give the
//! same component file, and its sha256 stays the strategy's identity.

use anyhow::{anyhow, bail, Context};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::write_atomically;

/// The componentize-py release the Python SDK is tested with.
pub const COMPONENTIZE_PY: &str = "0.25.1";
/// The componentize-js release the JavaScript SDK is tested with.
pub const COMPONENTIZE_JS: &str = "0.23.0";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    /// The language of the strategy in `dir`, from the file that starts it.
    pub fn detect(dir: &Path) -> anyhow::Result<Self> {
        if dir.join("Cargo.toml").is_file() {
            Ok(Lang::Rust)
        } else if dir.join("app.py").is_file() {
            Ok(Lang::Python)
        } else if ["strategy.js", "strategy.mjs", "strategy.ts", "strategy.mts"]
            .iter()
            .any(|name| dir.join(name).is_file())
        {
            Ok(Lang::Js)
        } else if !dir.is_dir() {
            bail!("{} is not a directory", dir.display())
        } else {
            bail!(
                "{}: no strategy found; a Rust strategy has Cargo.toml, a Python one app.py, \
                 a JavaScript one strategy.js or strategy.ts (`stratbox plugin new --lang rust|python|js DIR` \
                 makes one)",
                dir.display()
            )
        }
    }

    fn label(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }
}

/// The repository this binary was built from: the SDKs and the contract.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `$STRATBOX_TOOLCHAINS`, else `toolchains/` in the sandbox's cache
/// directory (`~/.cache/stratbox`).
pub fn toolchain_dir(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os("STRATBOX_TOOLCHAINS").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    stratbox_sandbox::default_cache_dir()
        .map(|d| d.join("toolchains"))
        .ok_or_else(|| anyhow!("no cache directory: set STRATBOX_TOOLCHAINS or HOME"))
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let tail: Vec<&str> = stderr.lines().chain(stdout.lines()).collect();
        let tail = tail[tail.len().saturating_sub(20)..].join("\n");
        bail!("{what} failed ({}):\n{tail}", output.status);
    }
    Ok(())
}

/// componentize-py: in the toolchain directory, installed there from PyPI
/// on first use.
pub fn componentize_py(toolchains: &Path) -> anyhow::Result<PathBuf> {
    let venv = toolchains.join("py");
    let tool = venv.join("bin/componentize-py");
    let version_ok = |tool: &Path| {
        Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(COMPONENTIZE_PY))
    };
    if version_ok(&tool) {
        return Ok(tool);
    }
    eprintln!(
        "installing componentize-py {COMPONENTIZE_PY} into {} (once)",
        venv.display()
    );
    let missing = |e: anyhow::Error| {
        anyhow!(
            "Python strategies need componentize-py {COMPONENTIZE_PY}, and installing it failed: \
             {e:#}\nInstall Python 3.10+ with venv and pip (Debian: apt install python3-venv), \
             or put componentize-py {COMPONENTIZE_PY} at {}",
            tool.display()
        )
    };
    run(
        Command::new("python3").arg("-m").arg("venv").arg(&venv),
        "python3 -m venv",
    )
    .map_err(missing)?;
    run(
        Command::new(venv.join("bin/pip")).args([
            "install",
            "--quiet",
            &format!("componentize-py=={COMPONENTIZE_PY}"),
        ]),
        "pip install componentize-py",
    )
    .map_err(missing)?;
    if !version_ok(&tool) {
        return Err(missing(anyhow!("{} does not run", tool.display())));
    }
    Ok(tool)
}

/// componentize-js: an npm package in the toolchain directory, installed
/// there from npm on first use. Returns the directory holding `node_modules`.
pub fn componentize_js(toolchains: &Path) -> anyhow::Result<PathBuf> {
    let prefix = toolchains.join("js");
    let manifest = prefix.join("node_modules/@bytecodealliance/componentize-js/package.json");
    let version_ok = || {
        std::fs::read_to_string(&manifest)
            .is_ok_and(|m| m.contains(&format!("\"version\": \"{COMPONENTIZE_JS}\"")))
    };
    if version_ok() {
        return Ok(prefix);
    }
    eprintln!(
        "installing componentize-js {COMPONENTIZE_JS} into {} (once)",
        prefix.display()
    );
    std::fs::create_dir_all(&prefix)?;
    run(
        Command::new("npm")
            .arg("install")
            .arg("--silent")
            .arg("--no-audit")
            .arg("--no-fund")
            .arg("--prefix")
            .arg(&prefix)
            .arg(format!(
                "@bytecodealliance/componentize-js@{COMPONENTIZE_JS}"
            )),
        "npm install componentize-js",
    )
    .map_err(|e| {
        anyhow!(
            "JavaScript strategies need componentize-js {COMPONENTIZE_JS}, and installing it \
             failed: {e:#}\nInstall Node.js 18+ with npm (Debian: apt install nodejs npm)"
        )
    })?;
    if !version_ok() {
        bail!(
            "npm did not install componentize-js {COMPONENTIZE_JS} into {}",
            prefix.display()
        );
    }
    Ok(prefix)
}

/// Every file under `dir` whose name ends in one of `extensions`, sorted,
/// skipping caches and tests' outputs.
fn sources(dir: &Path, extensions: &[&str], out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !name.starts_with('.')
                && !["__pycache__", "node_modules", "dist", "out"].contains(&name.as_str())
            {
                sources(&path, extensions, out)?;
            }
        } else if extensions.iter().any(|e| name.ends_with(e)) {
            out.push(path);
        }
    }
    Ok(())
}

/// The build cache key: every input file's path and bytes, the tool and
/// its version.
fn inputs_key(roots: &[(&str, &Path)], extensions: &[&str], tool: &str) -> anyhow::Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(tool.as_bytes());
    for (label, root) in roots {
        let mut files = Vec::new();
        sources(root, extensions, &mut files)?;
        for file in files {
            let relative = file.strip_prefix(root).unwrap_or(&file);
            hasher.update(format!("\0{label}/{}\0", relative.display()).as_bytes());
            hasher.update(std::fs::read(&file)?);
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Writes a component to the path it is given.
type Produce = dyn Fn(&Path) -> anyhow::Result<()>;

/// The weval release componentize-js's ahead-of-time mode is tested with.
pub const WEVAL: &str = "0.5.0";

/// How `stratbox plugin build` builds a guest strategy.
#[derive(Debug, Default)]
pub struct BuildOptions<'a> {
    pub toolchains: Option<&'a Path>,
    pub out: Option<&'a Path>,
    pub sdk: Option<&'a Path>,
    /// JavaScript only: weval ahead-of-time compilation.
    pub aot: bool,
}

/// weval in the toolchain directory, for `--aot`; it takes 10-20 minutes
/// to build from crates.io, so it is never installed behind your back.
fn weval(toolchains: &Path) -> anyhow::Result<PathBuf> {
    let bin = toolchains.join("weval/bin/weval");
    if bin.is_file() {
        return Ok(bin);
    }
    bail!(
        "--aot needs weval {WEVAL} at {}; install it once (10-20 minutes) with\n  cargo install weval --version {WEVAL} --locked --root {}",
        bin.display(),
        toolchains.join("weval").display()
    )
}

/// The world of the Python strategy in `dir`: `portfolio-plugin` when its
/// `app.py` defines `Portfolio` at top level (`Portfolio =
/// stratbox.export(...)`, which componentize-py then exports as
/// `app.Portfolio`), else `plugin` (`Strategy = ...`). The world is read
/// from `app.py`, which is in the build's key.
fn python_world(dir: &Path) -> anyhow::Result<&'static str> {
    let app = dir.join("app.py");
    let source =
        std::fs::read_to_string(&app).with_context(|| format!("cannot read {}", app.display()))?;
    Ok(if defines_portfolio(&source) {
        "portfolio-plugin"
    } else {
        "plugin"
    })
}

/// Whether Python `source` binds `Portfolio` at top level: a line that
/// starts with `Portfolio`, then `=` or `:` (an annotation), spaces
/// between allowed (`(?m)^Portfolio[ \t]*[=:]`).
fn defines_portfolio(source: &str) -> bool {
    source.lines().any(|line| {
        line.strip_prefix("Portfolio")
            .is_some_and(|rest| rest.trim_start_matches([' ', '\t']).starts_with(['=', ':']))
    })
}

/// Builds the Python or JavaScript strategy in `dir`; returns the
/// component's path.
pub fn build(dir: &Path, lang: Lang, options: &BuildOptions<'_>) -> anyhow::Result<PathBuf> {
    let (toolchain_flag, out, sdk_flag) = (options.toolchains, options.out, options.sdk);
    let toolchains = toolchain_dir(toolchain_flag)?;
    let root = repo_root();
    let wit = root.join("wit");
    let name = match (strategy_name(dir, lang), options.aot) {
        (name, true) => format!("{name}-aot"),
        (name, false) => name,
    };
    let builds = toolchains.join("builds");
    let out = match out {
        Some(out) => out.to_path_buf(),
        None => toolchains.join("plugins").join(format!("{name}.wasm")),
    };
    let (key, produce): (String, Box<Produce>) = match lang {
        Lang::Rust => bail!("Rust strategies are built with cargo"),
        Lang::Python => {
            let sdk = sdk_flag.map_or_else(|| root.join("sdk/python/src"), Path::to_path_buf);
            if !sdk.join("stratbox").is_dir() {
                bail!(
                    "--sdk: no Python SDK (a `stratbox` package) in {}",
                    sdk.display()
                );
            }
            let tool = componentize_py(&toolchains)?;
            let world = python_world(dir)?;
            let key = inputs_key(
                &[("app", dir), ("sdk", &sdk), ("wit", &wit)],
                &[".py", ".wit"],
                &format!("componentize-py {COMPONENTIZE_PY} --stub-wasi"),
            )?;
            let dir = dir.to_path_buf();
            (
                key,
                Box::new(move |target: &Path| {
                    run(
                        Command::new(&tool)
                            .arg("-d")
                            .arg(&wit)
                            .args(["-w", world, "componentize", "--stub-wasi", "-p"])
                            .arg(&dir)
                            .arg("-p")
                            .arg(&sdk)
                            .arg("app")
                            .arg("-o")
                            .arg(target),
                        "componentize-py",
                    )
                }),
            )
        }
        Lang::Js => {
            let sdk = sdk_flag.map_or_else(|| root.join("sdk/js"), Path::to_path_buf);
            let script = sdk.join("build.mjs");
            if !script.is_file() {
                bail!("--sdk: no JavaScript SDK (build.mjs) in {}", sdk.display());
            }
            let weval = options.aot.then(|| weval(&toolchains)).transpose()?;
            let prefix = componentize_js(&toolchains)?;
            let key = inputs_key(
                &[("app", dir), ("sdk", &sdk), ("wit", &wit)],
                &[".js", ".mjs", ".ts", ".mts", ".wit"],
                &format!(
                    "componentize-js {COMPONENTIZE_JS}{}",
                    if weval.is_some() {
                        format!(" aot weval {WEVAL}")
                    } else {
                        String::new()
                    }
                ),
            )?;
            let dir = dir.to_path_buf();
            (
                key,
                Box::new(move |target: &Path| {
                    let mut command = Command::new("node");
                    command
                        .arg(&script)
                        .arg("--wit")
                        .arg(&wit)
                        .arg("--src")
                        .arg(&dir)
                        .arg("--out")
                        .arg(target)
                        .arg("--toolchain")
                        .arg(&prefix);
                    match &weval {
                        Some(weval) => command.arg("--weval").arg(weval),
                        // build.mjs honours it too: a plain build must stay
                        // plain, or the cache would mix the two.
                        None => command.env_remove("STRATBOX_WEVAL"),
                    };
                    run(&mut command, "componentize-js")
                }),
            )
        }
    };
    let cached = builds.join(format!("{key}.wasm"));
    if !cached.is_file() {
        std::fs::create_dir_all(&builds)?;
        let partial = builds.join(format!("{key}.{}.partial.wasm", std::process::id()));
        produce(&partial).with_context(|| format!("cannot build {}", dir.display()))?;
        std::fs::rename(&partial, &cached)?;
    }
    let component = std::fs::read(&cached)?;
    if out != cached {
        write_atomically(&out, &component)?;
    }
    Ok(out)
}

/// `ema-crossover-python` for `plugins/ema-crossover/python`, else the
/// directory's own name.
fn strategy_name(dir: &Path, lang: Lang) -> String {
    let canonical = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let own = canonical
        .file_name()
        .map_or("strategy".into(), |n| n.to_string_lossy().into_owned());
    if own == lang.label() {
        let parent = canonical
            .parent()
            .and_then(Path::file_name)
            .map_or("strategy".into(), |n| n.to_string_lossy().into_owned());
        format!("{parent}-{}", lang.label())
    } else {
        own
    }
}

/// The files of a new strategy: the ema-crossover example of its language,
/// which the repository's own tests keep working.
const PYTHON_SCAFFOLD: &[(&str, &str)] = &[
    (
        "app.py",
        include_str!("../../../plugins/ema-crossover/python/app.py"),
    ),
    (
        "test_app.py",
        include_str!("../../../plugins/ema-crossover/python/test_app.py"),
    ),
];

const JS_SCAFFOLD: &[(&str, &str)] = &[
    (
        "strategy.js",
        include_str!("../../../plugins/ema-crossover/js/strategy.js"),
    ),
    (
        "strategy.test.mjs",
        include_str!("../../../plugins/ema-crossover/js/strategy.test.mjs"),
    ),
];

/// Where the example's test finds the SDK's resolver hook, in the
/// repository; a scaffold points it at the SDK it was made with.
const JS_REGISTER_IN_REPO: &str = "'../../../sdk/js/register.mjs'";

/// JavaScript: a package.json marking the directory's `.js` files as ES
/// modules (the test imports `@stratbox/sdk` through the SDK's hook).
fn js_glue() -> (&'static str, String) {
    (
        "package.json",
        "{\n  \"name\": \"strategy\",\n  \"private\": true,\n  \"type\": \"module\"\n}\n".into(),
    )
}

/// Creates a Python or JavaScript strategy in `dir` that passes its own
/// tests and builds with `stratbox plugin build`.
pub fn scaffold(dir: &Path, lang: Lang, sdk_flag: Option<&Path>) -> super::CliResult {
    use super::CliError;
    if dir.exists() {
        return Err(CliError::input(anyhow!("{} already exists", dir.display())));
    }
    let root = repo_root();
    let (sdk, files, test_hint): (PathBuf, &[(&str, &str)], String) = match lang {
        Lang::Rust => return Err(CliError::input(anyhow!("Rust strategies use cargo"))),
        Lang::Python => (
            sdk_flag.map_or_else(|| root.join("sdk/python/src"), Path::to_path_buf),
            PYTHON_SCAFFOLD,
            format!("python -m pytest {}", dir.display()),
        ),
        Lang::Js => (
            sdk_flag.map_or_else(|| root.join("sdk/js"), Path::to_path_buf),
            JS_SCAFFOLD,
            format!("node --test {}", dir.display()),
        ),
    };
    let sdk = std::fs::canonicalize(&sdk)
        .with_context(|| format!("--sdk: no SDK at {}", sdk.display()))
        .map_err(CliError::input)?;
    let register = format!("'file://{}/register.mjs'", sdk.display());
    for (name, contents) in files {
        let contents = contents.replace(JS_REGISTER_IN_REPO, &register);
        write_atomically(&dir.join(name), contents.as_bytes()).map_err(CliError::run)?;
    }
    let glue = match lang {
        Lang::Python => (
            "conftest.py",
            format!(
                "\"\"\"pytest: import app.py and the stratbox SDK.\"\"\"\n\nimport sys\nfrom pathlib import Path\n\nfor path in (str(Path(__file__).resolve().parent), {:?}):\n    if path not in sys.path:\n        sys.path.insert(0, path)\n",
                sdk.display().to_string()
            ),
        ),
        _ => js_glue(),
    };
    write_atomically(&dir.join(glue.0), glue.1.as_bytes()).map_err(CliError::run)?;
    outln!("created {} ({})", dir.display(), lang.label());
    outln!("  test natively:  {test_hint}");
    outln!("  build:          stratbox plugin build {}", dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_top_level_portfolio_picks_the_portfolio_world() {
        assert!(defines_portfolio(
            "import stratbox\n\nPortfolio = stratbox.export(P)\n"
        ));
        assert!(defines_portfolio("Portfolio: Any = stratbox.export(P)"));
        assert!(defines_portfolio("x = 1\nPortfolio\t= f()\n"));
        // Not at top level, another name, or only mentioned.
        assert!(!defines_portfolio("Strategy = stratbox.export(S)\n"));
        assert!(!defines_portfolio("    Portfolio = f()\n"));
        assert!(!defines_portfolio("PortfolioStrategy = 1\n"));
        assert!(!defines_portfolio("# Portfolio = stratbox.export(P)\n"));
        assert!(!defines_portfolio(
            "class P(stratbox.PortfolioStrategy): ...\n"
        ));
    }
}
