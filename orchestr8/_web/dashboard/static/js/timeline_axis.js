// The timeline's time axis: tick spacing on a 1-2-5 scale and tick labels, as the text chart of
// `inspect --timeline` chooses them (but in milliseconds below a second), so zooming in gives
// finer, still round, ticks.

/** The smallest 1-2-5 step (in seconds) that is at least `wanted` seconds. */
export function niceStep(wanted) {
  if (!(wanted > 0) || !Number.isFinite(wanted)) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(wanted));
  for (const factor of [1, 2, 5, 10]) {
    if (factor * magnitude >= wanted * (1 - 1e-9)) return factor * magnitude;
  }
  return 10 * magnitude;
}

/**
 * A tick's label: `value` seconds with as many decimals as the step needs (`1.5s`, `120s`), in
 * milliseconds below one second (`5 ms`, `250 ms`), and `0` at the start.
 */
export function tickLabel(value, step) {
  if (Math.abs(value) < step * 1e-6) return "0";
  const trim = (text) => (text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text);
  const places = (unit) => (unit < 1 ? Math.min(6, Math.max(0, -Math.floor(Math.log10(unit)))) : 0);
  if (Math.abs(value) < 1) return `${trim((value * 1000).toFixed(places(step * 1000)))} ms`;
  return `${trim(value.toFixed(places(step)))}s`;
}
