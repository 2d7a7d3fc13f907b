//! Generates a gym repeatedly (for `perf record`): `cargo run --release -p liftguard-sim --example profile_gym -- [iterations]`.
fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut total = 0usize;
    for i in 0..n {
        let g = liftguard_sim::simulate_gym(
            u64::from(i),
            10,
            5.0,
            0,
            &liftguard_sim::SimOptions::default(),
        );
        total += g
            .iter()
            .map(|s| s.thoracolumbar.samples.len() + s.sacrum.samples.len())
            .sum::<usize>();
    }
    println!("{total} samples");
}
