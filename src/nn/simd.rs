//! Kernels compiled for several instruction sets, picked at run time.

/// Defines `pub fn $name` that runs `$body` compiled for AVX-512 or AVX2+FMA when the CPU
/// has them, and for the baseline otherwise.
macro_rules! multiversion {
    ($(#[$doc:meta])* $name:ident => $body:ident ($($arg:ident: $ty:ty),*)) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f")]
                #[allow(clippy::too_many_arguments)]
                fn avx512($($arg: $ty),*) {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                fn avx2($($arg: $ty),*) {
                    $body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU supports the features `avx512` was compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: the CPU supports the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}

pub(crate) use multiversion;

multiversion!(
    /// The gradient through a ReLU: `dy` where the (post-ReLU) output is positive, 0 elsewhere.
    mask_relu => mask_relu_body(dy: &[f32], out: &[f32], masked: &mut [f32])
);

/// `mask_relu` for callers already compiled for the instruction set (inlined there).
#[inline(always)]
pub(crate) fn mask_relu_body(dy: &[f32], out: &[f32], masked: &mut [f32]) {
    for ((m, &d), &o) in masked.iter_mut().zip(dy).zip(out) {
        *m = if o > 0.0 { d } else { 0.0 };
    }
}
