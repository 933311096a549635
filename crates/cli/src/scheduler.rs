//! The analysis-cycle scheduler of `tradeflow up` and `tradeflow worker inference`
//! (`--cycle-every`): a `trigger` on `ctl.commands` at every multiple of the period (UTC,
//! from the epoch), for the profiles the cycles are for, by default the LLM-driven ones (a
//! profile following a model that is not a rule model: an analyst). The inference workers
//! obey it like an operator's trigger.
//!
//! Several schedulers (one per inference worker) send the same command id for the same slot
//! (`ctl:cycle:<slot start ms>`), which the control state keeps once: one cycle per slot
//! however many of them run.

use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;
use tradeflow_bus::{Bus, Producer};
use tradeflow_core::control::ControlCommand;
use tradeflow_ensemble::Profile;
use tradeflow_inference::stage::ModelSpec;

#[derive(Args, Clone, Debug, Default)]
pub struct CycleArgs {
    /// Run an analysis cycle this often (`90s`, `5m`, `1h`; at least 10 s): the inference
    /// workers analyse the latest candles again and the cycle's profiles decide on it.
    #[arg(long, value_name = "DURATION", value_parser = parse_every)]
    pub cycle_every: Option<Duration>,
    /// Profiles the scheduled cycles are for, comma-separated (default with `up`: the
    /// LLM-driven profiles, those following an LLM analyst).
    #[arg(long, value_delimiter = ',', value_name = "PROFILE")]
    pub cycle_profiles: Vec<String>,
}

/// Shortest period accepted: a cycle asks every analyst, and their answers take seconds.
const MIN_EVERY: Duration = Duration::from_secs(10);

/// `90s`, `5m`, `1h` (a whole number and a unit).
fn parse_every(text: &str) -> Result<Duration, String> {
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(unit_at);
    let n: u64 =
        number.parse().map_err(|_| format!("expected a whole number and s, m or h (e.g. 5m), got {text:?}"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("expected a unit s, m or h after the number (e.g. 5m), got {text:?}")),
    };
    let every = Duration::from_secs(seconds);
    if every < MIN_EVERY {
        return Err(format!("at least {} s, got {text:?}", MIN_EVERY.as_secs()));
    }
    Ok(every)
}

/// The profiles that follow a model that is not a rule model (an LLM analyst).
pub fn llm_driven(profiles: &[Profile]) -> Vec<String> {
    profiles.iter().filter(|p| p.models.keys().any(|m| ModelSpec::parse(m).is_none())).map(|p| p.name.clone()).collect()
}

/// The profiles of the scheduled cycles: those named (each must exist when `known` is given),
/// or the LLM-driven ones of `known`.
pub fn cycle_profiles(args: &CycleArgs, known: Option<&[Profile]>) -> anyhow::Result<Vec<String>> {
    if !args.cycle_profiles.is_empty() {
        if let Some(known) = known
            && let Some(p) = args.cycle_profiles.iter().find(|p| !known.iter().any(|k| k.name == **p))
        {
            anyhow::bail!(
                "--cycle-profiles: no profile {p:?}; the profiles are {}",
                known.iter().map(|k| k.name.as_str()).collect::<Vec<_>>().join(", ")
            );
        }
        return Ok(args.cycle_profiles.clone());
    }
    let Some(known) = known else {
        anyhow::bail!("--cycle-every: name the profiles the cycles are for with --cycle-profiles");
    };
    let llm = llm_driven(known);
    if llm.is_empty() {
        anyhow::bail!(
            "--cycle-every: no profile follows an LLM analyst (the cycles are for those); name profiles with --cycle-profiles"
        );
    }
    Ok(llm)
}

/// Start of the first slot after `now_ms` (multiples of `every` from the epoch).
fn next_slot(now_ms: i64, every: Duration) -> i64 {
    let every = every.as_millis().max(1) as i64;
    (now_ms.div_euclid(every) + 1) * every
}

/// Sends a trigger for `profiles` at every slot of `every` until `stop`.
pub async fn run(bus: Bus, every: Duration, profiles: Vec<String>, stop: CancellationToken) {
    let producer = Producer::new(bus, "scheduler");
    eprintln!("scheduler: an analysis cycle every {} s for {}", every.as_secs(), profiles.join(", "));
    loop {
        let slot = next_slot(tradeflow_core::time::now_ms(), every);
        let wait = (slot - tradeflow_core::time::now_ms()).max(0) as u64;
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
        let c = ControlCommand::scheduled(profiles.clone(), slot);
        match tradeflow_bus::control::send_command(&producer, &c).await {
            Ok(()) => tracing::info!(cycle = %c.id, "scheduled analysis cycle sent"),
            Err(e) => tracing::warn!(cycle = %c.id, error = %e, "the scheduled analysis cycle could not be sent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_parse_with_their_unit_and_a_floor() {
        assert_eq!(parse_every("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_every("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_every("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["5", "m", "5x", "-5m", "1.5m", "9s", ""] {
            assert!(parse_every(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn slots_are_multiples_of_the_period() {
        let five = Duration::from_secs(300);
        assert_eq!(next_slot(0, five), 300_000);
        assert_eq!(next_slot(299_999, five), 300_000);
        assert_eq!(next_slot(300_000, five), 600_000, "a slot that has begun is past");
    }

    #[test]
    fn the_cycles_are_for_the_llm_driven_profiles_unless_named() {
        let text = r#"
[[profile]]
name = "rules"
method = "weighted_vote"
models = { technical = 1.0 }
[[profile]]
name = "arena"
method = "weighted_vote"
models = { technical = 1.0, gpt = 2.0 }
"#;
        let profiles = tradeflow_ensemble::profile::parse_profiles(text).unwrap();
        let every = Some(Duration::from_secs(60));
        let args = CycleArgs { cycle_every: every, cycle_profiles: vec![] };
        assert_eq!(cycle_profiles(&args, Some(&profiles)).unwrap(), ["arena"]);
        let named = CycleArgs { cycle_every: every, cycle_profiles: vec!["rules".into()] };
        assert_eq!(cycle_profiles(&named, Some(&profiles)).unwrap(), ["rules"]);
        let unknown = CycleArgs { cycle_every: every, cycle_profiles: vec!["nope".into()] };
        assert!(cycle_profiles(&unknown, Some(&profiles)).unwrap_err().to_string().contains("no profile \"nope\""));
        assert!(cycle_profiles(&args, None).is_err(), "a worker without profiles must name them");
        assert!(cycle_profiles(&args, Some(&profiles[..1])).is_err(), "no LLM-driven profile");
    }
}
