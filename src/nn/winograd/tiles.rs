//! The Winograd F(4x4, 3x3) transforms: kernel (`G g Gᵀ`), input tiles (`Bᵀ d B`, 6x6),
//! outputs (`Aᵀ m A`, 4x4) and their transposes for the backward pass, with the matrices of
//! Lavin & Gray (interpolation points 0, ±1, ±2). Each 2-D transform is a 1-D transform of
//! the columns, then of the rows. The tile transforms work on 16 channels at a time (one
//! AVX-512 register per value), then one at a time for the rest; they are compiled for
//! AVX-512, AVX2 and the baseline, all computing in the same order.

use super::super::conv_geometry::ConvGeometry;
use super::super::simd::mask_relu_body;
use super::super::simd::multiversion;

/// Input tile side.
pub(crate) const IN: usize = 6;
/// Output tile side (the tile stride).
pub(crate) const OUT: usize = 4;
/// Transformed positions per tile.
pub(crate) const POSITIONS: usize = IN * IN;

/// Channels transformed together.
const LANES: usize = 16;

/// The kernel transform `G` (6x3).
const G: [[f32; 3]; IN] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// Tile counts and sizes of one layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tiling {
    pub(crate) g: ConvGeometry,
    pub(crate) filters: usize,
    pub(crate) tiles_h: usize,
    pub(crate) tiles_w: usize,
}

impl Tiling {
    pub(crate) fn new(g: ConvGeometry, filters: usize) -> Tiling {
        Tiling {
            g,
            filters,
            tiles_h: g.out_h.div_ceil(OUT),
            tiles_w: g.out_w.div_ceil(OUT),
        }
    }

    pub(crate) fn tiles(&self) -> usize {
        self.tiles_h * self.tiles_w
    }

    /// The start of input pixel (`4*ty + r - pad`, `4*tx + s - pad`), if inside the image.
    #[inline(always)]
    fn pixel(&self, ty: usize, tx: usize, r: usize, s: usize) -> Option<usize> {
        let iy = (OUT * ty + r).checked_sub(self.g.pad_top)?;
        let ix = (OUT * tx + s).checked_sub(self.g.pad_left)?;
        (iy < self.g.in_h && ix < self.g.in_w).then_some((iy * self.g.in_w + ix) * self.g.in_c)
    }

    /// The start of output pixel (`4*ty + r`, `4*tx + s`), if inside the output.
    #[inline(always)]
    fn output(&self, ty: usize, tx: usize, r: usize, s: usize) -> Option<usize> {
        let (oy, ox) = (OUT * ty + r, OUT * tx + s);
        (oy < self.g.out_h && ox < self.g.out_w).then_some((oy * self.g.out_w + ox) * self.filters)
    }
}

/// `U[a][b] = Σ G[a][i] G[b][j] g[i][j]`, each term a whole `cin × filters` plane.
pub(crate) fn transform_kernel(kernel: &[f32], plane: usize, u: &mut Vec<f32>) {
    u.resize(POSITIONS * plane, 0.0);
    for (ab, dst) in u.chunks_exact_mut(plane).enumerate() {
        let (a, b) = (ab / IN, ab % IN);
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
pub(crate) fn untransform_kernel_grad(du: &[f32], plane: usize, dk: &mut [f32]) {
    for (ij, dst) in dk.chunks_exact_mut(plane).enumerate() {
        let (i, j) = (ij / 3, ij % 3);
        dst.fill(0.0);
        for (ab, src) in du.chunks_exact(plane).enumerate() {
            let w = G[ab / IN][i] * G[ab % IN][j];
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

/// `Bᵀ d` for one column of six.
#[inline(always)]
fn input_1d<const L: usize>(d: [[f32; L]; IN]) -> [[f32; L]; IN] {
    let mut v = [[0.0f32; L]; IN];
    for l in 0..L {
        let [d0, d1, d2, d3, d4, d5] = [d[0][l], d[1][l], d[2][l], d[3][l], d[4][l], d[5][l]];
        v[0][l] = 4.0 * d0 - 5.0 * d2 + d4;
        v[1][l] = d3 + d4 - 4.0 * (d1 + d2);
        v[2][l] = d4 - d3 + 4.0 * (d1 - d2);
        v[3][l] = d4 - d2 + 2.0 * (d3 - d1);
        v[4][l] = d4 - d2 + 2.0 * (d1 - d3);
        v[5][l] = 4.0 * d1 - 5.0 * d3 + d5;
    }
    v
}

/// `B v`: the transpose of `input_1d`.
#[inline(always)]
fn input_grad_1d<const L: usize>(v: [[f32; L]; IN]) -> [[f32; L]; IN] {
    let mut d = [[0.0f32; L]; IN];
    for l in 0..L {
        let [v0, v1, v2, v3, v4, v5] = [v[0][l], v[1][l], v[2][l], v[3][l], v[4][l], v[5][l]];
        d[0][l] = 4.0 * v0;
        d[1][l] = 4.0 * (v2 - v1 + v5) + 2.0 * (v4 - v3);
        d[2][l] = -5.0 * v0 - 4.0 * (v1 + v2) - v3 - v4;
        d[3][l] = v1 - v2 + 2.0 * (v3 - v4) - 5.0 * v5;
        d[4][l] = v0 + v1 + v2 + v3 + v4;
        d[5][l] = v5;
    }
    d
}

/// `Aᵀ m` for one column of six: four outputs.
#[inline(always)]
fn output_1d<const L: usize>(m: [[f32; L]; IN]) -> [[f32; L]; OUT] {
    let mut y = [[0.0f32; L]; OUT];
    for l in 0..L {
        let [m0, m1, m2, m3, m4, m5] = [m[0][l], m[1][l], m[2][l], m[3][l], m[4][l], m[5][l]];
        let (s12, d12, s34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
        y[0][l] = m0 + s12 + s34;
        y[1][l] = d12 + 2.0 * d34;
        y[2][l] = s12 + 4.0 * s34;
        y[3][l] = d12 + 8.0 * d34 + m5;
    }
    y
}

/// `A y`: the transpose of `output_1d`, four values to six.
#[inline(always)]
fn output_grad_1d<const L: usize>(y: [[f32; L]; OUT]) -> [[f32; L]; IN] {
    let mut m = [[0.0f32; L]; IN];
    for l in 0..L {
        let [y0, y1, y2, y3] = [y[0][l], y[1][l], y[2][l], y[3][l]];
        let (s02, s13, t02, t13) = (y0 + y2, y1 + y3, y0 + 4.0 * y2, 2.0 * y1 + 8.0 * y3);
        m[0][l] = y0;
        m[1][l] = s02 + s13;
        m[2][l] = s02 - s13;
        m[3][l] = t02 + t13;
        m[4][l] = t02 - t13;
        m[5][l] = y3;
    }
    m
}

/// A 2-D transform of one tile, `L` channels: the 1-D transform `$f` (`$n` values to `$m`) of
/// each column (read with `$load`, a slice of `L` values for row `r`, column `s`) into
/// `scratch`, then of each row of that, handed to `$store` (row `r`, column `s`, values `v`).
macro_rules! two_pass {
    ($L:ident, $n:expr, $m:expr, $f:ident, $scratch:expr,
     |$lr:ident, $ls:ident| $load:expr, |$sr:ident, $ss:ident, $v:ident| $store:expr) => {{
        let scratch: &mut [f32] = $scratch;
        for s in 0..$n {
            let mut col = [[0.0f32; $L]; $n];
            for (r, c) in col.iter_mut().enumerate() {
                let ($lr, $ls) = (r, s);
                c.copy_from_slice($load);
            }
            for (r, v) in $f::<$L>(col).iter().enumerate() {
                scratch[(r * $n + s) * $L..][..$L].copy_from_slice(v);
            }
        }
        for r in 0..$m {
            let mut row = [[0.0f32; $L]; $n];
            for (s, x) in row.iter_mut().enumerate() {
                x.copy_from_slice(&scratch[(r * $n + s) * $L..][..$L]);
            }
            for (s, $v) in $f::<$L>(row).iter().enumerate() {
                let ($sr, $ss) = (r, s);
                $store;
            }
        }
    }};
}

/// Scratch values per chunk for the tile functions (`tile` arguments): a tile of pixels or
/// outputs, and one transform's intermediate.
pub(crate) fn tile_len(cin: usize, filters: usize) -> usize {
    POSITIONS * (cin.max(filters) + LANES)
}

multiversion!(
    /// One sample's tiles `Bᵀ d B` into rows `row0..` of the 36 matrices in `v`, `stride`
    /// apart; `scratch` holds `tile_len` values.
    input_tiles => input_tiles_body(t: &Tiling, image: &[f32], zeros: &[f32], v: &mut [f32], stride: usize, row0: usize, scratch: &mut [f32])
);

#[inline(always)]
fn input_tiles_body(
    t: &Tiling,
    image: &[f32],
    zeros: &[f32],
    v: &mut [f32],
    stride: usize,
    row0: usize,
    scratch: &mut [f32],
) {
    let c = t.g.in_c;
    for ty in 0..t.tiles_h {
        for tx in 0..t.tiles_w {
            let mut d: [&[f32]; POSITIONS] = [&zeros[..c]; POSITIONS];
            for (k, d) in d.iter_mut().enumerate() {
                if let Some(p) = t.pixel(ty, tx, k / IN, k % IN) {
                    *d = &image[p..p + c];
                }
            }
            let at = (row0 + ty * t.tiles_w + tx) * c;
            by_lanes!(c, |i, L| two_pass!(
                L,
                IN,
                IN,
                input_1d,
                scratch,
                |r, s| &d[r * IN + s][i..i + L],
                |r, s, x| v[(r * IN + s) * stride + at + i..][..L].copy_from_slice(x)
            ));
        }
    }
}

multiversion!(
    /// One sample's outputs `Aᵀ m A + bias` (then ReLU) from the block's products `m`
    /// (36 matrices `stride` apart); `tile` holds `16 * filters` values.
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
    let (tile, scratch) = tile.split_at_mut(POSITIONS * t.g.in_c.max(f));
    for ty in 0..t.tiles_h {
        for tx in 0..t.tiles_w {
            let at = (row0 + ty * t.tiles_w + tx) * f;
            by_lanes!(f, |i, L| two_pass!(
                L,
                IN,
                OUT,
                output_1d,
                scratch,
                |r, s| &m[(r * IN + s) * stride + at + i..][..L],
                |r, s, y| {
                    let b: &[f32; L] = bias[i..i + L].try_into().expect("lanes");
                    let dst = &mut tile[(r * OUT + s) * f + i..][..L];
                    for l in 0..L {
                        let v = y[l] + b[l];
                        dst[l] = if relu { v.max(0.0) } else { v };
                    }
                }
            ));
            for (rs, y) in tile[..OUT * OUT * f].chunks_exact(f).enumerate() {
                if let Some(o) = t.output(ty, tx, rs / OUT, rs % OUT) {
                    out[o..o + f].copy_from_slice(y);
                }
            }
        }
    }
}

multiversion!(
    /// One sample's output gradients (through the ReLU when `relu`, zero outside the output)
    /// as `A dY Aᵀ` into rows `row0..` of the 36 matrices `dm` (`stride` apart), adding them
    /// to the bias gradient `db`; `tile` holds `16 * filters` values.
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
    let (tile, scratch) = tile.split_at_mut(POSITIONS * t.g.in_c.max(f));
    for ty in 0..t.tiles_h {
        for tx in 0..t.tiles_w {
            for (rs, g) in tile[..OUT * OUT * f].chunks_exact_mut(f).enumerate() {
                match t.output(ty, tx, rs / OUT, rs % OUT) {
                    Some(o) => {
                        if relu {
                            mask_relu_body(&dy[o..o + f], &y[o..o + f], g);
                        } else {
                            g.copy_from_slice(&dy[o..o + f]);
                        }
                        db.iter_mut().zip(&*g).for_each(|(b, &x)| *b += x);
                    }
                    None => g.fill(0.0),
                }
            }
            let at = (row0 + ty * t.tiles_w + tx) * f;
            by_lanes!(f, |i, L| two_pass!(
                L,
                OUT,
                IN,
                output_grad_1d,
                scratch,
                |r, s| &tile[(r * OUT + s) * f + i..][..L],
                |r, s, x| dm[(r * IN + s) * stride + at + i..][..L].copy_from_slice(x)
            ));
        }
    }
}

multiversion!(
    /// Sets `image` to one sample's input gradient: the tiles' `B dV Bᵀ` (from rows `row0..`
    /// of the 36 matrices `dv`, `stride` apart) added where they overlap; `tile` holds
    /// `36 * cin` values.
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
    let (tile, scratch) = tile.split_at_mut(POSITIONS * c.max(t.filters));
    image.fill(0.0);
    for ty in 0..t.tiles_h {
        for tx in 0..t.tiles_w {
            let at = (row0 + ty * t.tiles_w + tx) * c;
            by_lanes!(c, |i, L| two_pass!(
                L,
                IN,
                IN,
                input_grad_1d,
                scratch,
                |r, s| &dv[(r * IN + s) * stride + at + i..][..L],
                |r, s, x| tile[(r * IN + s) * c + i..][..L].copy_from_slice(x)
            ));
            for (k, g) in tile[..POSITIONS * c].chunks_exact(c).enumerate() {
                if let Some(p) = t.pixel(ty, tx, k / IN, k % IN) {
                    image[p..p + c]
                        .iter_mut()
                        .zip(g)
                        .for_each(|(d, &x)| *d += x);
                }
            }
        }
    }
}
