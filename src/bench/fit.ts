/** Least-squares line y = slope·x + intercept, with the coefficient of determination R². */
export interface LinearFit {
  slope: number;
  intercept: number;
  /** 1 − SS_res/SS_tot: the share of y's variance the line explains (1 for a perfect fit). */
  r2: number;
  n: number;
}

export function linearFit(xs: readonly number[], ys: readonly number[]): LinearFit {
  if (xs.length !== ys.length) throw new RangeError(`linearFit: ${xs.length} x values but ${ys.length} y values`);
  const n = xs.length;
  if (n < 2) throw new RangeError(`linearFit: needs at least 2 points, got ${n}`);
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxx = 0;
  let sxy = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = xs[i]! - mx;
    const dy = ys[i]! - my;
    sxx += dx * dx;
    sxy += dx * dy;
    syy += dy * dy;
  }
  if (sxx === 0) throw new RangeError('linearFit: every x is the same; a slope is undefined');
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  let ssRes = 0;
  for (let i = 0; i < n; i++) {
    const e = ys[i]! - (slope * xs[i]! + intercept);
    ssRes += e * e;
  }
  // All y equal: the flat line explains them completely.
  const r2 = syy === 0 ? 1 : 1 - ssRes / syy;
  return { slope, intercept, r2, n };
}
