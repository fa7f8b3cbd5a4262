//! Where a task's rows go: parquet chunks written to a staging place (`staging`), either
//! encoded from Arrow or with unchanged columns copied (`passthrough`), then uploaded under
//! their final names while the task computes the next chunk.

pub mod passthrough;
pub mod staging;
