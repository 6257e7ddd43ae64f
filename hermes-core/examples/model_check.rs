//! Runs the stateright model of hermes-core (`tests/model/mod.rs`) to a chosen step bound.
//!
//! ```text
//! cargo run --release -p hermes-core --example model_check -- --steps 22
//! cargo run --release -p hermes-core --example model_check -- --model lossy-one-key --timer-fires 2
//! cargo run --release -p hermes-core --example model_check -- --model two-keys --steps 0 --threads 2
//! ```
//!
//! Every state reachable in at most `--steps` steps is checked; `--steps 0` checks every reachable
//! state (every model is finite). A bounded run is exact only on one thread (the default): with
//! more, a state first reached by a longer path may be cut off at the bound, so keep `--threads`
//! for unbounded runs.
//!
//! Prints the state counts and the wall time of each run, and a readable counterexample for every
//! violated property; exits with status 1 if any property is violated.

#[path = "../tests/model/mod.rs"]
mod model;

use model::{run, Faults, ModelConfig};
use std::process::ExitCode;

struct Args {
    model: String,
    timer_fires: u64,
    steps: usize,
    threads: usize,
}

const MODELS: &str = "one-key, two-keys, lossy-one-key, lossy-two-keys, all";

fn models(name: &str, timer_fires: u64) -> Result<Vec<ModelConfig>, String> {
    let lossy = Faults::Lossy { timer_fires };
    Ok(match name {
        "one-key" => vec![ModelConfig::one_key(Faults::Duplicating)],
        "two-keys" => vec![ModelConfig::two_keys(Faults::Duplicating)],
        "lossy-one-key" => vec![ModelConfig::one_key(lossy)],
        "lossy-two-keys" => vec![ModelConfig::two_keys(lossy)],
        "all" => vec![
            ModelConfig::one_key(Faults::Duplicating),
            ModelConfig::two_keys(Faults::Duplicating),
            ModelConfig::one_key(lossy),
            ModelConfig::two_keys(lossy),
        ],
        #[cfg(feature = "planted-bugs")]
        "read-in-invalid" => vec![ModelConfig::read_in_invalid()],
        other => return Err(format!("unknown model `{other}` (one of: {MODELS})")),
    })
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        model: "one-key".into(),
        timer_fires: 1,
        steps: 22,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--steps" => {
                let text = value("--steps")?;
                args.steps = text
                    .parse()
                    .map_err(|_| format!("--steps needs a number, got `{text}`"))?;
            }
            "--threads" => {
                let text = value("--threads")?;
                args.threads = text
                    .parse()
                    .map_err(|_| format!("--threads needs a number, got `{text}`"))?;
            }
            "--model" => args.model = value("--model")?,
            "--timer-fires" => {
                let text = value("--timer-fires")?;
                args.timer_fires = text
                    .parse()
                    .map_err(|_| format!("--timer-fires needs a number, got `{text}`"))?;
            }
            "-h" | "--help" => {
                return Err(format!(
                    "usage: model_check [--model NAME] [--steps N] [--threads N] [--timer-fires N]\n\
                     models: {MODELS}\n\
                     --timer-fires: how often each replica's timer may fire in the lossy models"
                ));
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    models(&args.model, args.timer_fires)?;
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let max_steps = (args.steps > 0).then_some(args.steps);
    let mut violated = false;
    let configs = models(&args.model, args.timer_fires).expect("checked by parse_args");
    for cfg in configs {
        let label = format!("{} ({:?})", cfg.name, cfg.faults);
        let report = run(cfg, max_steps, args.threads.max(1));
        println!("{label}: {report}");
        violated |= !report.violations.is_empty();
    }
    if violated {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
