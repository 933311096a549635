//! The indicator set of one stream (symbol + interval): every indicator the models read,
//! advanced together one candle at a time, checkpointable as one value.

use serde::{Deserialize, Serialize};
use ta::{Close, Next, Reset, Volume};

use crate::directional::Adx;
use crate::momentum::{Macd, Rsi};
use crate::moving_average::{Ema, Sma};
use crate::stochastic::{FastStochastic, SlowStochastic};
use crate::volatility::{Atr, Bollinger, TrueRange};
use crate::volume::{Obv, VolumeSma, volume_ratio};
use crate::{Bar, IndicatorError, TaBar};

/// The indicator columns of the TA-Lib reference files, in their order: the contract between
/// [`IndicatorRow::values`], the `tradeflow indicators` CSV and the reference test.
pub const COLUMNS: [&str; 26] = [
    "sma_20",
    "sma_50",
    "ema_9",
    "ema_12",
    "ema_21",
    "ema_26",
    "ema_50",
    "rsi_14",
    "macd_12_26_9",
    "macd_signal_12_26_9",
    "macd_hist_12_26_9",
    "macd_line_only_12_26",
    "bb_upper_20_2",
    "bb_middle_20_2",
    "bb_lower_20_2",
    "trange",
    "atr_14",
    "stoch_slowk_14_3_3",
    "stoch_slowd_14_3_3",
    "stochf_fastk_14",
    "stochf_fastd_14_3",
    "stoch_rawk_14",
    "adx_14",
    "plus_di_14",
    "minus_di_14",
    "obv",
];

/// The indicators of one candle; `None` where TA-Lib has no value yet (warm-up). Field names
/// are the [`COLUMNS`] names.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IndicatorRow {
    /// The candle's open time, ms since the epoch (the `timestamp` column of the CSV files).
    pub timestamp: i64,
    pub sma_20: Option<f64>,
    pub sma_50: Option<f64>,
    pub ema_9: Option<f64>,
    pub ema_12: Option<f64>,
    pub ema_21: Option<f64>,
    pub ema_26: Option<f64>,
    pub ema_50: Option<f64>,
    pub rsi_14: Option<f64>,
    pub macd_12_26_9: Option<f64>,
    pub macd_signal_12_26_9: Option<f64>,
    pub macd_hist_12_26_9: Option<f64>,
    pub macd_line_only_12_26: Option<f64>,
    pub bb_upper_20_2: Option<f64>,
    pub bb_middle_20_2: Option<f64>,
    pub bb_lower_20_2: Option<f64>,
    pub trange: Option<f64>,
    pub atr_14: Option<f64>,
    pub stoch_slowk_14_3_3: Option<f64>,
    pub stoch_slowd_14_3_3: Option<f64>,
    pub stochf_fastk_14: Option<f64>,
    pub stochf_fastd_14_3: Option<f64>,
    pub stoch_rawk_14: Option<f64>,
    pub adx_14: Option<f64>,
    pub plus_di_14: Option<f64>,
    pub minus_di_14: Option<f64>,
    pub obv: Option<f64>,
    /// SMA(20) of the volume (not a reference column).
    pub volume_sma_20: Option<f64>,
    /// Volume / `volume_sma_20`; `None` also when that average is 0 (see
    /// [`volume_ratio`]). Not a reference column.
    pub volume_ratio_20: Option<f64>,
}

impl IndicatorRow {
    /// The 26 reference columns' values, in [`COLUMNS`] order.
    pub fn values(&self) -> [Option<f64>; 26] {
        [
            self.sma_20,
            self.sma_50,
            self.ema_9,
            self.ema_12,
            self.ema_21,
            self.ema_26,
            self.ema_50,
            self.rsi_14,
            self.macd_12_26_9,
            self.macd_signal_12_26_9,
            self.macd_hist_12_26_9,
            self.macd_line_only_12_26,
            self.bb_upper_20_2,
            self.bb_middle_20_2,
            self.bb_lower_20_2,
            self.trange,
            self.atr_14,
            self.stoch_slowk_14_3_3,
            self.stoch_slowd_14_3_3,
            self.stochf_fastk_14,
            self.stochf_fastd_14_3,
            self.stoch_rawk_14,
            self.adx_14,
            self.plus_di_14,
            self.minus_di_14,
            self.obv,
        ]
    }
}

/// Every indicator of [`IndicatorRow`] for one stream of candles.
///
/// Feed it the bars of the stream's closed candles in order; a candle whose open time is not after the
/// previous one is refused ([`IndicatorError::OutOfOrder`]) and changes nothing, so a
/// redelivered candle cannot be counted twice. It serializes to a few kilobytes (the SMA and
/// Bollinger windows dominate) for checkpoints, and [`Reset`] starts the warm-up over.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndicatorSet {
    last_open_time: Option<i64>,
    sma_20: Sma,
    sma_50: Sma,
    ema_9: Ema,
    ema_12: Ema,
    ema_21: Ema,
    ema_26: Ema,
    ema_50: Ema,
    rsi_14: Rsi,
    /// Also gives the line alone (MACD with signal period 1).
    macd: Macd,
    bollinger: Bollinger,
    true_range: TrueRange,
    atr: Atr,
    slow_stochastic: SlowStochastic,
    /// Also gives raw %K.
    fast_stochastic: FastStochastic,
    /// Also gives +DI and −DI.
    adx: Adx,
    obv: Obv,
    volume_sma: VolumeSma,
}

impl IndicatorSet {
    pub fn new() -> Self {
        Self::with_standard_periods().expect("the standard periods are valid constants")
    }

    fn with_standard_periods() -> Result<Self, IndicatorError> {
        Ok(Self {
            last_open_time: None,
            sma_20: Sma::new(20)?,
            sma_50: Sma::new(50)?,
            ema_9: Ema::new(9)?,
            ema_12: Ema::new(12)?,
            ema_21: Ema::new(21)?,
            ema_26: Ema::new(26)?,
            ema_50: Ema::new(50)?,
            rsi_14: Rsi::new(14)?,
            macd: Macd::new(12, 26, 9)?,
            bollinger: Bollinger::new(20, 2.0)?,
            true_range: TrueRange::new(),
            atr: Atr::new(14)?,
            slow_stochastic: SlowStochastic::new(14, 3, 3)?,
            fast_stochastic: FastStochastic::new(14, 3)?,
            adx: Adx::new(14)?,
            obv: Obv::new(),
            volume_sma: VolumeSma::new(20)?,
        })
    }

    /// Open time of the last candle applied, if any.
    pub fn last_open_time(&self) -> Option<i64> {
        self.last_open_time
    }
}

impl Default for IndicatorSet {
    fn default() -> Self {
        Self::new()
    }
}

impl Next<&Bar> for IndicatorSet {
    type Output = Result<IndicatorRow, IndicatorError>;

    fn next(&mut self, bar: &Bar) -> Result<IndicatorRow, IndicatorError> {
        let open_time = bar.open_time();
        if let Some(previous) = self.last_open_time
            && open_time <= previous
        {
            return Err(IndicatorError::OutOfOrder { previous, open_time });
        }
        self.last_open_time = Some(open_time);
        let candle = &TaBar(*bar);
        let close = candle.close();
        let macd = self.macd.next(close);
        let bands = self.bollinger.next(close);
        let slow = self.slow_stochastic.next(candle);
        let fast = self.fast_stochastic.next(candle);
        let adx = self.adx.next(candle);
        let di = self.adx.di();
        let volume_sma = self.volume_sma.next(candle);
        Ok(IndicatorRow {
            timestamp: open_time,
            sma_20: self.sma_20.next(close),
            sma_50: self.sma_50.next(close),
            ema_9: self.ema_9.next(close),
            ema_12: self.ema_12.next(close),
            ema_21: self.ema_21.next(close),
            ema_26: self.ema_26.next(close),
            ema_50: self.ema_50.next(close),
            rsi_14: self.rsi_14.next(close),
            macd_12_26_9: macd.map(|m| m.macd),
            macd_signal_12_26_9: macd.map(|m| m.signal),
            macd_hist_12_26_9: macd.map(|m| m.histogram),
            macd_line_only_12_26: self.macd.line(),
            bb_upper_20_2: bands.map(|b| b.upper),
            bb_middle_20_2: bands.map(|b| b.middle),
            bb_lower_20_2: bands.map(|b| b.lower),
            trange: self.true_range.next(candle),
            atr_14: self.atr.next(candle),
            stoch_slowk_14_3_3: slow.map(|s| s.k),
            stoch_slowd_14_3_3: slow.map(|s| s.d),
            stochf_fastk_14: fast.map(|f| f.k),
            stochf_fastd_14_3: fast.map(|f| f.d),
            stoch_rawk_14: self.fast_stochastic.raw_k(),
            adx_14: adx,
            plus_di_14: di.map(|d| d.plus),
            minus_di_14: di.map(|d| d.minus),
            obv: self.obv.next(candle),
            volume_sma_20: volume_sma,
            volume_ratio_20: volume_sma.and_then(|avg| volume_ratio(candle.volume(), avg)),
        })
    }
}

impl Reset for IndicatorSet {
    fn reset(&mut self) {
        self.last_open_time = None;
        self.sma_20.reset();
        self.sma_50.reset();
        self.ema_9.reset();
        self.ema_12.reset();
        self.ema_21.reset();
        self.ema_26.reset();
        self.ema_50.reset();
        self.rsi_14.reset();
        self.macd.reset();
        self.bollinger.reset();
        self.true_range.reset();
        self.atr.reset();
        self.slow_stochastic.reset();
        self.fast_stochastic.reset();
        self.adx.reset();
        self.obv.reset();
        self.volume_sma.reset();
    }
}
