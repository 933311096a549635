//! `tradeflow bench models`: the learned models on the demo feed (no Redis): training time per
//! family (the stage's rows, then the fit with the default parameters: gbt 200 trees of depth
//! 6), and prediction latency per candle: the model alone on feature rows, and the stage's
//! whole answer (features from the indicators and market condition, prediction, signal). The
//! inference rate through Redis with `ml:` models on is `bench inference --models
//! technical,ml:bench` (it trains the model it serves).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use tradeflow_core::market::{Candle, Interval};
use tradeflow_inference::condition::ConditionParams;
use tradeflow_inference::{InferenceStage, StageConfig};
use tradeflow_models::family::Params;
use tradeflow_models::labels::{LabelKind, LabelSpec};
use tradeflow_models::split::SplitSpec;
use tradeflow_models::train::Row;
use tradeflow_models::{Family, TrainConfig, Trained, train};

#[derive(Args)]
pub struct ModelsBenchArgs {
    #[arg(long)]
    json: bool,
    /// Candle CSV; default the bundled demo feed.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Only the file's first N candles (0: all).
    #[arg(long, default_value_t = 0)]
    candles: usize,
    /// Measure each latency for at least this long.
    #[arg(long, default_value_t = 1.0)]
    min_seconds: f64,
    /// gbt trees (the latency target is for 200 of depth 6).
    #[arg(long, default_value_t = 200)]
    iterations: usize,
    /// Also write the training rows (features, label) as CSV, to compare learners elsewhere.
    #[arg(long, value_name = "FILE")]
    features_csv: Option<PathBuf>,
}

#[derive(Serialize)]
struct FamilyReport {
    family: &'static str,
    /// The fit and the figures on validation and test (the stage's rows apart).
    train_seconds: f64,
    test_accuracy: Option<f64>,
    /// The model alone, on feature rows.
    predict_ns_per_candle: f64,
    /// The inference stage's whole answer with this model beside none: features, prediction
    /// and signal (the stage with no model subtracted).
    stage_ns_per_candle: f64,
    model_file_bytes: usize,
}

#[derive(Serialize)]
struct ModelsReport {
    candles: usize,
    /// The inference stage over the candles with no model, making the training rows.
    rows_seconds: f64,
    gbt_iterations: usize,
    gbt_max_depth: usize,
    families: Vec<FamilyReport>,
}

pub(crate) fn candles_of(csv: &Path, limit: usize) -> anyhow::Result<Vec<Candle>> {
    let file = std::fs::File::open(csv).with_context(|| format!("cannot open {}", csv.display()))?;
    let reader = tradeflow_core::candle_csv::CandleReader::new(std::io::BufReader::new(file))
        .with_context(|| csv.display().to_string())?;
    let mut out = Vec::new();
    for bar in reader.bars() {
        let bar = bar.with_context(|| csv.display().to_string())?;
        out.push(Candle {
            source: "csv".into(),
            symbol: "BTCUSD".into(),
            interval: Interval::H1,
            bar,
            aggregated: false,
        });
        if limit > 0 && out.len() >= limit {
            break;
        }
    }
    anyhow::ensure!(!out.is_empty(), "{} holds no candles", csv.display());
    Ok(out)
}

pub(crate) fn bench_config(family: Family, iterations: usize) -> anyhow::Result<TrainConfig> {
    let pairs = match family {
        Family::Gbt => vec![("iterations".to_string(), iterations.to_string())],
        Family::Logistic => Vec::new(),
    };
    Ok(TrainConfig {
        labels: LabelSpec { horizon: 1, threshold: 0.0, kind: LabelKind::Binary },
        split: SplitSpec::default(),
        params: Params::from_pairs(family, &pairs).map_err(|p| anyhow::anyhow!(p.join("; ")))?,
        seed: 42,
    })
}

/// Nanoseconds per call of `f` over `n` items, looped for at least `min_seconds` (one pass unmeasured).
fn per_item(n: usize, min_seconds: f64, mut pass: impl FnMut()) -> f64 {
    pass();
    let started = Instant::now();
    let mut passes = 0u64;
    while passes < 3 || started.elapsed().as_secs_f64() < min_seconds {
        pass();
        passes += 1;
    }
    started.elapsed().as_nanos() as f64 / (passes as f64 * n as f64)
}

fn stage_pass(config: &Arc<StageConfig>, candles: &[Candle]) {
    let mut stage = InferenceStage::new(config.clone());
    for c in candles {
        let _ = black_box(stage.on_candle(black_box(c)));
    }
}

pub fn run(args: &ModelsBenchArgs) -> anyhow::Result<()> {
    let csv = args.csv.clone().unwrap_or_else(crate::config::demo_feed);
    let candles = candles_of(&csv, args.candles)?;
    let started = Instant::now();
    let rows: Vec<Row> = tradeflow_inference::ml::rows(&candles, &ConditionParams::default());
    let rows_seconds = started.elapsed().as_secs_f64();
    let features: Vec<_> = rows.iter().filter_map(|r| r.features).collect();
    let bare = Arc::new(StageConfig { models: Vec::new(), ..StageConfig::default() });
    let bare_ns = per_item(candles.len(), args.min_seconds, || stage_pass(&bare, &candles));
    let mut families = Vec::new();
    let mut gbt_depth = 0;
    for family in [Family::Logistic, Family::Gbt] {
        let config = bench_config(family, args.iterations)?;
        if let Params::Gbt(p) = config.params {
            gbt_depth = p.max_depth;
        }
        let started = Instant::now();
        let trained: Trained = train(&rows, &config)?;
        let train_seconds = started.elapsed().as_secs_f64();
        let model = &trained.artifact.model;
        let mut out = vec![0.0; model.classes.len()];
        let predict_ns = per_item(features.len(), args.min_seconds, || {
            for x in &features {
                model.predict_into(black_box(x), &mut out);
                black_box(&out);
            }
        });
        let bytes = trained.artifact.to_bytes()?;
        let served = StageConfig::with_models(&["ml:bench".to_string()]).map_err(|p| anyhow::anyhow!(p.join("; ")))?;
        served.ml.models.install("bench", 1, &bytes).map_err(anyhow::Error::msg)?;
        let served = Arc::new(served);
        let stage_ns = per_item(candles.len(), args.min_seconds, || stage_pass(&served, &candles)) - bare_ns;
        families.push(FamilyReport {
            family: family.as_str(),
            train_seconds,
            test_accuracy: trained.report.test_accuracy(),
            predict_ns_per_candle: predict_ns,
            stage_ns_per_candle: stage_ns,
            model_file_bytes: bytes.len(),
        });
    }
    if let Some(path) = &args.features_csv {
        write_features(path, &rows)?;
    }
    let report = ModelsReport {
        candles: candles.len(),
        rows_seconds,
        gbt_iterations: args.iterations,
        gbt_max_depth: gbt_depth,
        families,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        eprintln!(
            "models: {} candles; the stage's rows in {:.2} s; gbt {} trees of depth {}",
            report.candles, report.rows_seconds, report.gbt_iterations, report.gbt_max_depth
        );
        for f in &report.families {
            eprintln!(
                "  {:<8} train {:.2} s, test accuracy {}, predict {:.0} ns/candle, in the stage {:.0} ns/candle, file {} bytes",
                f.family,
                f.train_seconds,
                f.test_accuracy.map_or("null".into(), |a| format!("{a:.4}")),
                f.predict_ns_per_candle,
                f.stage_ns_per_candle,
                f.model_file_bytes
            );
        }
    }
    Ok(())
}

/// `open_time,close,<features...>,next_up` for every row with features (the binary label of
/// horizon 1; the last row has none and is left out).
fn write_features(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?,
    );
    writeln!(out, "open_time,close,{},next_up", tradeflow_models::features::FEATURE_NAMES.join(","))?;
    for w in rows.windows(2) {
        let Some(f) = w[0].features else { continue };
        let values: Vec<String> = f.iter().map(|v| v.to_string()).collect();
        writeln!(out, "{},{},{},{}", w[0].open_time, w[0].close, values.join(","), u8::from(w[1].close > w[0].close))?;
    }
    out.flush()?;
    Ok(())
}
