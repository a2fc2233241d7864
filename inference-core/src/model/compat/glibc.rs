//! `sinf`, `cosf` and `expf` as glibc computes them (its single-precision sin/cos from ARM's Optimized
//! Routines, `sysdeps/ieee754/flt-32/s_sinf.c`, `s_cosf.c`, `s_sincosf.h`; glibc 2.28 and later):
//! llama.cpp builds its RoPE table with them, and they are not correctly rounded, so a correctly
//! rounded `cos` differs from them in the last bit often enough to change logits.

/// One `sincos_t`: signs per quadrant, 2/pi (scaled by 2^24), pi/2, cosine and sine polynomials.
struct SinCos {
    sign: [f64; 4],
    hpi_inv: f64,
    hpi: f64,
    c: [f64; 5],
    s: [f64; 3],
}

/// `__sincosf_table`: the second entry negates the cosine polynomial.
const TABLE: [SinCos; 2] = [
    SinCos {
        sign: [1.0, -1.0, -1.0, 1.0],
        hpi_inv: f64::from_bits(0x4164_5f30_6dc9_c883),
        hpi: f64::from_bits(0x3ff9_21fb_5444_2d18),
        c: [
            f64::from_bits(0x3ff0_0000_0000_0000),
            f64::from_bits(0xbfdf_ffff_fd0c_621c),
            f64::from_bits(0x3fa5_5553_e106_8f19),
            f64::from_bits(0xbf56_c087_e89a_359d),
            f64::from_bits(0x3ef9_9343_027b_f8c3),
        ],
        s: [
            f64::from_bits(0xbfc5_5554_5995_a603),
            f64::from_bits(0x3f81_1076_0523_0bc4),
            f64::from_bits(0xbf29_94eb_3774_cf24),
        ],
    },
    SinCos {
        sign: [1.0, -1.0, -1.0, 1.0],
        hpi_inv: f64::from_bits(0x4164_5f30_6dc9_c883),
        hpi: f64::from_bits(0x3ff9_21fb_5444_2d18),
        c: [
            f64::from_bits(0xbff0_0000_0000_0000),
            f64::from_bits(0x3fdf_ffff_fd0c_621c),
            f64::from_bits(0xbfa5_5553_e106_8f19),
            f64::from_bits(0x3f56_c087_e89a_359d),
            f64::from_bits(0xbef9_9343_027b_f8c3),
        ],
        s: [
            f64::from_bits(0xbfc5_5554_5995_a603),
            f64::from_bits(0x3f81_1076_0523_0bc4),
            f64::from_bits(0xbf29_94eb_3774_cf24),
        ],
    },
];

/// `__inv_pio4`: 4/pi to 192 bits, 8 new bits per entry.
const INV_PIO4: [u32; 24] = [
    0xa2, 0xa2f9, 0xa2f983, 0xa2f9836e, 0xf9836e4e, 0x836e4e44, 0x6e4e4415, 0x4e441529, 0x441529fc,
    0x1529fc27, 0x29fc2757, 0xfc2757d1, 0x2757d1f5, 0x57d1f534, 0xd1f534dd, 0xf534ddc0, 0x34ddc0db,
    0xddc0db62, 0xc0db6295, 0xdb629599, 0x6295993c, 0x95993c43, 0x993c4390, 0x3c439041,
];

/// 2 pi * 2^-64.
const PI63: f64 = f64::from_bits(0x3c19_21fb_5444_2d18);

fn abstop12(x: f32) -> u32 {
    (x.to_bits() >> 20) & 0x7ff
}

/// `sinf_poly`: the sine polynomial for even quadrants `n`, the cosine one for odd.
fn poly(x: f64, x2: f64, p: &SinCos, n: i32) -> f32 {
    if n & 1 == 0 {
        let x3 = x * x2;
        let s1 = p.s[1] + x2 * p.s[2];
        let x7 = x3 * x2;
        let s = x + x3 * p.s[0];
        (s + x7 * s1) as f32
    } else {
        let x4 = x2 * x2;
        let c2 = p.c[3] + x2 * p.c[4];
        let c1 = p.c[0] + x2 * p.c[1];
        let x6 = x4 * x2;
        let c = c1 + x4 * p.c[2];
        (c + x6 * c2) as f32
    }
}

/// `reduce_fast` (no rounding intrinsics): `x` modulo pi/2 and the quadrant, for |x| < 120.
fn reduce_fast(x: f64, p: &SinCos) -> (f64, i32) {
    let r = x * p.hpi_inv;
    let n = ((r as i32).wrapping_add(0x80_0000)) >> 24;
    (x - n as f64 * p.hpi, n)
}

/// `reduce_large`: `xi` (float bits, |x| >= 120) modulo pi/2 through 4/pi to 192 bits.
fn reduce_large(xi: u32) -> (f64, i32) {
    let arr = &INV_PIO4[((xi >> 26) & 15) as usize..];
    let shift = (xi >> 23) & 7;
    let xi = ((xi & 0xff_ffff) | 0x80_0000) << shift;
    let res0 = xi.wrapping_mul(arr[0]) as u64;
    let res1 = xi as u64 * arr[4] as u64;
    let res2 = xi as u64 * arr[8] as u64;
    let res0 = ((res2 >> 32) | (res0 << 32)).wrapping_add(res1);
    let n = (res0.wrapping_add(1 << 61)) >> 62;
    let res0 = res0.wrapping_sub(n << 62);
    ((res0 as i64) as f64 * PI63, n as i32)
}

/// glibc's `sinf` (`cos == false`) or `cosf` (`cos == true`).
fn sin_or_cos(y: f32, cos: bool) -> f32 {
    let x = y as f64;
    let c = cos as i32;
    if abstop12(y) < abstop12(core::f32::consts::FRAC_PI_4) {
        if abstop12(y) < abstop12(f32::from_bits(0x3980_0000)) {
            // |y| < 2^-12.
            return if cos { 1.0 } else { y };
        }
        return poly(x, x * x, &TABLE[0], c);
    }
    let (r, n, sign) = if abstop12(y) < abstop12(120.0) {
        let (r, n) = reduce_fast(x, &TABLE[0]);
        (r, n, 0)
    } else if y.is_finite() {
        let (r, n) = reduce_large(y.to_bits());
        (r, n, (y.to_bits() >> 31) as i32)
    } else {
        return f32::NAN;
    };
    let q = n.wrapping_add(sign);
    let s = TABLE[0].sign[(q & 3) as usize];
    let p = &TABLE[usize::from(q & 2 != 0)];
    poly(r * s, r * r, p, n ^ c)
}

/// glibc's `sinf`.
pub fn sinf(x: f32) -> f32 {
    sin_or_cos(x, false)
}

/// glibc's `cosf`.
pub fn cosf(x: f32) -> f32 {
    sin_or_cos(x, true)
}

/// `__exp2f_data.tab`: `bits(2^(i/32)) - (i << 47)`.
const EXP2F_TAB: [u64; 32] = [
    0x3ff0000000000000,
    0x3fefd9b0d3158574,
    0x3fefb5586cf9890f,
    0x3fef9301d0125b51,
    0x3fef72b83c7d517b,
    0x3fef54873168b9aa,
    0x3fef387a6e756238,
    0x3fef1e9df51fdee1,
    0x3fef06fe0a31b715,
    0x3feef1a7373aa9cb,
    0x3feedea64c123422,
    0x3feece086061892d,
    0x3feebfdad5362a27,
    0x3feeb42b569d4f82,
    0x3feeab07dd485429,
    0x3feea47eb03a5585,
    0x3feea09e667f3bcd,
    0x3fee9f75e8ec5f74,
    0x3feea11473eb0187,
    0x3feea589994cce13,
    0x3feeace5422aa0db,
    0x3feeb737b0cdc5e5,
    0x3feec49182a3f090,
    0x3feed503b23e255d,
    0x3feee89f995ad3ad,
    0x3feeff76f2fb5e47,
    0x3fef199bdd85529c,
    0x3fef3720dcef9069,
    0x3fef5818dcfba487,
    0x3fef7c97337b9b5f,
    0x3fefa4afa2a490da,
    0x3fefd0765b6e4540,
];

/// glibc's `expf` (ARM Optimized Routines, `sysdeps/ieee754/flt-32/e_expf.c`), which llama.cpp's
/// flash attention calls for its online softmax. Not always correctly rounded, so an f64 `exp`
/// rounded to f32 differs from it now and then.
pub fn expf(x: f32) -> f32 {
    const N: f64 = 32.0;
    let abstop = (x.to_bits() >> 20) & 0x7ff;
    if abstop >= (88.0f32.to_bits() >> 20) & 0x7ff {
        if x == f32::NEG_INFINITY {
            return 0.0;
        }
        if !x.is_finite() {
            return x + x;
        }
        if x > f32::from_bits(0x42b1_7217) {
            return f32::INFINITY;
        }
        if x < f32::from_bits(0xc2cf_f1b4) {
            return 0.0;
        }
    }
    let inv_ln2_n = f64::from_bits(0x3ff7_1547_652b_82fe) * N;
    let shift = f64::from_bits(0x4338_0000_0000_0000);
    let c = [
        f64::from_bits(0x3fac_6af8_4b91_2394) / N / N / N,
        f64::from_bits(0x3fce_bfce_50fa_c4f3) / N / N,
        f64::from_bits(0x3fe6_2e42_ff0c_52d6) / N,
    ];
    let z = inv_ln2_n * x as f64;
    let kd = z + shift;
    let ki = kd.to_bits();
    let kd = kd - shift;
    let r = z - kd;
    let t = EXP2F_TAB[(ki % 32) as usize].wrapping_add(ki << 47);
    let s = f64::from_bits(t);
    let z = c[0] * r + c[1];
    let r2 = r * r;
    let y = c[2] * r + 1.0;
    let y = z * r2 + y;
    (y * s) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_to_the_true_values() {
        for i in -2000..2000 {
            let x = i as f32 * 0.37;
            let (s, c) = (libm::sin(x as f64), libm::cos(x as f64));
            assert!((sinf(x) as f64 - s).abs() < 1e-7, "sin {x}");
            assert!((cosf(x) as f64 - c).abs() < 1e-7, "cos {x}");
        }
    }

    /// Against the host C library, where it is glibc (the functions are glibc's).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn bit_identical_to_glibc() {
        extern crate std;
        extern "C" {
            #[link_name = "sinf"]
            fn c_sinf(x: f32) -> f32;
            #[link_name = "cosf"]
            fn c_cosf(x: f32) -> f32;
        }
        let mut x = 1e-5f32;
        while x < 3e5 {
            for v in [x, -x] {
                // SAFETY: sinf and cosf are pure C library functions of one float.
                let (s, c) = unsafe { (c_sinf(v), c_cosf(v)) };
                assert_eq!(sinf(v).to_bits(), s.to_bits(), "sinf({v})");
                assert_eq!(cosf(v).to_bits(), c.to_bits(), "cosf({v})");
            }
            x *= 1.000_37;
        }
    }
}
