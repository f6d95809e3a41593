//! CLIP's preprocessing, as transformers' `CLIPImageProcessorPil` does it (pixel for pixel): the
//! shorter side resized to `size` with Pillow's bicubic (the longer to `int(size * long / short)`),
//! a center crop `size x size`, `/255`, normalised with OpenAI's mean and std, channels first.
//! See [`crate::resize`].

use image::RgbImage;

use crate::image_io::{decode_rgb, ImageError};
use crate::resize::{center_crop, rescale_normalize_chw, resize_rgb, shortest_edge_size, Filter};

/// CLIP's per-channel mean (OpenAI's).
pub const MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// CLIP's per-channel standard deviation (OpenAI's).
pub const STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// Decodes an image and prepares it: `3 * size * size` floats, channels first.
pub fn prepare_image(bytes: &[u8], size: usize) -> Result<Vec<f32>, ImageError> {
    Ok(prepare_rgb(&decode_rgb(bytes)?, size))
}

/// [`prepare_image`] for an image already decoded.
pub fn prepare_rgb(rgb: &RgbImage, size: usize) -> Vec<f32> {
    let target = u32::try_from(size).expect("an image size fits in u32");
    let (w, h) = rgb.dimensions();
    let (nw, nh) = shortest_edge_size(w, h, target);
    let resized = resize_rgb(rgb, nw, nh, Filter::Bicubic);
    let cropped = center_crop(&resized, target, target);
    rescale_normalize_chw(&cropped, &MEAN, &STD)
}
