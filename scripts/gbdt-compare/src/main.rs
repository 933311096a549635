//! forust-ml vs gbdt (gbdt-rs) on tradeflow's features of the demo feed (`tradeflow bench models
//! --features-csv`, see run.sh): 60/20/20 split by time (purge 1 row), binary label next_up,
//! 200 trees of depth 6, learning rate 0.05.
use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let mut rows: Vec<Vec<f64>> = Vec::new();
    let mut y: Vec<f64> = Vec::new();
    for line in text.lines().skip(1) {
        let v: Vec<f64> = line.split(',').map(|s| s.parse().unwrap()).collect();
        let n = v.len();
        rows.push(v[2..n - 1].to_vec());
        y.push(v[n - 1]);
    }
    let n = rows.len();
    let (k1, k2) = (n * 6 / 10, n * 8 / 10);
    let train: Vec<usize> = (0..k1).collect();
    let test: Vec<usize> = (k2 + 1..n).collect();
    let cols = rows[0].len();
    println!("{} rows, {} features; train {}, test {}", n, cols, train.len(), test.len());
    let acc = |p: &[f64], idx: &[usize]| idx.iter().zip(p).filter(|(&i, &q)| (q > 0.5) == (y[i] > 0.5)).count() as f64 / idx.len() as f64;

    // forust-ml 0.8
    {
        use forust_ml::{GradientBooster, data::Matrix, objective::ObjectiveType};
        let mut data = vec![0.0; train.len() * cols];
        for (r, &i) in train.iter().enumerate() { for j in 0..cols { data[j * train.len() + r] = rows[i][j]; } }
        let m = Matrix::new(&data, train.len(), cols);
        let yt: Vec<f64> = train.iter().map(|&i| y[i]).collect();
        let t = Instant::now();
        let mut b = GradientBooster::default().set_objective_type(ObjectiveType::LogLoss).set_iterations(200)
            .set_learning_rate(0.05).set_max_depth(6).set_min_leaf_weight(20.0).set_l2(1.0).set_nbins(64).set_parallel(false);
        b.fit_unweighted(&m, &yt, None).unwrap();
        let train_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut p = Vec::new();
        for &i in &test {
            let raw = b.base_score + b.trees.iter().map(|tr| tr.predict_row_from_row_slice(&rows[i], &b.missing)).sum::<f64>();
            p.push(1.0 / (1.0 + (-raw).exp()));
        }
        let ns = t.elapsed().as_nanos() as f64 / test.len() as f64;
        println!("forust-ml 0.8: train {train_s:.3} s, test accuracy {:.4}, predict {ns:.0} ns/row", acc(&p, &test));
    }
    // gbdt 0.1.3
    {
        use gbdt::config::Config;
        use gbdt::decision_tree::{Data, DataVec};
        use gbdt::gradient_boost::GBDT;
        let mut cfg = Config::new();
        cfg.set_feature_size(cols);
        cfg.set_max_depth(6);
        cfg.set_iterations(200);
        cfg.set_shrinkage(0.05);
        cfg.set_loss("LogLikelyhood");
        cfg.set_min_leaf_size(20);
        cfg.set_training_optimization_level(2);
        let mut dv: DataVec = train.iter().map(|&i| Data::new_training_data(rows[i].iter().map(|&v| v as f32).collect(), 1.0, if y[i] > 0.5 { 1.0 } else { -1.0 }, None)).collect();
        let t = Instant::now();
        let mut g = GBDT::new(&cfg);
        g.fit(&mut dv);
        let train_s = t.elapsed().as_secs_f64();
        let tv: DataVec = test.iter().map(|&i| Data::new_test_data(rows[i].iter().map(|&v| v as f32).collect(), None)).collect();
        let t = Instant::now();
        let mut p = Vec::new();
        for d in &tv { p.push(g.predict(&vec![d.clone()])[0] as f64); }
        let ns = t.elapsed().as_nanos() as f64 / test.len() as f64;
        println!("gbdt 0.1.3: train {train_s:.3} s, test accuracy {:.4}, predict {ns:.0} ns/row (one-row predict calls)", acc(&p, &test));
    }
}
