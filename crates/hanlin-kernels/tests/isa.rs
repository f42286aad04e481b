//! ISA selection and the `HANLIN_ISA` override (own process: it sets the environment).

use hanlin_kernels::{detect, Isa, Kernels, ISA_ENV};

#[test]
fn override_and_availability() {
    assert!(Isa::Generic.is_available());
    assert_eq!("GENERIC".parse::<Isa>().ok(), Some(Isa::Generic));
    assert_eq!("avx2".parse::<Isa>().ok(), Some(Isa::Avx2));
    assert!("sse9".parse::<Isa>().is_err());
    for isa in Isa::ALL {
        assert_eq!(Kernels::new(isa).is_ok(), isa.is_available(), "{isa}");
    }
    // The only test in this binary, so changing the environment races with nothing.
    std::env::set_var(ISA_ENV, "generic");
    assert_eq!(detect(), Isa::Generic);
    std::env::set_var(ISA_ENV, "avx2");
    let want = if Isa::Avx2.is_available() {
        Isa::Avx2
    } else {
        Isa::Generic
    };
    assert_eq!(detect(), want);
    std::env::set_var(ISA_ENV, "nonsense");
    assert_eq!(detect(), Isa::best());
    std::env::remove_var(ISA_ENV);
    assert_eq!(detect(), Isa::best());
    assert_eq!(Kernels::detected().isa(), Isa::best());
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        assert_eq!(Isa::best(), Isa::Avx2);
    }
}
