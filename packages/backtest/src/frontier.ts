import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import type { FrontierCurve } from './backtest.ts';
import { BacktestInputError } from './errors.ts';

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];
const W = 800;
const H = 520;
const M = { left: 80, right: 180, top: 50, bottom: 60 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Round tick step (1, 2 or 5 × 10^k) giving about `n` ticks over `span`. */
function tickStep(span: number, n: number): number {
  const raw = span / n;
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(1);
  return Number(v.toPrecision(4)).toString();
}

function axisRange(values: number[]): [number, number] {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const pad = (hi - lo) * 0.06;
  return [lo >= 0 ? Math.max(0, lo - pad) : lo - pad, hi + pad];
}

/**
 * The efficient frontier as SVG: x = risk (std of hedged P&L, USD), y = mean transaction cost (USD),
 * one polyline per policy, one labelled point per swept parameter value.
 */
export function renderFrontierSvg(
  curves: readonly FrontierCurve[],
  title = 'Hedging efficient frontier',
): string {
  const pts = curves.flatMap((c) => c.points);
  if (pts.length === 0) throw new BacktestInputError('the frontier has no points to draw');
  const [x0, x1] = axisRange(pts.map((p) => p.riskUsd));
  const [y0, y1] = axisRange(pts.map((p) => p.costUsd));
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const sx = (x: number): number => M.left + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number): number => M.top + ph - ((y - y0) / (y1 - y0)) * ph;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${M.left + pw / 2}" y="28" font-size="18" text-anchor="middle">${esc(title)}</text>`,
  );
  const xs = tickStep(x1 - x0, 6);
  for (let v = Math.ceil(x0 / xs) * xs; v <= x1 + 1e-12; v += xs) {
    const x = sx(v).toFixed(1);
    out.push(
      `<line x1="${x}" y1="${M.top}" x2="${x}" y2="${M.top + ph}" stroke="#e5e5e5"/>`,
      `<text x="${x}" y="${M.top + ph + 18}" font-size="12" text-anchor="middle">${fmt(v)}</text>`,
    );
  }
  const ys = tickStep(y1 - y0, 6);
  for (let v = Math.ceil(y0 / ys) * ys; v <= y1 + 1e-12; v += ys) {
    const y = sy(v).toFixed(1);
    out.push(
      `<line x1="${M.left}" y1="${y}" x2="${M.left + pw}" y2="${y}" stroke="#e5e5e5"/>`,
      `<text x="${M.left - 8}" y="${y}" font-size="12" text-anchor="end" dominant-baseline="middle">${fmt(v)}</text>`,
    );
  }
  out.push(
    `<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#333"/>`,
    `<text x="${M.left + pw / 2}" y="${H - 16}" font-size="14" text-anchor="middle">risk: std of hedged P&amp;L (USD)</text>`,
    `<text x="20" y="${M.top + ph / 2}" font-size="14" text-anchor="middle" transform="rotate(-90 20 ${M.top + ph / 2})">mean transaction cost (USD)</text>`,
  );
  curves.forEach((c, i) => {
    const color = COLORS[i % COLORS.length] as string;
    const line = c.points.map((p) => `${sx(p.riskUsd).toFixed(1)},${sy(p.costUsd).toFixed(1)}`).join(' ');
    out.push(`<polyline points="${line}" fill="none" stroke="${color}" stroke-width="2"/>`);
    for (const p of c.points) {
      const x = sx(p.riskUsd).toFixed(1);
      const y = sy(p.costUsd).toFixed(1);
      out.push(
        `<circle cx="${x}" cy="${y}" r="4" fill="${color}"><title>${esc(`${c.policy} ${c.param}=${p.value}`)}</title></circle>`,
        `<text x="${x}" y="${(sy(p.costUsd) - 8).toFixed(1)}" font-size="10" fill="${color}" text-anchor="middle">${fmt(p.value)}</text>`,
      );
    }
    const ly = M.top + 20 + i * 22;
    out.push(
      `<line x1="${M.left + pw + 16}" y1="${ly}" x2="${M.left + pw + 40}" y2="${ly}" stroke="${color}" stroke-width="3"/>`,
      `<text x="${M.left + pw + 46}" y="${ly}" font-size="12" dominant-baseline="middle">${esc(`${c.policy} (${c.param})`)}</text>`,
    );
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Rasterizes an SVG to PNG with resvg (system fonts). */
export function svgToPng(svg: string): Buffer {
  const r = new Resvg(svg, {
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' },
    background: '#ffffff',
  });
  return r.render().asPng();
}

/** Writes `frontier.svg`, `frontier.png` and `frontier.json` into `dir` (created if missing). */
export function writeFrontier(
  curves: readonly FrontierCurve[],
  dir: string,
  title?: string,
): { svgPath: string; pngPath: string; jsonPath: string } {
  mkdirSync(dir, { recursive: true });
  const svg = renderFrontierSvg(curves, title);
  const svgPath = join(dir, 'frontier.svg');
  const pngPath = join(dir, 'frontier.png');
  const jsonPath = join(dir, 'frontier.json');
  writeFileSync(svgPath, svg);
  writeFileSync(pngPath, svgToPng(svg));
  writeFileSync(jsonPath, `${JSON.stringify(curves, null, 2)}\n`);
  return { svgPath, pngPath, jsonPath };
}
