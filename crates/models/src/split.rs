//! The split by time: train, then validation, then test, each later than the one before, with
//! a purge gap between them. A row's label reads the `horizon` bars after it, so the last
//! training rows' labels overlap the first validation bars; dropping the `horizon` bars after
//! each part keeps any label of one part from seeing prices of the next.

use serde::{Deserialize, Serialize};

/// Shares of the usable rows (the rest is the test part).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SplitSpec {
    pub train: f64,
    pub validation: f64,
}

impl Default for SplitSpec {
    fn default() -> Self {
        Self { train: 0.6, validation: 0.2 }
    }
}

impl SplitSpec {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(self.train > 0.0 && self.validation > 0.0 && self.train + self.validation < 1.0) {
            p.push(format!(
                "split: train ({}) and validation ({}) must be > 0 and leave a test part (sum < 1)",
                self.train, self.validation
            ));
        }
        p
    }
}

/// Positions (bar indices) of each part, in time order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
}

/// Splits `usable` (bar indices with features and a label, increasing) by `spec`, dropping the
/// rows within `purge` bars after the end of each part.
pub fn split(usable: &[usize], spec: SplitSpec, purge: usize) -> Split {
    let n = usable.len();
    let k1 = ((n as f64) * spec.train).floor() as usize;
    let k2 = ((n as f64) * (spec.train + spec.validation)).floor() as usize;
    let train = usable[..k1.min(n)].to_vec();
    let after = |last: Option<&usize>, rows: &[usize]| -> Vec<usize> {
        match last {
            Some(&l) => rows.iter().copied().filter(|&b| b > l + purge).collect(),
            None => rows.to_vec(),
        }
    };
    let validation = after(train.last(), &usable[k1.min(n)..k2.min(n)]);
    let test = after(validation.last().or(train.last()), &usable[k2.min(n)..]);
    Split { train, validation, test }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_ordered_and_purged() {
        let usable: Vec<usize> = (10..110).collect();
        let s = split(&usable, SplitSpec::default(), 3);
        assert_eq!(s.train.len(), 60);
        assert_eq!(*s.train.last().unwrap(), 69);
        // 70..=72 purged: their labels would read bars of the validation part... and the other way.
        assert_eq!(s.validation.first(), Some(&73));
        assert_eq!(s.validation.last(), Some(&89));
        assert_eq!(s.test.first(), Some(&93));
        assert_eq!(s.test.len(), 109 - 93 + 1);
        assert!(SplitSpec { train: 0.8, validation: 0.2 }.problems().len() == 1);
    }
}
