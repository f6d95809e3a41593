//! Max pooling for the CPU: flex runs `max_pool2d` through its 3D pooling with indices (an index
//! tensor computed and dropped, a bounds-checked scalar loop per output), 31 % of MTCNN's samples
//! in `perf` (P-Net pools every scale of the image pyramid). Here, per output row, the rows of
//! its window are folded into one with an element-wise max the compiler vectorizes, then each
//! output takes the max of its columns. NaN wins, as in PyTorch. Without padding or dilation
//! (MTCNN's pools: `nn.MaxPool2d(k, s, ceil_mode=True)`); other pools run Burn's.

use burn::nn::pool::MaxPool2d;
use burn::nn::PaddingConfig2d;
use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;

/// `pool`'s forward on `x` (`[n, c, h, w]`).
pub(crate) fn max_pool(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let plain = pool.padding == PaddingConfig2d::Valid
        && pool.dilation == [1, 1]
        && pool.kernel_size[0] == pool.kernel_size[1]
        && pool.stride[0] == pool.stride[1];
    if !plain || x.device() != Device::flex() || x.dtype() != DType::F32 {
        return pool.forward(x);
    }
    let (kernel, stride) = (pool.kernel_size[0], pool.stride[0]);
    let [n, c, h, w] = x.dims();
    let (out_h, out_w) = (
        output_size(h, kernel, stride, pool.ceil_mode),
        output_size(w, kernel, stride, pool.ceil_mode),
    );
    if out_h == 0 || out_w == 0 {
        return pool.forward(x);
    }
    let device = x.device();
    let data = x.into_data();
    let input = data
        .as_slice::<f32>()
        .expect("an f32 tensor holds f32 values");
    let mut out = vec![0.0f32; n * c * out_h * out_w];
    out.par_chunks_mut(out_h * out_w)
        .zip(input.par_chunks(h * w))
        .for_each(|(out, input)| {
            let mut folded = vec![0.0f32; w];
            for (y, row) in out.chunks_exact_mut(out_w).enumerate() {
                let top = y * stride;
                let rows = top..(top + kernel).min(h);
                folded.copy_from_slice(&input[top * w..(top + 1) * w]);
                for iy in rows.skip(1) {
                    for (f, &v) in folded.iter_mut().zip(&input[iy * w..(iy + 1) * w]) {
                        *f = nan_max(*f, v);
                    }
                }
                for (x, o) in row.iter_mut().enumerate() {
                    let left = x * stride;
                    let window = &folded[left..(left + kernel).min(w)];
                    *o = window[1..].iter().fold(window[0], |m, &v| nan_max(m, v));
                }
            }
        });
    Tensor::from_data(TensorData::new(out, [n, c, out_h, out_w]), &device)
}

#[inline(always)]
fn nan_max(a: f32, b: f32) -> f32 {
    if b > a || b.is_nan() {
        b
    } else {
        a
    }
}

/// PyTorch's output size without padding: floor or ceil of `(input - kernel) / stride`, plus one;
/// in ceil mode a last window that would start past the input is dropped.
fn output_size(input: usize, kernel: usize, stride: usize, ceil: bool) -> usize {
    let span = input as isize - kernel as isize;
    let stride = stride as isize;
    let steps = if ceil {
        span.div_euclid(stride) + isize::from(span.rem_euclid(stride) != 0)
    } else {
        span.div_euclid(stride)
    };
    let mut out = steps + 1;
    if ceil && (out - 1) * stride >= input as isize {
        out -= 1;
    }
    out.max(0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::pool::MaxPool2dConfig;

    #[test]
    fn matches_burns_max_pool_in_both_modes_on_odd_and_even_sizes() {
        let device = Device::flex();
        for (kernel, stride, h, w) in [
            (2, 2, 8, 8),
            (2, 2, 7, 9),
            (3, 2, 22, 22),
            (3, 2, 11, 10),
            (3, 2, 3, 3),
            (2, 2, 2, 3),
            (3, 1, 6, 5),
        ] {
            for ceil in [true, false] {
                let pool = MaxPool2dConfig::new([kernel, kernel])
                    .with_strides([stride, stride])
                    .with_ceil_mode(ceil)
                    .init();
                let (n, c) = (2, 3);
                let values: Vec<f32> = (0..n * c * h * w)
                    .map(|i| ((i * 53 % 97) as f32 - 48.0) / 7.0)
                    .collect();
                let x = || {
                    Tensor::<4>::from_data(TensorData::new(values.clone(), [n, c, h, w]), &device)
                };
                let (ours, burns) = (max_pool(&pool, x()), pool.forward(x()));
                assert_eq!(
                    ours.dims(),
                    burns.dims(),
                    "k {kernel} s {stride} {h}x{w} {ceil}"
                );
                assert_eq!(
                    ours.into_data().as_slice::<f32>().unwrap(),
                    burns.into_data().as_slice::<f32>().unwrap(),
                    "k {kernel} s {stride} {h}x{w} ceil {ceil}"
                );
            }
        }
    }
}
