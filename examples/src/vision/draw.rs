//! Boxes and landmarks drawn on an image (a few lines instead of a drawing crate).

use image::{Rgb, RgbImage};
use tandem_models::mtcnn::Face;

/// Green boxes, red landmarks.
pub const BOX: Rgb<u8> = Rgb([0, 220, 60]);
pub const LANDMARK: Rgb<u8> = Rgb([255, 40, 40]);

fn put(image: &mut RgbImage, x: i64, y: i64, color: Rgb<u8>) {
    if x >= 0 && y >= 0 && x < i64::from(image.width()) && y < i64::from(image.height()) {
        image.put_pixel(x as u32, y as u32, color);
    }
}

/// The outline of the box `[x1, y1, x2, y2]` (pixels, clipped to the image), `thickness` pixels
/// wide, inside the box.
pub fn rectangle(image: &mut RgbImage, bbox: [f32; 4], thickness: u32, color: Rgb<u8>) {
    let [x1, y1, x2, y2] = bbox.map(|v| v.round() as i64);
    let (x1, x2) = (x1.min(x2), x1.max(x2));
    let (y1, y2) = (y1.min(y2), y1.max(y2));
    for t in 0..i64::from(thickness) {
        for x in x1..=x2 {
            put(image, x, y1 + t, color);
            put(image, x, y2 - t, color);
        }
        for y in y1..=y2 {
            put(image, x1 + t, y, color);
            put(image, x2 - t, y, color);
        }
    }
}

/// A filled disc of `radius` pixels around `(x, y)`.
pub fn dot(image: &mut RgbImage, [x, y]: [f32; 2], radius: f32, color: Rgb<u8>) {
    let r = radius.ceil() as i64;
    let (cx, cy) = (x.round() as i64, y.round() as i64);
    for dy in -r..=r {
        for dx in -r..=r {
            if ((dx * dx + dy * dy) as f32) <= radius * radius {
                put(image, cx + dx, cy + dy, color);
            }
        }
    }
}

/// A copy of `image` with each face's box and five landmarks drawn, sized to the image.
pub fn faces(image: &RgbImage, faces: &[Face]) -> RgbImage {
    let mut out = image.clone();
    let side = image.width().min(image.height());
    let thickness = (side / 200).max(2);
    let radius = (side as f32 / 150.0).max(2.0);
    for face in faces {
        rectangle(&mut out, face.bbox, thickness, BOX);
        for point in face.landmarks {
            dot(&mut out, point, radius, LANDMARK);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_box_and_a_dot_land_where_asked_and_clip_at_the_edges() {
        let mut image = RgbImage::new(20, 10);
        rectangle(&mut image, [2.0, 3.0, 8.0, 7.0], 1, BOX);
        assert_eq!(*image.get_pixel(2, 3), BOX);
        assert_eq!(*image.get_pixel(8, 7), BOX);
        assert_eq!(*image.get_pixel(5, 3), BOX);
        assert_eq!(*image.get_pixel(5, 5), Rgb([0, 0, 0]), "inside stays");
        dot(&mut image, [15.0, 5.0], 1.0, LANDMARK);
        assert_eq!(*image.get_pixel(15, 5), LANDMARK);
        assert_eq!(*image.get_pixel(16, 5), LANDMARK);
        assert_eq!(*image.get_pixel(16, 6), Rgb([0, 0, 0]));
        // Partly or wholly outside: no panic.
        rectangle(&mut image, [-5.0, -5.0, 30.0, 30.0], 2, BOX);
        dot(&mut image, [100.0, 100.0], 3.0, LANDMARK);
    }
}
