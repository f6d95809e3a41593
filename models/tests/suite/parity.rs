//! What the parity tests compare with.

/// `max_i |got_i - want_i| / max_i |want_i|`, in f64 (the reference may be f32 or f64).
pub fn relative_error<W: Copy + Into<f64>>(got: &[f32], want: &[W]) -> f64 {
    assert_eq!(got.len(), want.len());
    let diff = got
        .iter()
        .zip(want)
        .map(|(g, w)| (f64::from(*g) - (*w).into()).abs())
        .fold(0.0, f64::max);
    let scale = want.iter().map(|w| (*w).into().abs()).fold(0.0, f64::max);
    diff / scale
}
