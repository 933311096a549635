//! Candle CSV files (`tradeflow replay --feed`, CSV datasets): any bytes read by
//! [`CandleReader`], each row validated as a bar.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tradeflow_core::candle_csv::CandleReader;

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = CandleReader::new(data) else { return };
    let mut bars = reader.bars();
    for bar in bars.by_ref() {
        let _ = bar.map(|b| b.open_time());
    }
    let _ = bars.line();
});
