//! The Winograd F(4x4, 3x3) and F(6x6, 3x3) transforms: kernel (`G g Gᵀ`), input tiles
//! (`Bᵀ d B`, 6x6 or 8x8), outputs (`Aᵀ m A`, 4x4 or 6x6) and their transposes for the
//! backward pass, with the matrices of Lavin & Gray (interpolation points 0, ±1, ±2, and ±1/2
//! for the larger tiles). Each 2-D transform is a 1-D transform of
//! the columns, then of the rows. The tile transforms work on 16 channels at a time (one
//! AVX-512 register per value), then one at a time for the rest; they are compiled for
//! AVX-512, AVX2 and the baseline, all computing in the same order.

use super::super::conv_geometry::ConvGeometry;
use super::super::simd::mask_relu_body;
use super::super::simd::multiversion;

/// Channels transformed together.
const LANES: usize = 16;

/// Which Winograd transform a layer uses: F(4x4, 3x3) (6x6 input tiles, 36 products per 16
/// outputs) or F(6x6, 3x3) (8x8 tiles, 64 per 36). Where an output side is a multiple of 6
/// and not of 4 (30x30, 18x18, 6x6), the larger tiles waste less of the last row and column
/// and take fewer products: 1,600 instead of 2,304 for a 30x30 output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    F4,
    F6,
}

impl Variant {
    /// Input tile side.
    pub(crate) const fn size(self) -> usize {
        match self {
            Variant::F4 => 6,
            Variant::F6 => 8,
        }
    }

    /// Output tile side (the tile stride).
    pub(crate) const fn out(self) -> usize {
        self.size() - 2
    }

    /// Transformed positions per tile: one matrix product each.
    pub(crate) const fn positions(self) -> usize {
        self.size() * self.size()
    }

    /// The kernel transform `G` (`size` x 3).
    fn g(self) -> &'static [[f32; 3]] {
        match self {
            Variant::F4 => &G4,
            Variant::F6 => &G6,
        }
    }

    /// Products for an output of `h` x `w`: tiles times positions.
    fn products(self, h: usize, w: usize) -> usize {
        h.div_ceil(self.out()) * w.div_ceil(self.out()) * self.positions()
    }
}

/// F(4x4, 3x3)'s kernel transform (Lavin & Gray: points 0, ±1, ±2).
const G4: [[f32; 3]; 6] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// F(6x6, 3x3)'s kernel transform (points 0, ±1, ±2, ±1/2, as in NNPACK and ncnn).
const G6: [[f32; 3]; 8] = [
    [1.0, 0.0, 0.0],
    [-2.0 / 9.0, -2.0 / 9.0, -2.0 / 9.0],
    [-2.0 / 9.0, 2.0 / 9.0, -2.0 / 9.0],
    [1.0 / 90.0, 1.0 / 45.0, 2.0 / 45.0],
    [1.0 / 90.0, -1.0 / 45.0, 2.0 / 45.0],
    [32.0 / 45.0, 16.0 / 45.0, 8.0 / 45.0],
    [32.0 / 45.0, -16.0 / 45.0, 8.0 / 45.0],
    [0.0, 0.0, 1.0],
];

/// Tile counts and sizes of one layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tiling {
    pub(crate) g: ConvGeometry,
    pub(crate) filters: usize,
    pub(crate) variant: Variant,
    pub(crate) tiles_h: usize,
    pub(crate) tiles_w: usize,
}

impl Tiling {
    /// F(6x6, 3x3) where it takes at most three quarters of F(4x4, 3x3)'s products, F(4x4,
    /// 3x3) otherwise: the larger tiles cost more transform work per product, and their
    /// thinner products run slower. Measured: cifar10-keras' 30x30 output (1,600 products a
    /// sample instead of 2,304) trained 15-25% faster; mnist-convnet's 11x11 (256 instead of
    /// 324) trained no faster.
    pub(crate) fn new(g: ConvGeometry, filters: usize) -> Tiling {
        let (h, w) = (g.out_h, g.out_w);
        let variant = if 4 * Variant::F6.products(h, w) <= 3 * Variant::F4.products(h, w) {
            Variant::F6
        } else {
            Variant::F4
        };
        Tiling::with_variant(g, filters, variant)
    }

    pub(crate) fn with_variant(g: ConvGeometry, filters: usize, variant: Variant) -> Tiling {
        Tiling {
            g,
            filters,
            variant,
            tiles_h: g.out_h.div_ceil(variant.out()),
            tiles_w: g.out_w.div_ceil(variant.out()),
        }
    }

    /// Transformed positions per tile.
    pub(crate) fn positions(&self) -> usize {
        self.variant.positions()
    }

    /// Scratch values per chunk for the tile functions (`tile` arguments): a tile of pixels
    /// or outputs, and one transform's intermediate.
    pub(crate) fn tile_len(&self) -> usize {
        self.tile_part() + self.positions() * LANES
    }

    /// Where a `tile` argument's intermediate starts: after a tile of pixels or outputs, and
    /// a cache line more, so that the two are not a multiple of 4 KB apart. (They were for
    /// 8x8 tiles of 32 or 64 channels, and every load from the tile waited on the stores to
    /// the intermediate at the same address modulo 4 KB: 4K aliasing.)
    fn tile_part(&self) -> usize {
        self.positions() * self.g.in_c.max(self.filters) + LANES
    }

    pub(crate) fn tiles(&self) -> usize {
        self.tiles_h * self.tiles_w
    }

    /// The start of input pixel (`m*ty + r - pad`, `m*tx + s - pad`) for output tiles of
    /// side `m`, if inside the image.
    #[inline(always)]
    fn pixel(&self, ty: usize, tx: usize, r: usize, s: usize) -> Option<usize> {
        let m = self.variant.out();
        let iy = (m * ty + r).checked_sub(self.g.pad_top)?;
        let ix = (m * tx + s).checked_sub(self.g.pad_left)?;
        (iy < self.g.in_h && ix < self.g.in_w).then_some((iy * self.g.in_w + ix) * self.g.in_c)
    }

    /// The start of output pixel (`m*ty + r`, `m*tx + s`), if inside the output.
    #[inline(always)]
    fn output(&self, ty: usize, tx: usize, r: usize, s: usize) -> Option<usize> {
        let m = self.variant.out();
        let (oy, ox) = (m * ty + r, m * tx + s);
        (oy < self.g.out_h && ox < self.g.out_w).then_some((oy * self.g.out_w + ox) * self.filters)
    }
}

/// `U[a][b] = Σ G[a][i] G[b][j] g[i][j]`, each term a whole `cin × filters` plane.
pub(crate) fn transform_kernel(variant: Variant, kernel: &[f32], plane: usize, u: &mut Vec<f32>) {
    let (gm, side) = (variant.g(), variant.size());
    u.resize(variant.positions() * plane, 0.0);
    for (ab, dst) in u.chunks_exact_mut(plane).enumerate() {
        let (a, b) = (ab / side, ab % side);
        dst.fill(0.0);
        for (ij, src) in kernel.chunks_exact(plane).enumerate() {
            let w = gm[a][ij / 3] * gm[b][ij % 3];
            if w != 0.0 {
                dst.iter_mut().zip(src).for_each(|(d, &s)| *d += w * s);
            }
        }
    }
}

/// `dg[i][j] = Σ G[a][i] G[b][j] dU[a][b]`: the transpose of `transform_kernel`.
pub(crate) fn untransform_kernel_grad(variant: Variant, du: &[f32], plane: usize, dk: &mut [f32]) {
    let (gm, side) = (variant.g(), variant.size());
    for (ij, dst) in dk.chunks_exact_mut(plane).enumerate() {
        let (i, j) = (ij / 3, ij % 3);
        dst.fill(0.0);
        for (ab, src) in du.chunks_exact(plane).enumerate() {
            let w = gm[ab / side][i] * gm[ab % side][j];
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

/// The 1-D transforms of one variant with `IN`-value input tiles and `OUT`-value output
/// tiles, on `L` channels at a time; the backward ones are the forward ones transposed.
trait Transforms<const IN: usize, const OUT: usize> {
    /// `Bᵀ d`.
    fn input<const L: usize>(d: [[f32; L]; IN]) -> [[f32; L]; IN];
    /// `B v`.
    fn input_grad<const L: usize>(v: [[f32; L]; IN]) -> [[f32; L]; IN];
    /// `Aᵀ m`.
    fn output<const L: usize>(m: [[f32; L]; IN]) -> [[f32; L]; OUT];
    /// `A y`.
    fn output_grad<const L: usize>(y: [[f32; L]; OUT]) -> [[f32; L]; IN];
}

/// F(4x4, 3x3): six values in, four out.
struct F4;

// `l` picks one lane of every value of a column, read and written across rows.
#[allow(clippy::needless_range_loop)]
impl Transforms<6, 4> for F4 {
    #[inline(always)]
    fn input<const L: usize>(d: [[f32; L]; 6]) -> [[f32; L]; 6] {
        let mut v = [[0.0f32; L]; 6];
        for l in 0..L {
            let [d0, d1, d2, d3, d4, d5] = lane(&d, l);
            v[0][l] = 4.0 * d0 - 5.0 * d2 + d4;
            v[1][l] = d3 + d4 - 4.0 * (d1 + d2);
            v[2][l] = d4 - d3 + 4.0 * (d1 - d2);
            v[3][l] = d4 - d2 + 2.0 * (d3 - d1);
            v[4][l] = d4 - d2 + 2.0 * (d1 - d3);
            v[5][l] = 4.0 * d1 - 5.0 * d3 + d5;
        }
        v
    }

    #[inline(always)]
    fn input_grad<const L: usize>(v: [[f32; L]; 6]) -> [[f32; L]; 6] {
        let mut d = [[0.0f32; L]; 6];
        for l in 0..L {
            let [v0, v1, v2, v3, v4, v5] = lane(&v, l);
            d[0][l] = 4.0 * v0;
            d[1][l] = 4.0 * (v2 - v1 + v5) + 2.0 * (v4 - v3);
            d[2][l] = -5.0 * v0 - 4.0 * (v1 + v2) - v3 - v4;
            d[3][l] = v1 - v2 + 2.0 * (v3 - v4) - 5.0 * v5;
            d[4][l] = v0 + v1 + v2 + v3 + v4;
            d[5][l] = v5;
        }
        d
    }

    #[inline(always)]
    fn output<const L: usize>(m: [[f32; L]; 6]) -> [[f32; L]; 4] {
        let mut y = [[0.0f32; L]; 4];
        for l in 0..L {
            let [m0, m1, m2, m3, m4, m5] = lane(&m, l);
            let (s12, d12, s34, d34) = (m1 + m2, m1 - m2, m3 + m4, m3 - m4);
            y[0][l] = m0 + s12 + s34;
            y[1][l] = d12 + 2.0 * d34;
            y[2][l] = s12 + 4.0 * s34;
            y[3][l] = d12 + 8.0 * d34 + m5;
        }
        y
    }

    #[inline(always)]
    fn output_grad<const L: usize>(y: [[f32; L]; 4]) -> [[f32; L]; 6] {
        let mut m = [[0.0f32; L]; 6];
        for l in 0..L {
            let [y0, y1, y2, y3] = lane(&y, l);
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
}

/// F(6x6, 3x3): eight values in, six out (the factorisations of ncnn's kernels).
struct F6;

// `l` picks one lane of every value of a column, read and written across rows.
#[allow(clippy::needless_range_loop)]
impl Transforms<8, 6> for F6 {
    #[inline(always)]
    fn input<const L: usize>(d: [[f32; L]; 8]) -> [[f32; L]; 8] {
        let mut v = [[0.0f32; L]; 8];
        for l in 0..L {
            let [d0, d1, d2, d3, d4, d5, d6, d7] = lane(&d, l);
            v[0][l] = d0 - d6 + (d4 - d2) * 5.25;
            v[7][l] = d7 - d1 + (d3 - d5) * 5.25;
            let (a12, b12) = (d2 + d6 - d4 * 4.25, d1 + d5 - d3 * 4.25);
            v[1][l] = a12 + b12;
            v[2][l] = a12 - b12;
            let (a34, b34) = (d6 + d2 * 0.25 - d4 * 1.25, d1 * 0.5 - d3 * 2.5 + d5 * 2.0);
            v[3][l] = a34 + b34;
            v[4][l] = a34 - b34;
            let (a56, b56) = (d6 + (d2 - d4 * 1.25) * 4.0, d1 * 2.0 - d3 * 2.5 + d5 * 0.5);
            v[5][l] = a56 + b56;
            v[6][l] = a56 - b56;
        }
        v
    }

    #[inline(always)]
    fn input_grad<const L: usize>(v: [[f32; L]; 8]) -> [[f32; L]; 8] {
        let mut d = [[0.0f32; L]; 8];
        for l in 0..L {
            let [v0, v1, v2, v3, v4, v5, v6, v7] = lane(&v, l);
            let (s12, d12, s34, d34, s56, d56) =
                (v1 + v2, v1 - v2, v3 + v4, v3 - v4, v5 + v6, v5 - v6);
            d[0][l] = v0;
            d[1][l] = d12 + 0.5 * d34 + 2.0 * d56 - v7;
            d[2][l] = -5.25 * v0 + s12 + 0.25 * s34 + 4.0 * s56;
            d[3][l] = 5.25 * v7 - 4.25 * d12 - 2.5 * d34 - 2.5 * d56;
            d[4][l] = 5.25 * v0 - 4.25 * s12 - 1.25 * s34 - 5.0 * s56;
            d[5][l] = d12 + 2.0 * d34 + 0.5 * d56 - 5.25 * v7;
            d[6][l] = s12 + s34 + s56 - v0;
            d[7][l] = v7;
        }
        d
    }

    #[inline(always)]
    fn output<const L: usize>(m: [[f32; L]; 8]) -> [[f32; L]; 6] {
        let mut y = [[0.0f32; L]; 6];
        for l in 0..L {
            let [m0, m1, m2, m3, m4, m5, m6, m7] = lane(&m, l);
            let (s12, d12, s34, d34, s56, d56) =
                (m1 + m2, m1 - m2, m3 + m4, m3 - m4, m5 + m6, m5 - m6);
            y[0][l] = m0 + s12 + s34 + s56;
            y[1][l] = d12 + 2.0 * d34 + 0.5 * d56;
            y[2][l] = s12 + 4.0 * s34 + 0.25 * s56;
            y[3][l] = d12 + 8.0 * d34 + 0.125 * d56;
            y[4][l] = s12 + 16.0 * s34 + 0.0625 * s56;
            y[5][l] = d12 + 32.0 * d34 + 0.03125 * d56 + m7;
        }
        y
    }

    #[inline(always)]
    fn output_grad<const L: usize>(y: [[f32; L]; 6]) -> [[f32; L]; 8] {
        let mut m = [[0.0f32; L]; 8];
        for l in 0..L {
            let [y0, y1, y2, y3, y4, y5] = lane(&y, l);
            let (e1, o1) = (y0 + y2 + y4, y1 + y3 + y5);
            let (e2, o2) = (y0 + 4.0 * y2 + 16.0 * y4, 2.0 * y1 + 8.0 * y3 + 32.0 * y5);
            let (e3, o3) = (
                y0 + 0.25 * y2 + 0.0625 * y4,
                0.5 * y1 + 0.125 * y3 + 0.03125 * y5,
            );
            m[0][l] = y0;
            m[1][l] = e1 + o1;
            m[2][l] = e1 - o1;
            m[3][l] = e2 + o2;
            m[4][l] = e2 - o2;
            m[5][l] = e3 + o3;
            m[6][l] = e3 - o3;
            m[7][l] = y5;
        }
        m
    }
}

/// The values of lane `l` of an `N`-value column of `L`-lane vectors.
#[inline(always)]
fn lane<const L: usize, const N: usize>(x: &[[f32; L]; N], l: usize) -> [f32; N] {
    std::array::from_fn(|i| x[i][l])
}

/// A 2-D transform of one tile, `L` channels: the 1-D transform `$t::$f` (`$n` values to
/// `$m`) of each column (read with `$load`, a slice of `L` values for row `r`, column `s`)
/// into `scratch`, then of each row of that, handed to `$store` (row `r`, column `s`, values
/// `v`).
macro_rules! two_pass {
    ($L:ident, $n:expr, $m:expr, $t:ident::$f:ident, $scratch:expr,
     |$lr:ident, $ls:ident| $load:expr, |$sr:ident, $ss:ident, $v:ident| $store:expr) => {{
        let scratch: &mut [f32] = $scratch;
        for s in 0..$n {
            let mut col = [[0.0f32; $L]; $n];
            for (r, c) in col.iter_mut().enumerate() {
                let ($lr, $ls) = (r, s);
                c.copy_from_slice($load);
            }
            for (r, v) in $t::$f::<$L>(col).iter().enumerate() {
                scratch[(r * $n + s) * $L..][..$L].copy_from_slice(v);
            }
        }
        for r in 0..$m {
            let mut row = [[0.0f32; $L]; $n];
            for (s, x) in row.iter_mut().enumerate() {
                x.copy_from_slice(&scratch[(r * $n + s) * $L..][..$L]);
            }
            for (s, $v) in $t::$f::<$L>(row).iter().enumerate() {
                let ($sr, $ss) = (r, s);
                $store;
            }
        }
    }};
}

/// Defines `pub(crate) fn $name`, running `$generic` for the tiling's variant, compiled for
/// each instruction set (`multiversion`).
macro_rules! per_variant {
    ($(#[$doc:meta])* $name:ident => $generic:ident ($t:ident: $tty:ty $(, $arg:ident: $ty:ty)*)) => {
        $(#[$doc])*
        #[allow(clippy::too_many_arguments)]
        pub(crate) fn $name($t: $tty $(, $arg: $ty)*) {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn f4_body($t: $tty $(, $arg: $ty)*) {
                $generic::<6, 4, F4>($t $(, $arg)*)
            }
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn f6_body($t: $tty $(, $arg: $ty)*) {
                $generic::<8, 6, F6>($t $(, $arg)*)
            }
            multiversion!(f4 => f4_body($t: $tty $(, $arg: $ty)*));
            multiversion!(f6 => f6_body($t: $tty $(, $arg: $ty)*));
            match $t.variant {
                Variant::F4 => f4($t $(, $arg)*),
                Variant::F6 => f6($t $(, $arg)*),
            }
        }
    };
}

per_variant!(
    /// One sample's tiles `Bᵀ d B` into rows `row0..` of the matrices in `v` (one per
    /// position), `stride` apart; `scratch` holds `tile_len` values.
    input_tiles => input_tiles_body(t: &Tiling, image: &[f32], zeros: &[f32], v: &mut [f32], stride: usize, row0: usize, scratch: &mut [f32])
);

#[inline(always)]
fn input_tiles_body<const IN: usize, const OUT: usize, T: Transforms<IN, OUT>>(
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
            let mut d: [[&[f32]; IN]; IN] = [[&zeros[..c]; IN]; IN];
            for (r, row) in d.iter_mut().enumerate() {
                for (s, d) in row.iter_mut().enumerate() {
                    if let Some(p) = t.pixel(ty, tx, r, s) {
                        *d = &image[p..p + c];
                    }
                }
            }
            let at = (row0 + ty * t.tiles_w + tx) * c;
            by_lanes!(c, |i, L| two_pass!(
                L,
                IN,
                IN,
                T::input,
                scratch,
                |r, s| &d[r][s][i..i + L],
                |r, s, x| v[(r * IN + s) * stride + at + i..][..L].copy_from_slice(x)
            ));
        }
    }
}

/// What the output transform does after adding the bias.
#[derive(Clone, Copy)]
pub(crate) struct Epilogue {
    /// A ReLU.
    pub relu: bool,
    /// Then the 2x2 max pool of stride 2: each tile (even-sized, at even places) writes its
    /// pooled outputs, the pooled output's size the convolution's halved (rounded down).
    pub pooled: bool,
}

per_variant!(
    /// One sample's outputs `Aᵀ m A + bias` (then the epilogue) from the block's products
    /// `m` (one matrix per position, `stride` apart); `tile` holds `tile_len` values.
    output_tiles => output_tiles_body(t: &Tiling, m: &[f32], stride: usize, row0: usize, bias: &[f32], epilogue: Epilogue, tile: &mut [f32], out: &mut [f32])
);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_tiles_body<const IN: usize, const OUT: usize, T: Transforms<IN, OUT>>(
    t: &Tiling,
    m: &[f32],
    stride: usize,
    row0: usize,
    bias: &[f32],
    epilogue: Epilogue,
    tile: &mut [f32],
    out: &mut [f32],
) {
    let (f, relu) = (t.filters, epilogue.relu);
    let (tile, scratch) = tile.split_at_mut(t.tile_part());
    for ty in 0..t.tiles_h {
        for tx in 0..t.tiles_w {
            let at = (row0 + ty * t.tiles_w + tx) * f;
            by_lanes!(f, |i, L| two_pass!(
                L,
                IN,
                OUT,
                T::output,
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
            if epilogue.pooled {
                pool_tile::<OUT>(t, tile, (ty, tx), out);
                continue;
            }
            for (rs, y) in tile[..OUT * OUT * f].chunks_exact(f).enumerate() {
                if let Some(o) = t.output(ty, tx, rs / OUT, rs % OUT) {
                    out[o..o + f].copy_from_slice(y);
                }
            }
        }
    }
}

/// The 2x2 max pools (stride 2) of one `OUT`x`OUT` output tile into the pooled output: each
/// window's maximum taken as `MaxPool2d` takes it (the first of equal values, from minus
/// infinity, row by row), so the values are those of the convolution's output pooled.
#[inline(always)]
fn pool_tile<const OUT: usize>(
    t: &Tiling,
    tile: &[f32],
    (ty, tx): (usize, usize),
    out: &mut [f32],
) {
    let f = t.filters;
    let (ph, pw) = (t.g.out_h / 2, t.g.out_w / 2);
    for pr in 0..OUT / 2 {
        let py = ty * OUT / 2 + pr;
        if py >= ph {
            break;
        }
        for pc in 0..OUT / 2 {
            let px = tx * OUT / 2 + pc;
            if px >= pw {
                break;
            }
            let dst = &mut out[(py * pw + px) * f..][..f];
            let window: [&[f32]; 4] = [(0, 0), (0, 1), (1, 0), (1, 1)]
                .map(|(i, j)| &tile[((2 * pr + i) * OUT + 2 * pc + j) * f..][..f]);
            // Eight channels at a time in a register, then any left one by one.
            let whole = f - f % 8;
            for c in (0..whole).step_by(8) {
                let mut best = [f32::NEG_INFINITY; 8];
                for src in window {
                    let v: &[f32; 8] = src[c..c + 8].try_into().expect("eight");
                    for l in 0..8 {
                        best[l] = if v[l] > best[l] { v[l] } else { best[l] };
                    }
                }
                dst[c..c + 8].copy_from_slice(&best);
            }
            for c in whole..f {
                let mut best = f32::NEG_INFINITY;
                for src in window {
                    best = if src[c] > best { src[c] } else { best };
                }
                dst[c] = best;
            }
        }
    }
}

per_variant!(
    /// One sample's output gradients (through the ReLU when `relu`, zero outside the output)
    /// as `A dY Aᵀ` into rows `row0..` of the matrices `dm` (one per position, `stride`
    /// apart), adding them to the bias gradient `db`; `tile` holds `tile_len` values.
    output_grad_tiles => output_grad_tiles_body(t: &Tiling, dy: &[f32], y: &[f32], relu: bool, tile: &mut [f32], db: &mut [f32], dm: &mut [f32], stride: usize, row0: usize)
);

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn output_grad_tiles_body<const IN: usize, const OUT: usize, T: Transforms<IN, OUT>>(
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
    let (tile, scratch) = tile.split_at_mut(t.tile_part());
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
                T::output_grad,
                scratch,
                |r, s| &tile[(r * OUT + s) * f + i..][..L],
                |r, s, x| dm[(r * IN + s) * stride + at + i..][..L].copy_from_slice(x)
            ));
        }
    }
}

per_variant!(
    /// Sets `image` to one sample's input gradient: the tiles' `B dV Bᵀ` (from rows `row0..`
    /// of the matrices `dv`, one per position, `stride` apart) added where they overlap;
    /// `tile` holds `tile_len` values.
    input_grad_tiles => input_grad_tiles_body(t: &Tiling, dv: &[f32], stride: usize, row0: usize, tile: &mut [f32], image: &mut [f32])
);

#[inline(always)]
fn input_grad_tiles_body<const IN: usize, const OUT: usize, T: Transforms<IN, OUT>>(
    t: &Tiling,
    dv: &[f32],
    stride: usize,
    row0: usize,
    tile: &mut [f32],
    image: &mut [f32],
) {
    let c = t.g.in_c;
    let (tile, scratch) = tile.split_at_mut(t.tile_part());
    image.fill(0.0);
    for ty in 0..t.tiles_h {
        for tx in 0..t.tiles_w {
            let at = (row0 + ty * t.tiles_w + tx) * c;
            by_lanes!(c, |i, L| two_pass!(
                L,
                IN,
                IN,
                T::input_grad,
                scratch,
                |r, s| &dv[(r * IN + s) * stride + at + i..][..L],
                |r, s, x| tile[(r * IN + s) * c + i..][..L].copy_from_slice(x)
            ));
            for (k, g) in tile[..IN * IN * c].chunks_exact(c).enumerate() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Padding;

    /// 6x6 output tiles where they take at most 3/4 of the products (cifar10-keras' 30x30
    /// output, 6x6), 4x4 ones otherwise (mnist-convnet's 11x11 takes 79%).
    #[test]
    fn picks_larger_tiles_where_they_save_a_quarter_of_the_products() {
        for (input, padding, variant) in [
            ([32, 32, 8], Padding::Valid, Variant::F6),
            ([6, 6, 8], Padding::Same, Variant::F6),
            ([13, 13, 8], Padding::Valid, Variant::F4),
            ([32, 32, 8], Padding::Same, Variant::F4),
            ([15, 15, 8], Padding::Same, Variant::F4),
            ([15, 15, 8], Padding::Valid, Variant::F4),
            ([6, 6, 8], Padding::Valid, Variant::F4),
        ] {
            let g = ConvGeometry::new(input, 3, 1, padding).unwrap();
            assert_eq!(Tiling::new(g, 4).variant, variant, "{input:?} {padding:?}");
        }
    }

    /// Values in [-1, 1) from a small generator, reproducible.
    fn values<const N: usize>(seed: u32) -> [[f32; 1]; N] {
        let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        std::array::from_fn(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            [(x >> 8) as f32 / (1u32 << 23) as f32 - 1.0]
        })
    }

    fn dot<const N: usize>(a: &[[f32; 1]; N], b: &[[f32; 1]; N]) -> f32 {
        a.iter().zip(b).map(|(x, y)| x[0] * y[0]).sum()
    }

    /// `Aᵀ ((G g) ⊙ (Bᵀ d))` is the 3-tap correlation of `d` with `g`, and each backward
    /// transform is its forward one transposed (`<Bᵀ d, v> = <d, B v>`, `<Aᵀ m, y> = <m, A y>`).
    fn transforms_convolve<const IN: usize, const OUT: usize, T: Transforms<IN, OUT>>(
        variant: Variant,
    ) {
        for seed in 0..20 {
            let d = values::<IN>(seed);
            let g = values::<3>(seed + 100);
            let v = T::input::<1>(d);
            let m: [[f32; 1]; IN] = std::array::from_fn(|a| {
                let u: f32 = (0..3).map(|i| variant.g()[a][i] * g[i][0]).sum();
                [u * v[a][0]]
            });
            let y = T::output::<1>(m);
            for (i, y) in y.iter().enumerate() {
                let want: f32 = (0..3).map(|k| d[i + k][0] * g[k][0]).sum();
                assert!(
                    (y[0] - want).abs() < 1e-5,
                    "{variant:?} output {i}: {} vs {want}",
                    y[0]
                );
            }
            let w = values::<IN>(seed + 200);
            let (a, b) = (dot(&T::input::<1>(d), &w), dot(&d, &T::input_grad::<1>(w)));
            assert!(
                (a - b).abs() < 1e-4 * (1.0 + a.abs()),
                "{variant:?}: {a} vs {b}"
            );
            let z = values::<OUT>(seed + 300);
            let (a, b) = (
                dot(&T::output::<1>(d), &z),
                dot(&d, &T::output_grad::<1>(z)),
            );
            assert!(
                (a - b).abs() < 1e-4 * (1.0 + a.abs()),
                "{variant:?}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn both_variants_convolve_and_transpose() {
        transforms_convolve::<6, 4, F4>(Variant::F4);
        transforms_convolve::<8, 6, F6>(Variant::F6);
    }
}
