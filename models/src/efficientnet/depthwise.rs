//! A depthwise convolution fused with its bias and ReLU6, for the CPU: what each MBConv block's
//! middle does once its batch norm is folded (`relu6(depthwise(x) + bias)`), in one pass over
//! the output instead of flex's three (the convolution, `clamp_min`, `clamp_max`) and without the
//! copy flex makes to pad an input asymmetrically (TensorFlow's "same" on a stride-2 layer).
//!
//! It works on the tensors' own buffers (flex hands a uniquely owned, contiguous tensor's data
//! over without copying, and takes a `Vec` back the same way): one output plane per channel and
//! image, the planes on rayon's threads, each row's interior in blocks of 16, 8 and 4 outputs
//! summed over every tap in registers and stored once; compiled for AVX-512 and AVX2 as well as
//! the baseline, picked at run time (`crate::simd`). Results differ from flex's in the order of the sums only (the parity
//! tests keep their tolerances).

use burn::tensor::{DType, Device, Tensor, TensorData};
use rayon::prelude::*;

use crate::simd::widest;

/// The shape of one depthwise layer on one input size: square kernel, same stride both ways,
/// TensorFlow "same" padding (half of the total before, rounded down, the rest after).
#[derive(Clone, Copy, Debug)]
struct Geometry {
    kernel: usize,
    stride: usize,
    height: usize,
    width: usize,
    out_height: usize,
    out_width: usize,
    pad_top: usize,
    pad_left: usize,
}

impl Geometry {
    fn new(kernel: usize, stride: usize, height: usize, width: usize) -> Self {
        let same = |size: usize| {
            let out = size.div_ceil(stride);
            let total = ((out.max(1) - 1) * stride + kernel).saturating_sub(size);
            (out, total / 2)
        };
        let (out_height, pad_top) = same(height);
        let (out_width, pad_left) = same(width);
        Self {
            kernel,
            stride,
            height,
            width,
            out_height,
            out_width,
            pad_top,
            pad_left,
        }
    }

    /// The output columns `x` whose input column `x * stride + kx - pad_left` is inside the row.
    fn columns(&self, kx: usize) -> std::ops::Range<usize> {
        let first = self.pad_left.saturating_sub(kx).div_ceil(self.stride);
        // The last input column is width - 1: x * stride <= width - 1 + pad_left - kx.
        let last = (self.width - 1 + self.pad_left)
            .checked_sub(kx)
            .map_or(0, |limit| limit / self.stride + 1);
        first..last.min(self.out_width)
    }
}

/// Whether [`depthwise_relu6`] can run `x` through the depthwise `weight`: f32 tensors on flex
/// (the CPU); elsewhere (wgpu) Burn's own ops run.
pub(crate) fn applies(x: &Tensor<4>, weight: &Tensor<4>) -> bool {
    let [_, channels, ..] = x.dims();
    let [out, per_group, k, k2] = weight.dims();
    x.device() == Device::flex()
        && x.dtype() == DType::F32
        && weight.dtype() == DType::F32
        && out == channels
        && per_group == 1
        && k == k2
}

/// `min(max(depthwise(x) + bias, 0), 6)` for `x` of shape `[n, c, h, w]`, `weight`
/// `[c, 1, k, k]`, `bias` `[c]`, where [`applies`] says so.
pub(crate) fn depthwise_relu6(
    x: Tensor<4>,
    weight: &Tensor<4>,
    bias: &Tensor<1>,
    stride: usize,
) -> Tensor<4> {
    let device = x.device();
    let [n, c, h, w] = x.dims();
    let [_, _, k, _] = weight.dims();
    let (weights, biases, input) = (
        weight.clone().into_data(),
        bias.clone().into_data(),
        x.into_data(),
    );
    let (weights, biases, input) = (f32s(&weights), f32s(&biases), f32s(&input));
    let g = Geometry::new(k, stride, h, w);
    let plane = g.out_height * g.out_width;
    let mut out = vec![0.0f32; n * c * plane];
    out.par_chunks_mut(plane)
        .enumerate()
        .for_each(|(index, output)| {
            let channel = index % c;
            let taps = &weights[channel * k * k..(channel + 1) * k * k];
            let input = &input[index * h * w..(index + 1) * h * w];
            run_plane(&g, input, taps, biases[channel], output);
        });
    Tensor::from_data(
        TensorData::new(out, [n, c, g.out_height, g.out_width]),
        &device,
    )
}

fn f32s(data: &TensorData) -> &[f32] {
    data.as_slice::<f32>()
        .expect("f32 tensors on flex (checked by `applies`)")
}

widest! {
    /// One channel of one image, with the widest vector instructions the CPU has.
    fn run_plane(g: &Geometry, input: &[f32], taps: &[f32], bias: f32, output: &mut [f32]) => plane
}

/// The kernel sizes and strides of EfficientNet-Lite get their own code (the taps unrolled).
#[inline(always)]
fn plane(g: &Geometry, input: &[f32], taps: &[f32], bias: f32, output: &mut [f32]) {
    match (g.kernel, g.stride) {
        (3, 1) => fixed::<3, 1>(g, input, taps, bias, output),
        (3, 2) => fixed::<3, 2>(g, input, taps, bias, output),
        (5, 1) => fixed::<5, 1>(g, input, taps, bias, output),
        (5, 2) => fixed::<5, 2>(g, input, taps, bias, output),
        _ => any_size(g, input, taps, bias, output),
    }
}

fn relu6(v: f32) -> f32 {
    v.clamp(0.0, 6.0)
}

/// A `K`x`K` kernel at stride `S`. Each output row: the columns whose taps all fall inside the
/// input row (the interior) in blocks of 16 outputs, each block summed over every tap in
/// registers and stored once (then blocks of 8 and 4); the columns near the edges (and what is
/// left of the interior) one by one, skipping the taps that fall in the padding.
#[inline(always)]
fn fixed<const K: usize, const S: usize>(
    g: &Geometry,
    input: &[f32],
    taps: &[f32],
    bias: f32,
    output: &mut [f32],
) {
    let taps: [[f32; K]; K] = std::array::from_fn(|ky| std::array::from_fn(|kx| taps[ky * K + kx]));
    let (width, pad_left) = (g.width, g.pad_left);
    // Interior: x * S - pad_left >= 0 and x * S + K - 1 - pad_left <= width - 1.
    let first = pad_left.div_ceil(S);
    let end = (width + pad_left)
        .checked_sub(K)
        .map_or(0, |limit| limit / S + 1)
        .min(g.out_width)
        .max(first);
    for (y, row) in output.chunks_exact_mut(g.out_width).enumerate() {
        let lines: [Option<&[f32]>; K] = std::array::from_fn(|ky| {
            let iy = (y * S + ky).checked_sub(g.pad_top)?;
            (iy < g.height).then(|| &input[iy * width..(iy + 1) * width])
        });
        let one = |x: usize| -> f32 {
            let mut sum = bias;
            for (ky, line) in lines.iter().enumerate() {
                let Some(line) = line else { continue };
                for (kx, weight) in taps[ky].iter().enumerate() {
                    if let Some(ix) = (x * S + kx).checked_sub(pad_left) {
                        if ix < width {
                            sum += weight * line[ix];
                        }
                    }
                }
            }
            relu6(sum)
        };
        let mut x = 0;
        while x < first.min(g.out_width) {
            row[x] = one(x);
            x += 1;
        }
        while x + 16 <= end {
            block::<K, S, 16>(&taps, &lines, bias, x * S - pad_left, &mut row[x..x + 16]);
            x += 16;
        }
        while x + 8 <= end {
            block::<K, S, 8>(&taps, &lines, bias, x * S - pad_left, &mut row[x..x + 8]);
            x += 8;
        }
        while x + 4 <= end {
            block::<K, S, 4>(&taps, &lines, bias, x * S - pad_left, &mut row[x..x + 4]);
            x += 4;
        }
        while x < g.out_width {
            row[x] = one(x);
            x += 1;
        }
    }
}

/// `LANES` outputs of the interior whose first tap reads input column `start`: summed over every
/// tap in registers, stored once.
#[inline(always)]
fn block<const K: usize, const S: usize, const LANES: usize>(
    taps: &[[f32; K]; K],
    lines: &[Option<&[f32]>; K],
    bias: f32,
    start: usize,
    out: &mut [f32],
) {
    let mut acc = [bias; LANES];
    for (line, taps) in lines.iter().zip(taps) {
        let Some(line) = line else { continue };
        for (kx, &weight) in taps.iter().enumerate() {
            let segment = &line[start + kx..start + kx + (LANES - 1) * S + 1];
            for (lane, a) in acc.iter_mut().enumerate() {
                *a += weight * segment[lane * S];
            }
        }
    }
    for (out, a) in out.iter_mut().zip(acc) {
        *out = relu6(a);
    }
}

/// Any other kernel or stride: each output row starts at the bias and every tap whose input row
/// is inside the image adds its weight times that row over the columns it reaches; then ReLU6.
fn any_size(g: &Geometry, input: &[f32], taps: &[f32], bias: f32, output: &mut [f32]) {
    let k = g.kernel;
    let columns: Vec<std::ops::Range<usize>> = (0..k).map(|kx| g.columns(kx)).collect();
    for (y, row) in output.chunks_exact_mut(g.out_width).enumerate() {
        row.fill(bias);
        for ky in 0..k {
            let Some(iy) = (y * g.stride + ky).checked_sub(g.pad_top) else {
                continue;
            };
            if iy >= g.height {
                continue;
            }
            let line = &input[iy * g.width..(iy + 1) * g.width];
            for kx in 0..k {
                let weight = taps[ky * k + kx];
                let range = columns[kx].clone();
                if range.is_empty() {
                    continue;
                }
                // The input column of output column x: x * stride + kx - pad_left.
                let start = range.start * g.stride + kx - g.pad_left;
                let line = &line[start..];
                for (o, i) in row[range].iter_mut().zip(line.iter().step_by(g.stride)) {
                    *o += weight * i;
                }
            }
        }
        for v in row.iter_mut() {
            *v = relu6(*v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution written out the plain way: every output, every tap, padding as zeros.
    fn naive(
        input: &[f32],
        [n, c, h, w]: [usize; 4],
        weights: &[f32],
        k: usize,
        biases: &[f32],
        stride: usize,
    ) -> Vec<f32> {
        let g = Geometry::new(k, stride, h, w);
        let mut out = Vec::new();
        for image in 0..n {
            for ch in 0..c {
                for y in 0..g.out_height {
                    for x in 0..g.out_width {
                        let mut sum = biases[ch];
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (y * stride + ky) as isize - g.pad_top as isize;
                                let ix = (x * stride + kx) as isize - g.pad_left as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                let at = ((image * c + ch) * h + iy as usize) * w + ix as usize;
                                sum += weights[(ch * k + ky) * k + kx] * input[at];
                            }
                        }
                        out.push(sum.clamp(0.0, 6.0));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_plain_convolution_on_odd_and_even_sizes_and_both_strides() {
        let device = Device::flex();
        for (k, stride, h, w) in [
            (3, 1, 7, 7),
            (3, 2, 8, 8),
            (3, 2, 7, 9),
            (5, 1, 6, 5),
            (5, 2, 14, 14),
            (5, 2, 3, 2),
            (3, 1, 1, 1),
            (3, 1, 40, 37),
            (5, 2, 41, 64),
            (3, 2, 33, 50),
            (4, 3, 10, 11),
        ] {
            let (n, c) = (2, 3);
            let shape = [n, c, h, w];
            let input: Vec<f32> = (0..n * c * h * w)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 10.0)
                .collect();
            let weights: Vec<f32> = (0..c * k * k)
                .map(|i| ((i * 13 % 17) as f32 - 8.0) / 8.0)
                .collect();
            let biases = [0.5, -1.0, 2.0];
            let x = Tensor::<4>::from_data(TensorData::new(input.clone(), shape), &device);
            let weight =
                Tensor::<4>::from_data(TensorData::new(weights.clone(), [c, 1, k, k]), &device);
            let bias = Tensor::<1>::from_data(TensorData::new(biases.to_vec(), [c]), &device);
            assert!(applies(&x, &weight));
            let got = depthwise_relu6(x, &weight, &bias, stride);
            let want = naive(&input, shape, &weights, k, &biases, stride);
            let got = got.into_data();
            let got = got.as_slice::<f32>().unwrap();
            assert_eq!(got.len(), want.len(), "k {k} stride {stride} {h}x{w}");
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a - b).abs() < 1e-5,
                    "k {k} stride {stride} {h}x{w}: {a} vs {b}"
                );
            }
        }
    }
}
