//! ISA selection and the `HANLIN_ISA` override (own process: it sets the environment).

use hanlin_kernels::{detect, Isa, Kernels, ISA_ENV};

#[test]
fn override_and_availability() {
    assert!(Isa::Generic.is_available());
    assert_eq!("GENERIC".parse::<Isa>().ok(), Some(Isa::Generic));
    assert_eq!("avx2".parse::<Isa>().ok(), Some(Isa::Avx2));
    assert_eq!("avxvnni".parse::<Isa>().ok(), Some(Isa::AvxVnni));
    assert_eq!("AVX512".parse::<Isa>().ok(), Some(Isa::Avx512Vnni));
    assert_eq!("avx512vnni".parse::<Isa>().ok(), Some(Isa::Avx512Vnni));
    assert!("sse9".parse::<Isa>().is_err());
    for isa in Isa::ALL {
        assert_eq!(Kernels::new(isa).is_ok(), isa.is_available(), "{isa}");
        assert_eq!(isa.name().parse::<Isa>().ok(), Some(isa), "{isa}");
    }
    // The only test in this binary, so changing the environment races with nothing.
    std::env::set_var(ISA_ENV, "generic");
    assert_eq!(detect(), Isa::Generic);
    // A cap picks the best available ISA at or below it.
    for cap in Isa::ALL {
        std::env::set_var(ISA_ENV, cap.name());
        let want = Isa::ALL
            .into_iter()
            .filter(|i| *i <= cap && i.is_available())
            .max()
            .unwrap_or(Isa::Generic);
        assert_eq!(detect(), want, "cap {cap}");
    }
    std::env::set_var(ISA_ENV, "nonsense");
    assert_eq!(detect(), Isa::best());
    std::env::remove_var(ISA_ENV);
    assert_eq!(detect(), Isa::best());
    assert_eq!(Kernels::detected().isa(), Isa::best());
    #[cfg(target_arch = "x86_64")]
    {
        use std::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma") && has!("f16c");
        let avx512 = has!("avx512f") && has!("avx512bw") && has!("avx512vl");
        let want = if avx2 && avx512 && has!("avx512vnni") {
            Isa::Avx512Vnni
        } else if avx2 && has!("avxvnni") {
            Isa::AvxVnni
        } else if avx2 {
            Isa::Avx2
        } else {
            Isa::Generic
        };
        assert_eq!(Isa::best(), want);
    }
}
