//! Pillow's `Image.resize`, byte for byte, and the transformers image-processor steps around it
//! (shortest-edge size, center crop, rescale and normalise) that CLIP's and BLIP's reference
//! processors run (`CLIPImageProcessorPil`, `BlipImageProcessorPil`).
//!
//! [`resize`] follows `ImagingResample` in Pillow's `src/libImaging/Resample.c` as of Pillow
//! 13.0.0 (checked byte for byte against Pillow 13.0.0 by `tests/suite/resize.rs`, with
//! references from `tests/reference/resize.py`), 8 bits per channel:
//!
//! - the filter's support is scaled by the scale factor when downscaling (antialiasing), the
//!   coefficients of each output pixel are normalised to sum 1 in `f64`, then turned into
//!   fixed point with [`PRECISION_BITS`] = 32 - 8 - 2 fraction bits (rounded half away from 0);
//! - two separable passes, the first one's result rounded and clipped to `u8`: horizontal first
//!   (only over the rows the vertical pass reads), then vertical, unless the height loses more
//!   than twice as many pixels as the width ([`vertical_first`]: new in Pillow 13.0, where
//!   Pillow 12 always went horizontal first, so its bytes differ there); a pass whose size does
//!   not change is skipped, and a resize to the same size is a copy;
//! - each output value is `clip8((1 << (PRECISION_BITS - 1) + sum(pixel * coeff)) >> PRECISION_BITS)`.
//!
//! Pillow's `box` and `reducing_gap` are not supported (transformers passes neither). Channels are
//! independent, so any number of interleaved 8-bit channels (L, RGB) gives Pillow's result; Pillow
//! premultiplies RGBA and LA by alpha first, which [`resize`] does not.

use image::RgbImage;

/// Fraction bits of the fixed-point coefficients (Pillow's `PRECISION_BITS`).
pub const PRECISION_BITS: u32 = 32 - 8 - 2;

/// A resampling filter, as Pillow's `Image.Resampling` (nearest neighbour aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `Image.Resampling.BOX`.
    Box,
    /// `Image.Resampling.BILINEAR` (a triangle, support 1).
    Bilinear,
    /// `Image.Resampling.HAMMING`.
    Hamming,
    /// `Image.Resampling.BICUBIC` (Keys' cubic, a = -0.5, support 2).
    Bicubic,
    /// `Image.Resampling.LANCZOS` (3 lobes).
    Lanczos,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Box => 0.5,
            Filter::Bilinear | Filter::Hamming => 1.0,
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Filter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            Filter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    // `0.54f + 0.46f * cos(x)`: float constants promoted to double.
                    x.sin() / x * (f64::from(0.54f32) + f64::from(0.46f32) * x.cos())
                }
            }
            Filter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Filter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * std::f64::consts::PI;
    x.sin() / x
}

/// The fixed-point coefficients of one pass: for output `i`, the input range
/// `start[i]..start[i] + taps[i].len()` and its weights.
struct Coefficients {
    start: Vec<usize>,
    weights: Vec<Vec<i32>>,
}

/// `precompute_coeffs` then `normalize_coeffs_8bpc`, for the full box `0..in_size`.
fn coefficients(in_size: usize, out_size: usize, filter: Filter) -> Coefficients {
    // `(double)(in1 - in0) / outSize`, with in0 = 0 and in1 = in_size (exact in `float`).
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let inv_filterscale = 1.0 / filterscale;
    let mut start = Vec::with_capacity(out_size);
    let mut weights = Vec::with_capacity(out_size);
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // `(int)(v + 0.5)`: truncation toward zero, as `as i64` does.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
        let count = (xmax - xmin).max(0) as usize;
        let mut k: Vec<f64> = (0..count)
            .map(|x| filter.weight((x as f64 + xmin as f64 - center + 0.5) * inv_filterscale))
            .collect();
        let ww: f64 = k.iter().sum();
        if ww != 0.0 {
            for w in &mut k {
                *w /= ww;
            }
        }
        let one = f64::from(1u32 << PRECISION_BITS);
        let fixed = k
            .iter()
            .map(|&w| {
                if w < 0.0 {
                    (-0.5 + w * one) as i32
                } else {
                    (0.5 + w * one) as i32
                }
            })
            .collect();
        start.push(xmin as usize);
        weights.push(fixed);
    }
    Coefficients { start, weights }
}

/// Pillow's `clip8`: the accumulator shifted down, clipped to `0..=255`.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Resizes interleaved 8-bit pixels (`channels` per pixel, rows of `width` pixels, no padding)
/// to `new_width x new_height` as Pillow's `Image.resize(size, filter)` does.
///
/// # Panics
/// If `pixels.len() != width * height * channels`, or a size or `channels` is 0.
pub fn resize(
    pixels: &[u8],
    width: usize,
    height: usize,
    channels: usize,
    new_width: usize,
    new_height: usize,
    filter: Filter,
) -> Vec<u8> {
    assert!(
        width > 0 && height > 0 && new_width > 0 && new_height > 0 && channels > 0,
        "resize: empty image ({width}x{height} -> {new_width}x{new_height}, {channels} channels)"
    );
    assert_eq!(
        pixels.len(),
        width * height * channels,
        "resize: {width}x{height}x{channels} pixels expected"
    );
    if (width, height) == (new_width, new_height) {
        return pixels.to_vec();
    }
    if vertical_first(width, height, new_width, new_height) {
        let vertical = coefficients(height, new_height, filter);
        let temp = vertical_pass(pixels, width * channels, 0, &vertical);
        if new_width == width {
            return temp;
        }
        let horizontal = coefficients(width, new_width, filter);
        return horizontal_pass(&temp, width, channels, 0, new_height, &horizontal);
    }
    let vertical = coefficients(height, new_height, filter);
    if new_width == width {
        return vertical_pass(pixels, width * channels, 0, &vertical);
    }
    // The rows the vertical pass reads: the horizontal pass makes only those.
    let (first_row, last_row) = if new_height == height {
        (0, height)
    } else {
        let last = new_height - 1;
        (
            vertical.start[0],
            vertical.start[last] + vertical.weights[last].len(),
        )
    };
    let horizontal = coefficients(width, new_width, filter);
    let temp = horizontal_pass(pixels, width, channels, first_row, last_row, &horizontal);
    if new_height == height {
        return temp;
    }
    vertical_pass(&temp, new_width * channels, first_row, &vertical)
}

/// Whether Pillow 13 runs the vertical pass first: when the height loses more than twice as many
/// pixels as the width (`(in_h - h) > 0 && (in_h - h) > (in_w - w) * 2`, in `int`), so that the
/// horizontal pass has fewer rows. Pillow 12 and earlier always ran the horizontal pass first
/// (except, from Python, for images over 100 times taller than wide).
pub fn vertical_first(width: usize, height: usize, new_width: usize, new_height: usize) -> bool {
    let lost_rows = height as i64 - new_height as i64;
    let lost_columns = width as i64 - new_width as i64;
    lost_rows > 0 && lost_rows > lost_columns * 2
}

/// `_ImagingResampleHorizontal_8bpc`: rows `first_row..last_row` of `pixels` (`width` pixels of
/// `channels` bytes each) resampled to `coeffs.start.len()` pixels each.
fn horizontal_pass(
    pixels: &[u8],
    width: usize,
    channels: usize,
    first_row: usize,
    last_row: usize,
    coeffs: &Coefficients,
) -> Vec<u8> {
    let new_width = coeffs.start.len();
    let mut out = vec![0u8; (last_row - first_row) * new_width * channels];
    for (y, line_out) in out.chunks_exact_mut(new_width * channels).enumerate() {
        let line_in = &pixels[(y + first_row) * width * channels..][..width * channels];
        for (xx, pixel_out) in line_out.chunks_exact_mut(channels).enumerate() {
            let xmin = coeffs.start[xx];
            let taps = &coeffs.weights[xx];
            for (c, value) in pixel_out.iter_mut().enumerate() {
                let mut acc = HALF;
                for (x, &k) in taps.iter().enumerate() {
                    acc += i32::from(line_in[(xmin + x) * channels + c]) * k;
                }
                *value = clip8(acc);
            }
        }
    }
    out
}

/// `_ImagingResampleVertical_8bpc`: rows of `stride` bytes, the first of which is the source's row
/// `row_offset`, resampled to `coeffs.start.len()` rows.
fn vertical_pass(
    pixels: &[u8],
    stride: usize,
    row_offset: usize,
    coeffs: &Coefficients,
) -> Vec<u8> {
    let new_height = coeffs.start.len();
    let mut out = vec![0u8; new_height * stride];
    let mut acc = vec![0i32; stride];
    for (yy, line_out) in out.chunks_exact_mut(stride).enumerate() {
        let ymin = coeffs.start[yy] - row_offset;
        acc.fill(HALF);
        // Row by row: the same sums as Pillow's column loops, in the same order per value.
        for (y, &k) in coeffs.weights[yy].iter().enumerate() {
            let line_in = &pixels[(ymin + y) * stride..][..stride];
            for (a, &p) in acc.iter_mut().zip(line_in) {
                *a += i32::from(p) * k;
            }
        }
        for (value, &a) in line_out.iter_mut().zip(&acc) {
            *value = clip8(a);
        }
    }
    out
}

/// [`resize`] for an RGB image.
pub fn resize_rgb(rgb: &RgbImage, new_width: u32, new_height: u32, filter: Filter) -> RgbImage {
    let (width, height) = rgb.dimensions();
    let pixels = resize(
        rgb.as_raw(),
        width as usize,
        height as usize,
        3,
        new_width as usize,
        new_height as usize,
        filter,
    );
    RgbImage::from_raw(new_width, new_height, pixels).expect("the resized buffer has the size")
}

/// The `(width, height)` transformers resizes to for `size={"shortest_edge": size}`
/// (`get_resize_output_image_size` with `default_to_square=False`): the shorter side becomes
/// `size`, the longer `int(size * long / short)` (truncated, in `f64`).
pub fn shortest_edge_size(width: u32, height: u32, size: u32) -> (u32, u32) {
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = (f64::from(size) * f64::from(long) / f64::from(short)) as u32;
    if width <= height {
        (size, new_long)
    } else {
        (new_long, size)
    }
}

/// transformers' `center_crop` to `width x height`: offsets `(w - width) // 2` and
/// `(h - height) // 2`. The image must be at least that large (transformers pads a smaller one
/// with zeros; a shortest-edge resize to the crop size never needs it).
///
/// # Panics
/// If the image is smaller than the crop.
pub fn center_crop(rgb: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = rgb.dimensions();
    assert!(
        w >= width && h >= height,
        "center_crop: a {w}x{h} image is smaller than the {width}x{height} crop"
    );
    image::imageops::crop_imm(rgb, (w - width) / 2, (h - height) / 2, width, height).to_image()
}

/// transformers' `rescale` then `normalize`, channels first: each value is
/// `(f32(x as f64 * (1 / 255)) - mean[c]) / std[c]` in `f32`, exactly as NumPy computes it.
pub fn rescale_normalize_chw(rgb: &RgbImage, mean: &[f32; 3], std: &[f32; 3]) -> Vec<f32> {
    let plane = rgb.width() as usize * rgb.height() as usize;
    let mut out = vec![0f32; 3 * plane];
    let factor = 1.0f64 / 255.0;
    for (i, pixel) in rgb.pixels().enumerate() {
        for c in 0..3 {
            let rescaled = (f64::from(pixel[c]) * factor) as f32;
            out[c * plane + i] = (rescaled - mean[c]) / std[c];
        }
    }
    out
}
