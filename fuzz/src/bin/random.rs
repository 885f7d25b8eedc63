//! The fuzz targets on the stable toolchain, without libFuzzer: replays every
//! file under `fuzz/corpus/<target>/` and `fuzz/artifacts/<target>/` (what `cargo
//! fuzz` found), then feeds random inputs for a time budget. No coverage
//! guidance, so it finds less than `cargo fuzz` does in the same time, but it needs
//! nothing but the pinned toolchain, which is why CI runs it.
//!
//! ```sh
//! cargo run --release --manifest-path fuzz/Cargo.toml --no-default-features \
//!     --bin random -- api 30 [SEED]
//! ```
//!
//! A panic is written to `fuzz/artifacts/<target>/random-<seed>-<n>` (replay it
//! with `cargo fuzz run <target> <file>` or by running this again) and the run
//! exits non-zero.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(target), Some(seconds)) = (args.first(), args.get(1)) else {
        eprintln!("usage: random <api|engine> <seconds> [seed]");
        return ExitCode::FAILURE;
    };
    let run: fn(&[u8]) = match target.as_str() {
        "api" => edgeq_fuzz::api,
        "engine" => edgeq_fuzz::engine,
        _ => {
            eprintln!("unknown target {target}: api or engine");
            return ExitCode::FAILURE;
        }
    };
    let Ok(seconds) = seconds.parse::<u64>() else {
        eprintln!("seconds: a whole number");
        return ExitCode::FAILURE;
    };
    let seed = args.get(2).and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Our own panics are reported by the run, not printed once per input.
    std::panic::set_hook(Box::new(|_| {}));

    let mut replayed = 0;
    for dir in ["corpus", "artifacts"] {
        for file in files(&root.join(dir).join(target)) {
            let data = std::fs::read(&file).unwrap_or_default();
            if let Err(message) = attempt(run, &data) {
                eprintln!("{target}: {} panics: {message}", file.display());
                return ExitCode::FAILURE;
            }
            replayed += 1;
        }
    }

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut rng = seed;
    let mut inputs = 0u64;
    while Instant::now() < deadline {
        let data = random_input(&mut rng);
        if let Err(message) = attempt(run, &data) {
            let dir = root.join("artifacts").join(target);
            let file = dir.join(format!("random-{seed}-{inputs}"));
            let _ = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, &data));
            eprintln!("{target}: panic after {inputs} inputs (seed {seed}): {message}");
            eprintln!("input written to {}", file.display());
            return ExitCode::FAILURE;
        }
        inputs += 1;
    }
    let calls = match target.as_str() {
        "api" => format!("{} requests", edgeq_fuzz::API_REQUESTS.load(Ordering::Relaxed)),
        _ => format!("{} operations", edgeq_fuzz::ENGINE_OPS.load(Ordering::Relaxed)),
    };
    println!(
        "fuzz {target}: {replayed} corpus files and {inputs} random inputs ({calls}) in \
         {seconds} s (seed {seed}): 0 panics"
    );
    ExitCode::SUCCESS
}

/// Runs `run(data)`, turning a panic into its message.
fn attempt(run: fn(&[u8]), data: &[u8]) -> Result<(), String> {
    std::panic::catch_unwind(|| run(data)).map_err(|e| {
        e.downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic".into())
    })
}

/// Files directly in `dir` (none when it does not exist), sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries.filter_map(|e| Some(e.ok()?.path())).filter(|p| p.is_file()).collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Random bytes of a random length (mostly short, sometimes up to 4 KiB), from a
/// splitmix64 stream.
fn random_input(state: &mut u64) -> Vec<u8> {
    let mut next = || {
        *state = edgeq::engine::splitmix64(*state);
        *state
    };
    let len = match next() % 8 {
        0..=4 => next() % 256,
        5 | 6 => next() % 1024,
        _ => next() % 4096,
    } as usize;
    let mut data = Vec::with_capacity(len + 8);
    while data.len() < len {
        data.extend_from_slice(&next().to_le_bytes());
    }
    data.truncate(len);
    data
}
