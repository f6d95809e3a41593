//! Kernels of tandem's own (EfficientNet's depthwise convolution, GELU) compiled for the widest
//! vector instructions the CPU has, picked at run time: the crate is built for the baseline
//! x86-64, where the compiler vectorizes for SSE2 only.

/// `widest!(fn name(args) => kernel)` defines `fn name(args)`, which runs `kernel` (an
/// `#[inline(always)]` function, so that it is compiled into each caller) with AVX-512F, AVX2 or
/// the baseline, whichever the CPU has.
macro_rules! widest {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $kernel:path) => {
        $(#[$meta])*
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                unsafe fn avx512($($arg: $ty),*) {
                    $kernel($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) {
                    $kernel($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has AVX-512F (checked just above).
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2 (checked just above).
                    return unsafe { avx2($($arg),*) };
                }
            }
            $kernel($($arg),*)
        }
    };
}

pub(crate) use widest;
