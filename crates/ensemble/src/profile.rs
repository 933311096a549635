//! Ensemble profiles (config `[[profile]]`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How the signals of a profile become one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Each action gets the summed weight of the models voting for it; the heaviest wins.
    WeightedVote,
    /// The weighted mean of confidence × direction (+1 long, −1 short, 0 hold); its sign is the
    /// action and its size the confidence.
    ConfidenceWeightedMean,
    /// The action of more than half of the models that answered; hold otherwise.
    Majority,
    /// The action every answering model agrees on; hold otherwise.
    Unanimous,
}

impl Method {
    /// The variant's name, as `{:?}` writes it (the decisions' reasoning starts with it),
    /// without the formatting machinery.
    pub fn variant_name(self) -> &'static str {
        match self {
            Self::WeightedVote => "WeightedVote",
            Self::ConfidenceWeightedMean => "ConfidenceWeightedMean",
            Self::Majority => "Majority",
            Self::Unanimous => "Unanimous",
        }
    }
}

/// One profile: a way to turn a candle's signals into a decision. A profile with a single
/// model is how one model (e.g. one LLM) drives one account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub name: String,
    /// Model name → weight (> 0).
    pub models: BTreeMap<String, f64>,
    pub method: Method,
    /// Below this confidence the decision is hold.
    #[serde(default)]
    pub min_confidence: f64,
    /// Decide as soon as this many models answered (default: all of them).
    #[serde(default)]
    pub quorum: Option<usize>,
    /// Decide with what arrived this long after the first signal of the candle.
    #[serde(default = "default_deadline_ms")]
    pub deadline_ms: u64,
}

fn default_deadline_ms() -> u64 {
    30_000
}

impl Profile {
    pub fn quorum(&self) -> usize {
        self.quorum.unwrap_or(self.models.len())
    }

    /// Every problem, each with its key path (`profile[1].quorum: ...`).
    pub fn validate(&self, path: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            problems.push(format!("{path}.name: {:?} must be non-empty letters, digits, '-', '_' or '.'", self.name));
        }
        if self.models.is_empty() {
            problems.push(format!("{path}.models: list at least one model"));
        }
        for (model, weight) in &self.models {
            if !(weight.is_finite() && *weight > 0.0) {
                problems.push(format!("{path}.models.{model}: weight must be a positive number, got {weight}"));
            }
        }
        if !(0.0..=1.0).contains(&self.min_confidence) {
            problems.push(format!("{path}.min_confidence: must be within 0..1, got {}", self.min_confidence));
        }
        if let Some(q) = self.quorum
            && (q == 0 || q > self.models.len())
        {
            problems.push(format!(
                "{path}.quorum: must be within 1..={} (the number of models), got {q}",
                self.models.len()
            ));
        }
        if self.deadline_ms == 0 {
            problems.push(format!("{path}.deadline_ms: must be at least 1"));
        }
        problems
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfilesFile {
    profile: Vec<Profile>,
}

/// The profiles when none are configured: the `technical` rule model alone.
pub const DEFAULT_PROFILES: &str = r#"
[[profile]]
name = "technical"
models = { technical = 1.0 }
method = "confidence_weighted_mean"
"#;

/// Profiles from TOML (`[[profile]]` tables), every problem reported at once.
pub fn parse_profiles(text: &str) -> Result<Vec<Profile>, Vec<String>> {
    let file: ProfilesFile = toml::from_str(text).map_err(|e| vec![e.to_string()])?;
    let mut problems = Vec::new();
    for (i, p) in file.profile.iter().enumerate() {
        problems.extend(p.validate(&format!("profile[{i}]")));
        if file.profile[..i].iter().any(|q| q.name == p.name) {
            problems.push(format!("profile[{i}].name: {:?} is used twice", p.name));
        }
    }
    if file.profile.is_empty() {
        problems.push("profile: define at least one profile".into());
    }
    if problems.is_empty() { Ok(file.profile) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names_are_what_debug_writes() {
        for m in [Method::WeightedVote, Method::ConfidenceWeightedMean, Method::Majority, Method::Unanimous] {
            assert_eq!(m.variant_name(), format!("{m:?}"));
        }
    }

    #[test]
    fn every_problem_is_named() {
        let text = r#"
[[profile]]
name = "a b"
models = { rsi = 0.0, macd = 1.0 }
method = "weighted_vote"
min_confidence = 1.5
quorum = 3
deadline_ms = 0

[[profile]]
name = "ok"
models = { rsi = 1.0 }
method = "majority"

[[profile]]
name = "ok"
models = { macd = 1.0 }
method = "unanimous"
"#;
        let problems = parse_profiles(text).unwrap_err();
        let expected = [
            r#"profile[0].name: "a b" must be non-empty letters, digits, '-', '_' or '.'"#,
            "profile[0].models.rsi: weight must be a positive number, got 0",
            "profile[0].min_confidence: must be within 0..1, got 1.5",
            "profile[0].quorum: must be within 1..=2 (the number of models), got 3",
            "profile[0].deadline_ms: must be at least 1",
            r#"profile[2].name: "ok" is used twice"#,
        ];
        assert_eq!(problems, expected);
    }

    #[test]
    fn unknown_methods_and_keys_are_refused() {
        let err = parse_profiles("[[profile]]\nname='a'\nmodels={x=1.0}\nmethod='vibes'\n").unwrap_err();
        assert!(err[0].contains("unknown variant `vibes`"), "{err:?}");
    }
}
