//! The deploy gate: a version goes live only when its test-window figures earn it.

use serde::{Deserialize, Serialize};

/// The thresholds, per model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GateConfig {
    /// Test-window accuracy at least this (the GPT-4 service's gate: 0.60).
    pub min_accuracy: f64,
    /// The test window's Sharpe ratio at least the `technical` model's on the same window.
    pub sharpe_vs_technical: bool,
}

impl Default for GateConfig {
    fn default() -> Self {
        Self { min_accuracy: 0.60, sharpe_vs_technical: true }
    }
}

/// The figures the gate reads; `None` when not measured.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct GateFigures {
    pub test_accuracy: Option<f64>,
    pub sharpe: Option<f64>,
    pub technical_sharpe: Option<f64>,
}

/// One threshold and how the version fared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// The gate's answer, with every check and its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateVerdict {
    pub passed: bool,
    pub checks: Vec<Check>,
}

impl GateVerdict {
    /// The failed checks, one per line.
    pub fn refusals(&self) -> String {
        self.checks.iter().filter(|c| !c.passed).map(|c| c.detail.clone()).collect::<Vec<_>>().join("; ")
    }
}

impl std::fmt::Display for GateVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let all = self.checks.iter().map(|c| c.detail.as_str()).collect::<Vec<_>>().join("; ");
        write!(f, "{}: {all}", if self.passed { "passed" } else { "refused" })
    }
}

fn fmt(v: Option<f64>) -> String {
    v.map_or_else(|| "null (not measured)".to_string(), |v| format!("{v:.4}"))
}

impl GateConfig {
    pub fn problems(&self) -> Vec<String> {
        if (0.0..=1.0).contains(&self.min_accuracy) {
            Vec::new()
        } else {
            vec![format!("min_accuracy: must be within [0, 1], got {}", self.min_accuracy)]
        }
    }

    /// The verdict on `f`. A figure the gate needs that was not measured fails its check.
    pub fn judge(&self, f: &GateFigures) -> GateVerdict {
        let mut checks = Vec::new();
        let ok = f.test_accuracy.is_some_and(|a| a >= self.min_accuracy);
        checks.push(Check {
            name: "accuracy".into(),
            passed: ok,
            detail: format!(
                "test accuracy {} {} minimum {:.4}",
                fmt(f.test_accuracy),
                if ok { ">=" } else { "below" },
                self.min_accuracy
            ),
        });
        if self.sharpe_vs_technical {
            let ok = matches!((f.sharpe, f.technical_sharpe), (Some(s), Some(t)) if s >= t);
            checks.push(Check {
                name: "sharpe".into(),
                passed: ok,
                detail: format!(
                    "test Sharpe {} {} technical's {}",
                    fmt(f.sharpe),
                    if ok { ">=" } else { "below" },
                    fmt(f.technical_sharpe)
                ),
            });
        }
        GateVerdict { passed: checks.iter().all(|c| c.passed), checks }
    }
}

/// The verdict on a registry version from its stored JSON: the gate in `parameters.gate`, the
/// figures in `metrics.gate` (as `tradeflow models train` stores them); the error names the
/// field that does not read.
pub fn judge_stored(parameters: &str, metrics: &str) -> Result<(GateVerdict, GateFigures), String> {
    let parameters: serde_json::Value =
        serde_json::from_str(parameters).map_err(|e| format!("parameters: not JSON: {e}"))?;
    let metrics: serde_json::Value = serde_json::from_str(metrics).map_err(|e| format!("metrics: not JSON: {e}"))?;
    let gate: GateConfig =
        serde_json::from_value(parameters["gate"].clone()).map_err(|e| format!("parameters.gate: {e}"))?;
    let figures: GateFigures =
        serde_json::from_value(metrics["gate"].clone()).map_err(|e| format!("metrics.gate: {e}"))?;
    Ok((gate.judge(&figures), figures))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_names_each_failed_threshold() {
        let g = GateConfig::default();
        let v = g.judge(&GateFigures { test_accuracy: Some(0.52), sharpe: Some(0.1), technical_sharpe: Some(0.3) });
        assert!(!v.passed);
        assert_eq!(
            v.refusals(),
            "test accuracy 0.5200 below minimum 0.6000; test Sharpe 0.1000 below technical's 0.3000"
        );
        let v = g.judge(&GateFigures { test_accuracy: Some(0.7), sharpe: None, technical_sharpe: Some(0.3) });
        assert_eq!(v.refusals(), "test Sharpe null (not measured) below technical's 0.3000");
        let stored = judge_stored(
            r#"{"gate": {"min_accuracy": 0.5, "sharpe_vs_technical": false}}"#,
            r#"{"gate": {"test_accuracy": 0.55, "sharpe": null, "technical_sharpe": null}}"#,
        )
        .unwrap();
        assert!(stored.0.passed, "{}", stored.0);
        assert_eq!(judge_stored("{}", "{}").unwrap_err().split(':').next(), Some("parameters.gate"));
        let off = GateConfig { sharpe_vs_technical: false, ..g };
        assert!(off.judge(&GateFigures { test_accuracy: Some(0.6), ..Default::default() }).passed);
    }
}
