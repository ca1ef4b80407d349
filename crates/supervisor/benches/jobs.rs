//! The job benchmarks (issue 4): job overhead, throughput and idle memory.
//! (Being written.)

fn main() {}
