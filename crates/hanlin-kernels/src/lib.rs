//! SIMD kernels with runtime dispatch and a thread pool.
