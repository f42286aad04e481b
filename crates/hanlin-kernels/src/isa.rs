//! Instruction-set selection, done once at run time.

use crate::error::KernelError;
use std::fmt;
use std::str::FromStr;

/// Environment variable that caps the ISA (`generic`, `avx2`, `avxvnni`, `avx512`, `auto`); for
/// tests and triage.
pub const ISA_ENV: &str = "HANLIN_ISA";

/// An instruction-set level with its own kernel table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// Portable scalar Rust; every target.
    Generic,
    /// x86_64 with AVX2, FMA and F16C (Haswell and later, Zen and later).
    Avx2,
    /// [`Isa::Avx2`] plus AVX-VNNI: 256-bit `vpdpbusd` / `vpdpwssd` (Alder Lake and later).
    AvxVnni,
    /// [`Isa::Avx2`] plus AVX-512 F/BW/VL and AVX512_VNNI (Ice Lake, Sapphire Rapids, Zen 4).
    Avx512Vnni,
}

impl Isa {
    /// Every ISA this build knows, slowest first.
    pub const ALL: [Isa; 4] = [Isa::Generic, Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni];

    /// Lower-case name as accepted by [`ISA_ENV`].
    pub fn name(self) -> &'static str {
        match self {
            Isa::Generic => "generic",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni => "avx512",
        }
    }

    /// Whether this CPU can run the ISA's kernels.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Generic => true,
            Isa::Avx2 => avx2_available(),
            Isa::AvxVnni => avx2_available() && avxvnni_available(),
            Isa::Avx512Vnni => avx2_available() && avx512vnni_available(),
        }
    }

    /// The best ISA this CPU supports, ignoring the environment.
    pub fn best() -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|i| i.is_available())
            .unwrap_or(Isa::Generic)
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_available() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

#[cfg(target_arch = "x86_64")]
fn avxvnni_available() -> bool {
    is_x86_feature_detected!("avxvnni")
}

#[cfg(target_arch = "x86_64")]
fn avx512vnni_available() -> bool {
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_available() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn avxvnni_available() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn avx512vnni_available() -> bool {
    false
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Isa {
    type Err = KernelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "generic" | "scalar" => Ok(Isa::Generic),
            "avx2" => Ok(Isa::Avx2),
            "avxvnni" | "avx-vnni" => Ok(Isa::AvxVnni),
            "avx512" | "avx512vnni" | "avx512-vnni" => Ok(Isa::Avx512Vnni),
            "auto" | "" => Ok(Isa::best()),
            _ => Err(KernelError::UnknownIsa(s.to_owned())),
        }
    }
}

/// The ISA to use: the best available, capped by `HANLIN_ISA` when set.
///
/// An override naming an ISA this CPU lacks, or an unknown name, falls back to the best
/// available ISA below it, so the result is always safe to run.
pub fn detect() -> Isa {
    let best = Isa::best();
    match std::env::var(ISA_ENV) {
        Ok(v) => match v.parse::<Isa>() {
            Ok(want) => Isa::ALL
                .into_iter()
                .rev()
                .find(|i| *i <= want && i.is_available())
                .unwrap_or(Isa::Generic),
            Err(_) => best,
        },
        Err(_) => best,
    }
}
