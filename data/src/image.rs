//! An 8-bit RGB image in row-major HWC order: what every decoder returns and every transform takes.

/// An 8-bit RGB image, rows top to bottom, pixels as `[r, g, b]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width * 3` bytes.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// An image filled with one colour.
    pub fn filled(width: usize, height: usize, rgb: [u8; 3]) -> Self {
        let data = rgb
            .iter()
            .copied()
            .cycle()
            .take(width * height * 3)
            .collect();
        Self {
            width,
            height,
            data,
        }
    }

    /// The pixel at column `x`, row `y`.
    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Sets the pixel at column `x`, row `y`.
    pub fn set_pixel(&mut self, x: usize, y: usize, rgb: [u8; 3]) {
        let i = (y * self.width + x) * 3;
        self.data[i..i + 3].copy_from_slice(&rgb);
    }

    /// A test image whose pixel at `(x, y)` is `[x, y, blue]`, so moved pixels tell where they
    /// came from.
    #[cfg(test)]
    pub(crate) fn numbered(width: usize, height: usize, blue: u8) -> Self {
        let mut img = Self::filled(width, height, [0, 0, blue]);
        for y in 0..height {
            for x in 0..width {
                img.set_pixel(x, y, [x as u8, y as u8, blue]);
            }
        }
        img
    }
}

/// A single-channel 8-bit mask: class indices (255 = ignore), rows top to bottom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height * width` bytes.
    pub data: Vec<u8>,
}

impl Mask {
    /// A mask filled with one value.
    pub fn filled(width: usize, height: usize, value: u8) -> Self {
        Self {
            width,
            height,
            data: vec![value; width * height],
        }
    }

    /// The value at column `x`, row `y`.
    pub fn get(&self, x: usize, y: usize) -> u8 {
        self.data[y * self.width + x]
    }

    /// Sets the value at column `x`, row `y`.
    pub fn set(&mut self, x: usize, y: usize, value: u8) {
        self.data[y * self.width + x] = value;
    }
}
