//! The trivial baselines a model must beat: always the training part's majority class, and
//! the previous move (the class of the return over the `horizon` bars that just ended).

/// The most frequent class index of `labels` (ties to the lower index).
pub fn majority(labels: &[usize], classes: usize) -> usize {
    let mut counts = vec![0usize; classes];
    for &l in labels {
        counts[l] += 1;
    }
    let mut best = 0;
    for (c, &n) in counts.iter().enumerate() {
        if n > counts[best] {
            best = c;
        }
    }
    best
}
