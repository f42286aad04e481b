//! Kernels per instruction set; each module fills or patches a [`crate::table::Table`].

pub(crate) mod generic;

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;
