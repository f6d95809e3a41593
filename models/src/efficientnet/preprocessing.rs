//! The preprocessing: an image to the model's input, as upstream evaluated the Lite models.
//!
//! Upstream is TensorFlow, `tensorflow/tpu`, `models/official/efficientnet/`, at the commit that
//! published the Lite checkpoints and their accuracies (8f817a89d3645e12c772555a4e7c40474c8984c4,
//! 2020-03-03). Its evaluation (`main.py --mode=eval`, which gave the README's FP32 accuracies)
//! runs `preprocessing.preprocess_for_eval` on the encoded image:
//!
//! - `_decode_and_center_crop` (`preprocessing.py` lines 118-135): the crop side is
//!   `tf.cast((image_size / (image_size + CROP_PADDING)) * tf.cast(min(h, w), tf.float32), tf.int32)`
//!   with `CROP_PADDING = 32` (line 26): the ratio is a Python float (f64) turned into an f32
//!   constant, the product is f32 and the cast truncates; the window starts at
//!   `((h - crop) + 1) // 2`, `((w - crop) + 1) // 2`; the bytes are decoded with `channels=3`
//!   (grayscale replicated, alpha dropped);
//! - `_resize_image` (lines 88-93) with the `resize_method` `main.py` passes for Lite:
//!   `tf.image.ResizeMethod.BILINEAR` ("lite or edgetpu use binlinear for easier
//!   post-quantization", `main.py` lines 650-655, for the training and the evaluation input
//!   alike), so `tf.compat.v1.image.resize([image], [size, size], BILINEAR)`: the legacy
//!   `ResizeBilinear` kernel (`align_corners=False`, `half_pixel_centers=False`), float32 out, no
//!   antialiasing, no rounding or clipping back to 8 bits;
//! - `preprocess_for_eval` (lines 203-222): `convert_image_dtype(float32)` of a float32 image is
//!   the identity;
//! - `main.py`'s `normalize_features` (lines 322-332) with `lite/efficientnet_lite_builder.py`'s
//!   `MEAN_RGB = [127.0] * 3`, `STDDEV_RGB = [128.0] * 3` (lines 29-30): `(x - 127) / 128` in f32.
//!
//! Not the resize of `eval_ckpt_main.py` (the README's one-image example), which calls
//! `preprocess_image` without a `resize_method` (lines 80-82), so `_resize_image`'s default,
//! `tf.image.resize_bicubic`: the training input and the published evaluation of the Lite models
//! are bilinear. And the padding of 2020: since 22d5cab9 (2021-11-15) `preprocessing.py` has
//! `CROP_FRACTION = 0.875` and `crop_padding = round(image_size * (1 / CROP_FRACTION - 1))`, the
//! same 32 for Lite0 (224) but 37 for Lite2 (260); tandem keeps the 32 the published Lite2
//! accuracy was measured with.
//!
//! Checked against TensorFlow itself: `tests/reference/efficientnet_preprocess.py` runs upstream's
//! functions (TensorFlow 2.21) on the five sample photos, and `tests/suite/efficientnet.rs`
//! finds tandem's inputs identical bit for bit (the same f32 operations in the same order). What
//! can differ from upstream: decoding is the `image` crate's (a JPEG decoder can differ from
//! TensorFlow's libjpeg-turbo by a level here and there; 8-bit PNG is exact), and an image
//! under 2 pixels on a side gets a 1-pixel crop where upstream's crop of 0 fails.

use image::RgbImage;

use crate::image_io::{decode_rgb, ImageError};

/// Upstream's `CROP_PADDING`: the center crop keeps `size / (size + 32)` of the shorter side.
pub const CROP_PADDING: usize = 32;

/// `(x - MEAN) / STDDEV`: `MEAN_RGB` and `STDDEV_RGB` of upstream's Lite builder.
const MEAN: f32 = 127.0;
const STDDEV: f32 = 128.0;

/// Decodes an image (PNG or JPEG) and prepares it for a model of input size `size` as upstream's
/// evaluation does (see [`crate::efficientnet`]; this file's module docs cite the upstream
/// lines): RGB, the center square of `size / (size + 32)` of the shorter side, TensorFlow's
/// legacy bilinear resize to `size` in f32, `(x - 127) / 128`, channels first (`3 * size * size`
/// floats). Bytes that are not a decodable image are an error.
pub fn prepare_image(bytes: &[u8], size: usize) -> Result<Vec<f32>, ImageError> {
    Ok(prepare_rgb(&decode_rgb(bytes)?, size))
}

/// [`prepare_image`] for an image already decoded.
pub fn prepare_rgb(rgb: &RgbImage, size: usize) -> Vec<f32> {
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    assert!(w > 0 && h > 0, "an image without pixels ({w}x{h})");
    let crop = crop_side(size, w.min(h));
    // Upstream's `((h - crop) + 1) // 2`.
    let (top, left) = ((h - crop).div_ceil(2), (w - crop).div_ceil(2));
    let ys = taps(size, crop);
    let xs = taps(size, crop);
    let (pixels, stride) = (rgb.as_raw(), 3 * w);
    let at =
        |y: usize, x: usize, c: usize| f32::from(pixels[(top + y) * stride + 3 * (left + x) + c]);
    let plane = size * size;
    let mut out = vec![0f32; 3 * plane];
    for (oy, ty) in ys.iter().enumerate() {
        for (ox, tx) in xs.iter().enumerate() {
            for c in 0..3 {
                // ResizeBilinear's compute_lerp, operation for operation (f32, no fused multiply-add).
                let (top_left, top_right) = (at(ty.lower, tx.lower, c), at(ty.lower, tx.upper, c));
                let (bottom_left, bottom_right) =
                    (at(ty.upper, tx.lower, c), at(ty.upper, tx.upper, c));
                let upper = top_left + (top_right - top_left) * tx.lerp;
                let lower = bottom_left + (bottom_right - bottom_left) * tx.lerp;
                let value = upper + (lower - upper) * ty.lerp;
                out[c * plane + oy * size + ox] = (value - MEAN) / STDDEV;
            }
        }
    }
    out
}

/// The side of upstream's center crop of an image whose shorter side is `shorter`:
/// `int32(f32(size / (size + 32)) * f32(shorter))`, at least 1 pixel (upstream fails on a crop
/// of 0, which only an image under 2 pixels high or wide gives).
pub fn crop_side(size: usize, shorter: usize) -> usize {
    let ratio = (size as f64 / (size + CROP_PADDING) as f64) as f32;
    ((ratio * shorter as f32) as usize).clamp(1, shorter.max(1))
}

/// One output coordinate's two source indices and the weight of the second one.
struct Tap {
    lower: usize,
    upper: usize,
    lerp: f32,
}

/// TensorFlow's `compute_interpolation_weights` with the `LegacyScaler`
/// (`resize_bilinear_op.cc`): `scale = in / f32(out)`, `x = f32(i) * scale`, the taps
/// `floor(x)` and `min(ceil(x), in - 1)`, the weight `x - floor(x)`, all in f32.
fn taps(out: usize, input: usize) -> Vec<Tap> {
    let scale = input as f32 / out as f32;
    (0..out)
        .map(|i| {
            let x = i as f32 * scale;
            let floor = x.floor();
            Tap {
                lower: floor as usize,
                upper: (x.ceil() as usize).min(input - 1),
                lerp: x - floor,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crop_keeps_size_over_size_plus_32_of_the_shorter_side() {
        // 224 / 256 = 0.875 exactly; 260 / 292 rounds to f32 first.
        assert_eq!(crop_side(224, 300), 262);
        assert_eq!(crop_side(224, 512), 448);
        assert_eq!(crop_side(224, 256), 224);
        assert_eq!(crop_side(260, 300), 267);
        assert_eq!(crop_side(260, 292), 260);
        assert_eq!(crop_side(224, 1), 1);
    }

    #[test]
    fn a_crop_of_the_native_size_is_not_resampled() {
        // Size 32: the crop keeps 32 / 64 of the shorter side, 32 pixels of 64.
        let rgb = RgbImage::from_fn(70, 64, |x, y| image::Rgb([x as u8 * 3, y as u8 * 2, 7]));
        assert_eq!(crop_side(32, 64), 32);
        let out = prepare_rgb(&rgb, 32);
        // The window starts at ((64 - 32) + 1) / 2 = 16 down and ((70 - 32) + 1) / 2 = 19 across.
        let plane = 32 * 32;
        for y in 0..32 {
            for x in 0..32 {
                let pixel = rgb.get_pixel(19 + x as u32, 16 + y as u32);
                for c in 0..3 {
                    let want = (f32::from(pixel[c]) - 127.0) / 128.0;
                    assert_eq!(out[c * plane + y * 32 + x], want, "({y}, {x}, {c})");
                }
            }
        }
    }

    #[test]
    fn legacy_taps_start_at_the_corner() {
        // 262 -> 224: scale 1.1696428, no half-pixel offset: the first output is the first input.
        let t = taps(224, 262);
        assert_eq!((t[0].lower, t[0].upper, t[0].lerp), (0, 0, 0.0));
        let last = &t[223];
        assert_eq!(last.lower, 260);
        assert_eq!(last.upper, 261);
        // Upscaling: the last taps clamp to the last pixel.
        let t = taps(4, 2);
        assert_eq!(
            t.iter()
                .map(|t| (t.lower, t.upper, t.lerp))
                .collect::<Vec<_>>(),
            vec![(0, 0, 0.0), (0, 1, 0.5), (1, 1, 0.0), (1, 1, 0.5)]
        );
    }
}
