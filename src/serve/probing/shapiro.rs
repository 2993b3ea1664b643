//! The Shapiro-Wilk normality test, with Royston's (1992, 1995; algorithm AS R94)
//! approximations for the coefficients and the p-value, valid for 3 to 5000 values.

/// The standard normal quantile (Acklam's rational approximation, relative error below
/// 1.2e-9), for `p` in (0, 1).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    const LOW: f64 = 0.02425;
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p <= 1.0 - LOW {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    }
}

/// The complementary error function (Chebyshev fit, fractional error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// The standard normal upper tail, P(Z > z).
fn normal_sf(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

fn poly(c: &[f64], x: f64) -> f64 {
    c.iter().rev().fold(0.0, |acc, &v| acc * x + v)
}

/// The Shapiro-Wilk coefficients `a` for a sample of `n` (3..=5000) values, in the order of
/// the sorted sample (antisymmetric: `a[i] = -a[n-1-i]`). Depend on `n` only, so callers
/// cache them.
pub fn coefficients(n: usize) -> Vec<f64> {
    let n = n.clamp(3, 5000);
    let mut a = vec![0.0; n];
    if n == 3 {
        a[0] = -std::f64::consts::FRAC_1_SQRT_2;
        a[2] = std::f64::consts::FRAC_1_SQRT_2;
        return a;
    }
    let nf = n as f64;
    let m: Vec<f64> = (1..=n)
        .map(|i| normal_quantile((i as f64 - 0.375) / (nf + 0.25)))
        .collect();
    let mm: f64 = m.iter().map(|v| v * v).sum();
    let u = 1.0 / nf.sqrt();
    const C1: [f64; 6] = [
        0.0, 0.221_157, -0.147_981, -2.071_190, 4.434_685, -2.706_056,
    ];
    const C2: [f64; 6] = [
        0.0, 0.042_981, -0.293_762, -1.752_461, 5.682_633, -3.582_633,
    ];
    let an = m[n - 1] / mm.sqrt() + poly(&C1, u);
    if n > 5 {
        let an1 = m[n - 2] / mm.sqrt() + poly(&C2, u);
        let eps = (mm - 2.0 * m[n - 1].powi(2) - 2.0 * m[n - 2].powi(2))
            / (1.0 - 2.0 * an.powi(2) - 2.0 * an1.powi(2));
        let s = eps.sqrt();
        for i in 2..n - 2 {
            a[i] = m[i] / s;
        }
        a[n - 1] = an;
        a[n - 2] = an1;
        a[0] = -an;
        a[1] = -an1;
    } else {
        let eps = (mm - 2.0 * m[n - 1].powi(2)) / (1.0 - 2.0 * an.powi(2));
        let s = eps.sqrt();
        for i in 1..n - 1 {
            a[i] = m[i] / s;
        }
        a[n - 1] = an;
        a[0] = -an;
    }
    a
}

/// W for an ascending `sorted` sample and its [`coefficients`]. A sample with no spread is as
/// far from normal as it gets here: W = 0.
pub fn w_statistic(sorted: &[f64], a: &[f64]) -> f64 {
    let n = sorted.len();
    if n < 3 || a.len() != n {
        return 1.0;
    }
    let mean = sorted.iter().sum::<f64>() / n as f64;
    let ss: f64 = sorted.iter().map(|v| (v - mean) * (v - mean)).sum();
    let range = sorted[n - 1] - sorted[0];
    let tiny = 1e-24 * (1.0 + mean * mean) * n as f64;
    if ss.is_nan() || ss <= tiny || range <= 0.0 {
        return 0.0;
    }
    let num: f64 = a.iter().zip(sorted).map(|(a, x)| a * x).sum();
    (num * num / ss).clamp(0.0, 1.0)
}

/// Royston's p-value for W from a sample of `n` values (small W: small p).
pub fn p_value(w: f64, n: usize) -> f64 {
    if n < 3 {
        return 1.0;
    }
    let nf = n as f64;
    if n == 3 {
        let p =
            6.0 / std::f64::consts::PI * (w.clamp(0.75, 1.0).sqrt().asin() - 0.75f64.sqrt().asin());
        return p.clamp(0.0, 1.0);
    }
    let w1 = (1.0 - w).max(1e-300).ln();
    let (y, mu, sigma) = if n <= 11 {
        let gamma = 0.459 * nf - 2.273;
        let y = -(gamma - w1).max(1e-300).ln();
        let mu = poly(&[0.5440, -0.39978, 0.025054, -6.714e-4], nf);
        let sigma = poly(&[1.3822, -0.77857, 0.062767, -2.0322e-3], nf).exp();
        (y, mu, sigma)
    } else {
        let ln = nf.ln();
        let mu = poly(&[-1.5861, -0.31082, -0.083751, 3.8915e-3], ln);
        let sigma = poly(&[-0.4803, -0.082676, 3.0302e-3], ln).exp();
        (w1, mu, sigma)
    };
    normal_sf((y - mu) / sigma).clamp(0.0, 1.0)
}

/// W and its p-value for `values` (sorted in place). `None` for fewer than 3 values or
/// non-finite ones.
pub fn shapiro_wilk(values: &mut [f64]) -> Option<(f64, f64)> {
    if values.len() < 3 || values.len() > 5000 || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let a = coefficients(values.len());
    let w = w_statistic(values, &a);
    Some((w, p_value(w, values.len())))
}
