//! The preprocessing: an image to the model's input.
//!
//! The upstream packages ship no preprocessing for the Lite models, so this is a documented
//! choice (see the module docs): RGB, shorter side resized to the native size (bilinear), center
//! crop, `(x - 127) / 128`, channels first.

use image::RgbImage;

use crate::image_io::{decode_rgb, ImageError};

/// Decodes an image (PNG or JPEG) and prepares it for a model of input size `size`: RGB, shorter
/// side resized to `size` (bilinear), center crop, `(x - 127) / 128`, channels first
/// (`3 * size * size` floats). Bytes that are not a decodable image are an error.
pub fn prepare_image(bytes: &[u8], size: usize) -> Result<Vec<f32>, ImageError> {
    Ok(prepare_rgb(&decode_rgb(bytes)?, size))
}

/// [`prepare_image`] for an image already decoded.
pub fn prepare_rgb(rgb: &RgbImage, size: usize) -> Vec<f32> {
    let (w, h) = rgb.dimensions();
    let target = size as u32;
    let shorter = w.min(h) as f64;
    let scale = f64::from(target) / shorter;
    let nw = ((f64::from(w) * scale).round() as u32).max(target);
    let nh = ((f64::from(h) * scale).round() as u32).max(target);
    let resized = image::imageops::resize(rgb, nw, nh, image::imageops::FilterType::Triangle);
    let (left, top) = ((nw - target) / 2, (nh - target) / 2);
    let cropped = image::imageops::crop_imm(&resized, left, top, target, target).to_image();
    let plane = size * size;
    let mut out = vec![0f32; 3 * plane];
    for (i, pixel) in cropped.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(pixel[c]) - 127.0) / 128.0;
        }
    }
    out
}
