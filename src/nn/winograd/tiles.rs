//! The Winograd F(2x2, 3x3) transforms: kernel (`G g Gᵀ`), input tiles (`Bᵀ d B`), outputs
//! (`Aᵀ m A`) and their transposes for the backward pass. The tile transforms work on 16
//! channels at a time (one AVX-512 register per value), then one at a time for the rest; they
//! are compiled for AVX-512, AVX2 and the baseline, all adding in the same order.

use super::super::conv2d::ConvGeometry;
use super::super::simd::multiversion;

/// Transformed positions per tile.
pub const POSITIONS: usize = 16;

/// Channels transformed together.
const LANES: usize = 16;

/// The kernel transform `G` (4x3).
const G: [[f32; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// Tile counts and sizes of one layer.
#[derive(Debug, Clone, Copy)]
pub struct Tiling {
    pub g: ConvGeometry,
    pub filters: usize,
    pub tiles_h: usize,
    pub tiles_w: usize,
}

impl Tiling {
    pub fn tiles(&self) -> usize {
        self.tiles_h * self.tiles_w
    }

    /// The start of input pixel (`2*ty + r - pad`, `2*tx + s - pad`), if inside the image.
    #[inline(always)]
    fn pixel(&self, ty: usize, tx: usize, r: usize, s: usize) -> Option<usize> {
        let iy = (2 * ty + r).checked_sub(self.g.pad_top)?;
        let ix = (2 * tx + s).checked_sub(self.g.pad_left)?;
        (iy < self.g.in_h && ix < self.g.in_w).then_some((iy * self.g.in_w + ix) * self.g.in_c)
    }

    /// The start of output pixel (`2*ty + r`, `2*tx + s`), if inside the output.
    #[inline(always)]
    fn output(&self, ty: usize, tx: usize, r: usize, s: usize) -> Option<usize> {
        let (oy, ox) = (2 * ty + r, 2 * tx + s);
        (oy < self.g.out_h && ox < self.g.out_w).then_some((oy * self.g.out_w + ox) * self.filters)
    }
}

/// `U[a][b] = Σ G[a][i] G[b][j] g[i][j]`, each term a whole `cin × filters` plane.
pub fn transform_kernel(kernel: &[f32], plane: usize, u: &mut Vec<f32>) {
    u.resize(POSITIONS * plane, 0.0);
    for (ab, dst) in u.chunks_exact_mut(plane).enumerate() {
        let (a, b) = (ab / 4, ab % 4);
        dst.fill(0.0);
        for (ij, src) in kernel.chunks_exact(plane).enumerate() {
            let w = G[a][ij / 3] * G[b][ij % 3];
            if w != 0.0 {
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d += w * s);
            }
        }
    }
}

/// `dg[i][j] = Σ G[a][i] G[b][j] dU[a][b]`: the transpose of `transform_kernel`.
pub fn untransform_kernel_grad(du: &[f32], plane: usize, dk: &mut [f32]) {
    for (ij, dst) in dk.chunks_exact_mut(plane).enumerate() {
        let (i, j) = (ij / 3, ij % 3);
        dst.fill(0.0);
        for (ab, src) in du.chunks_exact(plane).enumerate() {
            let w = G[ab / 4][i] * G[ab % 4][j];
            if w != 0.0 {
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d += w * s);
            }
        }
    }
}

/// Runs `$body` with `$i` stepping over blocks of `$lanes = LANES` channels, then over the
/// rest one at a time with `$lanes = 1`.
macro_rules! by_lanes {
    ($n:expr, |$i:ident, $lanes:ident| $body:expr) => {{
        let n = $n;
        let full = n - n % LANES;
        for $i in (0..full).step_by(LANES) {
            const $lanes: usize = LANES;
            $body;
        }
        for $i in full..n {
            const $lanes: usize = 1;
            $body;
        }
    }};
}

/// `L` values from `i` of each of 16 rows.
#[inline(always)]
fn load<const L: usize>(rows: &[&[f32]; 16], i: usize) -> [[f32; L]; 16] {
    let mut x = [[0.0f32; L]; 16];
    for (x, row) in x.iter_mut().zip(rows) {
        x.copy_from_slice(&row[i..i + L]);
    }
    x
}

/// `N` rows of `L` values from `buf`: row `k` starts at `at + k * stride`.
#[inline(always)]
fn load_strided<const L: usize, const N: usize>(
    buf: &[f32],
    stride: usize,
    at: usize,
) -> [[f32; L]; N] {
    let mut x = [[0.0f32; L]; N];
    for (k, x) in x.iter_mut().enumerate() {
        x.copy_from_slice(&buf[at + k * stride..][..L]);
    }
    x
}

/// Stores `N` rows of `L` values into `buf`: row `k` at `at + k * stride`.
#[inline(always)]
fn store_strided<const L: usize, const N: usize>(
    buf: &mut [f32],
    stride: usize,
    at: usize,
    v: &[[f32; L]; N],
) {
    for (k, v) in v.iter().enumerate() {
        buf[at + k * stride..][..L].copy_from_slice(v);
    }
}

/// `Bᵀ d B` for `L` channels; `Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]`.
#[inline(always)]
fn input_transform<const L: usize>(d: &[[f32; L]; 16]) -> [[f32; L]; 16] {
    let mut b = [[0.0f32; L]; 16];
    for s in 0..4 {
        for l in 0..L {
            let (d0, d1, d2, d3) = (d[s][l], d[4 + s][l], d[8 + s][l], d[12 + s][l]);
            b[s][l] = d0 - d2;
            b[4 + s][l] = d1 + d2;
            b[8 + s][l] = d2 - d1;
            b[12 + s][l] = d1 - d3;
        }
    }
    let mut v = [[0.0f32; L]; 16];
    for r in 0..4 {
        for l in 0..L {
            let (e0, e1, e2, e3) = (
                b[4 * r][l],
                b[4 * r + 1][l],
                b[4 * r + 2][l],
                b[4 * r + 3][l],
            );
            v[4 * r][l] = e0 - e2;
            v[4 * r + 1][l] = e1 + e2;
            v[4 * r + 2][l] = e2 - e1;
            v[4 * r + 3][l] = e1 - e3;
        }
    }
    v
}

/// `B dV Bᵀ` for `L` channels: the transpose of `input_transform`.
#[inline(always)]
fn input_grad_transform<const L: usize>(dv: &[[f32; L]; 16]) -> [[f32; L]; 16] {
    let mut b = [[0.0f32; L]; 16];
    for s in 0..4 {
        for l in 0..L {
            let (v0, v1, v2, v3) = (dv[s][l], dv[4 + s][l], dv[8 + s][l], dv[12 + s][l]);
            b[s][l] = v0;
            b[4 + s][l] = v1 - v2 + v3;
            b[8 + s][l] = v1 + v2 - v0;
            b[12 + s][l] = -v3;
        }
    }
    let mut d = [[0.0f32; L]; 16];
    for r in 0..4 {
        for l in 0..L {
            let (e0, e1, e2, e3) = (
                b[4 * r][l],
                b[4 * r + 1][l],
                b[4 * r + 2][l],
                b[4 * r + 3][l],
            );
            d[4 * r][l] = e0;
            d[4 * r + 1][l] = e1 - e2 + e3;
            d[4 * r + 2][l] = e1 + e2 - e0;
            d[4 * r + 3][l] = -e3;
        }
    }
    d
}

/// `Aᵀ m A` for `L` filters, as the 2x2 outputs row by row; `Aᵀ = [1 1 1 0; 0 1 -1 -1]`.
#[inline(always)]
fn output_transform<const L: usize>(m: &[[f32; L]; 16]) -> [[f32; L]; 4] {
    let mut y = [[0.0f32; L]; 4];
    for l in 0..L {
        let mut a0 = [0.0f32; 4];
        let mut a1 = [0.0f32; 4];
        for s in 0..4 {
            let (m0, m1, m2, m3) = (m[s][l], m[4 + s][l], m[8 + s][l], m[12 + s][l]);
            a0[s] = m0 + m1 + m2;
            a1[s] = m1 - m2 - m3;
        }
        y[0][l] = a0[0] + a0[1] + a0[2];
        y[1][l] = a0[1] - a0[2] - a0[3];
        y[2][l] = a1[0] + a1[1] + a1[2];
        y[3][l] = a1[1] - a1[2] - a1[3];
    }
    y
}

/// `A dY Aᵀ` for `L` filters: the transpose of `output_transform`.
#[inline(always)]
fn output_grad_transform<const L: usize>(g: &[[f32; L]; 4]) -> [[f32; L]; 16] {
    let mut m = [[0.0f32; L]; 16];
    for l in 0..L {
        let (g0, g1, g2, g3) = (g[0][l], g[1][l], g[2][l], g[3][l]);
        // A dY: four rows of two.
        let rows = [[g0, g1], [g0 + g2, g1 + g3], [g0 - g2, g1 - g3], [-g2, -g3]];
        for (a, [e0, e1]) in rows.into_iter().enumerate() {
            m[4 * a][l] = e0;
            m[4 * a + 1][l] = e0 + e1;
            m[4 * a + 2][l] = e0 - e1;
            m[4 * a + 3][l] = -e1;
        }
    }
    m
}

multiversion!(
    /// One sample's tiles `Bᵀ d B` into rows `row0..` of the 16 matrices `v`.
    input_tiles => input_tiles_body(t: &Tiling, image: &[f32], zeros: &[f32], v: &mut [&mut [f32]], row0: usize)
);

#[inline(always)]
fn input_tiles_body(t: &Tiling, image: &[f32], zeros: &[f32], v: &mut [&mut [f32]], row0: usize) {
    let c = t.g.in_c;
    let v: &mut [&mut [f32]; 16] = v.try_into().expect("16 matrices");
    for ty in 0..t.tiles_h {
        for tx in 0..t.tiles_w {
            let mut d: [&[f32]; 16] = [&zeros[..c]; 16];
            for (k, d) in d.iter_mut().enumerate() {
                if let Some(p) = t.pixel(ty, tx, k / 4, k % 4) {
                    *d = &image[p..p + c];
                }
            }
            let at = (row0 + ty * t.tiles_w + tx) * c;
            by_lanes!(c, |i, L| {
                let x = input_transform(&load::<L>(&d, i));
                for (m, x) in v.iter_mut().zip(&x) {
                    m[at + i..][..L].copy_from_slice(x);
                }
            });
        }
    }
}

/// Bias and ReLU on `L` filters of a tile's four outputs, into `tile` (`4 * f` values).
#[inline(always)]
fn finish_outputs<const L: usize>(
    y: &[[f32; L]; 4],
    bias: &[f32],
    relu: bool,
    f: usize,
    i: usize,
    tile: &mut [f32],
) {
    let b: &[f32; L] = bias[i..i + L].try_into().expect("lanes");
    for (r, y) in y.iter().enumerate() {
        let dst: &mut [f32; L] = (&mut tile[r * f + i..][..L]).try_into().expect("lanes");
        for l in 0..L {
            let v = y[l] + b[l];
            dst[l] = if relu { v.max(0.0) } else { v };
        }
    }
}

multiversion!(
    /// One sample's outputs `Aᵀ m A + bias` (then ReLU) from the block's products `m`
    /// (16 matrices `stride` apart); `tile` holds `4 * filters` values.
    output_tiles => output_tiles_body(t: &Tiling, m: &[f32], stride: usize, row0: usize, bias: &[f32], relu: bool, tile: &mut [f32], out: &mut [f32])
);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_tiles_body(
    t: &Tiling,
    m: &[f32],
    stride: usize,
    row0: usize,
    bias: &[f32],
    relu: bool,
    tile: &mut [f32],
    out: &mut [f32],
) {
    let f = t.filters;
    for ty in 0..t.tiles_h {
        for tx in 0..t.tiles_w {
            let at = (row0 + ty * t.tiles_w + tx) * f;
            by_lanes!(f, |i, L| {
                let y = output_transform(&load_strided::<L, 16>(m, stride, at + i));
                finish_outputs::<L>(&y, bias, relu, f, i, tile)
            });
            for (rs, y) in tile[..4 * f].chunks_exact(f).enumerate() {
                if let Some(o) = t.output(ty, tx, rs / 2, rs % 2) {
                    out[o..o + f].copy_from_slice(y);
                }
            }
        }
    }
}

multiversion!(
    /// One sample's output gradients (through the ReLU when `relu`, zero outside the output)
    /// as `A dY Aᵀ` into rows `row0..` of the 16 matrices `dm` (`stride` apart), adding them
    /// to the bias gradient `db`; `tile` holds `4 * filters` values.
    output_grad_tiles => output_grad_tiles_body(t: &Tiling, dy: &[f32], y: &[f32], relu: bool, tile: &mut [f32], db: &mut [f32], dm: &mut [f32], stride: usize, row0: usize)
);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_grad_tiles_body(
    t: &Tiling,
    dy: &[f32],
    y: &[f32],
    relu: bool,
    tile: &mut [f32],
    db: &mut [f32],
    dm: &mut [f32],
    stride: usize,
    row0: usize,
) {
    let f = t.filters;
    for ty in 0..t.tiles_h {
        for tx in 0..t.tiles_w {
            for (rs, g) in tile[..4 * f].chunks_exact_mut(f).enumerate() {
                match t.output(ty, tx, rs / 2, rs % 2) {
                    Some(o) => {
                        for ((g, &d), &v) in g.iter_mut().zip(&dy[o..o + f]).zip(&y[o..o + f]) {
                            *g = if relu && v <= 0.0 { 0.0 } else { d };
                        }
                        db.iter_mut().zip(&*g).for_each(|(b, &x)| *b += x);
                    }
                    None => g.fill(0.0),
                }
            }
            let at = (row0 + ty * t.tiles_w + tx) * f;
            by_lanes!(f, |i, L| {
                let g = load_strided::<L, 4>(tile, f, i);
                store_strided::<L, 16>(dm, stride, at + i, &output_grad_transform(&g))
            });
        }
    }
}

multiversion!(
    /// Sets `image` to one sample's input gradient: the tiles' `B dV Bᵀ` (from rows `row0..`
    /// of the 16 matrices `dv`, `stride` apart) added where they overlap; `tile` holds
    /// `16 * cin` values.
    input_grad_tiles => input_grad_tiles_body(t: &Tiling, dv: &[f32], stride: usize, row0: usize, tile: &mut [f32], image: &mut [f32])
);

#[inline(always)]
fn input_grad_tiles_body(
    t: &Tiling,
    dv: &[f32],
    stride: usize,
    row0: usize,
    tile: &mut [f32],
    image: &mut [f32],
) {
    let c = t.g.in_c;
    image.fill(0.0);
    for ty in 0..t.tiles_h {
        for tx in 0..t.tiles_w {
            let at = (row0 + ty * t.tiles_w + tx) * c;
            by_lanes!(c, |i, L| {
                let d = input_grad_transform(&load_strided::<L, 16>(dv, stride, at + i));
                store_strided::<L, 16>(tile, c, i, &d)
            });
            for (k, g) in tile[..16 * c].chunks_exact(c).enumerate() {
                if let Some(p) = t.pixel(ty, tx, k / 4, k % 4) {
                    image[p..p + c]
                        .iter_mut()
                        .zip(g)
                        .for_each(|(d, &x)| *d += x);
                }
            }
        }
    }
}
