//! Seeded synthetic data: the W1 workload behind `vigil demo`, the tests and the benchmarks.

pub mod demo_data;
pub mod model_files;
pub mod w1;
pub mod write;
