//! The preprocessing: an RGB image as float planes ([`Planes`]), the image pyramid P-Net searches
//! ([`pyramid`]) and the crops R-Net and O-Net look at ([`crops`]), all area-resized as torch's
//! `area` mode and normalised as upstream ([`normalize`]).

use super::cascade::Candidate;

/// Upstream's input normalisation: `(pixel - 127.5) * 0.0078125`, for pixels in 0..=255.
pub fn normalize(pixel: f32) -> f32 {
    (pixel - 127.5) * 0.0078125
}

/// An RGB image as three planes of f32 in 0..=255: what the pyramid and the crops are cut from.
#[derive(Clone, Debug)]
pub struct Planes {
    data: Vec<f32>,
    w: usize,
    h: usize,
}

impl Planes {
    pub fn new(image: &image::RgbImage) -> Self {
        let (w, h) = (image.width() as usize, image.height() as usize);
        let mut data = vec![0f32; 3 * w * h];
        for (i, pixel) in image.pixels().enumerate() {
            for c in 0..3 {
                data[c * w * h + i] = f32::from(pixel[c]);
            }
        }
        Self { data, w, h }
    }

    pub fn width(&self) -> usize {
        self.w
    }

    pub fn height(&self) -> usize {
        self.h
    }

    /// The region rows `y0..y1`, columns `x0..x1`, resized to `oh x ow` in torch's `area` mode
    /// and normalised, channels first, appended to `out`.
    fn area_resize_into(
        &self,
        (y0, y1): (usize, usize),
        (x0, x1): (usize, usize),
        oh: usize,
        ow: usize,
        out: &mut Vec<f32>,
    ) {
        let (ih, iw) = (y1 - y0, x1 - x0);
        let window = |i: usize, n_in: usize, n_out: usize| {
            (i * n_in / n_out, ((i + 1) * n_in).div_ceil(n_out))
        };
        let cols: Vec<(usize, usize)> = (0..ow).map(|j| window(j, iw, ow)).collect();
        for c in 0..3 {
            let plane = &self.data[c * self.w * self.h..(c + 1) * self.w * self.h];
            for i in 0..oh {
                let (r0, r1) = window(i, ih, oh);
                for &(c0, c1) in &cols {
                    let mut sum = 0f64;
                    for r in r0..r1 {
                        let row = (y0 + r) * self.w + x0;
                        for v in &plane[row + c0..row + c1] {
                            sum += f64::from(*v);
                        }
                    }
                    let mean = sum / ((r1 - r0) * (c1 - c0)) as f64;
                    out.push(normalize(mean as f32));
                }
            }
        }
    }
}

/// One level of the pyramid: the image area-resized to `h x w` (its `scale`), normalised,
/// channels first.
#[derive(Clone, Debug)]
pub struct Level {
    pub scale: f64,
    pub h: usize,
    pub w: usize,
    pub data: Vec<f32>,
}

/// Step 1a (CPU): the image resized to each scale, as upstream: `(int(h * s + 1), int(w * s + 1))`.
pub fn pyramid(img: &Planes, scales: &[f64]) -> Vec<Level> {
    let (h, w) = (img.h, img.w);
    scales
        .iter()
        .map(|&scale| {
            let (sh, sw) = (
                (h as f64 * scale + 1.0) as usize,
                (w as f64 * scale + 1.0) as usize,
            );
            let mut data = Vec::with_capacity(3 * sh * sw);
            img.area_resize_into((0, h), (0, w), sh, sw, &mut data);
            Level {
                scale,
                h: sh,
                w: sw,
                data,
            }
        })
        .collect()
}

/// Steps 2a and 3a (CPU), upstream's `pad` and crop: each box truncated to integers and clamped
/// into the image, rows `y - 1 .. ey`, columns `x - 1 .. ex` area-resized to `size x size` and
/// normalised. Returns the boxes that have a crop (see the module's note) and the crops, channels
/// first, one after the other.
pub fn crops(img: &Planes, boxes: Vec<Candidate>, size: usize) -> (Vec<Candidate>, Vec<f32>) {
    let mut data = Vec::with_capacity(boxes.len() * 3 * size * size);
    let mut kept = Vec::with_capacity(boxes.len());
    let (w, h) = (img.w as i64, img.h as i64);
    for c in boxes {
        let [x, y, ex, ey] = c.b.map(|v| v.trunc() as i64);
        let (x, y, ex, ey) = (x.max(1), y.max(1), ex.min(w), ey.min(h));
        if ey > y - 1 && ex > x - 1 {
            img.area_resize_into(
                ((y - 1) as usize, ey as usize),
                ((x - 1) as usize, ex as usize),
                size,
                size,
                &mut data,
            );
            kept.push(c);
        }
    }
    (kept, data)
}
