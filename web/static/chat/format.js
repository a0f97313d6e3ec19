// Times, token counts and costs as people read them.
import { useEffect, useState } from "preact/hooks";
import { html } from "./html.js";

const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" });
const STEPS = [
  [60, "second"],
  [60, "minute"],
  [24, "hour"],
  [7, "day"],
  [4.35, "week"],
  [12, "month"],
  [Infinity, "year"],
];

/** "now", "5 min. ago", "yesterday", ... */
export function ago(iso, now = Date.now()) {
  let amount = (new Date(iso).getTime() - now) / 1000;
  if (Math.abs(amount) < 45) return relative.format(0, "second");
  for (const [size, unit] of STEPS) {
    if (Math.abs(amount) < size) return relative.format(Math.round(amount), unit);
    amount /= size;
  }
  return "";
}

export const fullDate = (iso) => new Date(iso).toLocaleString();

/** A relative time ("5 min. ago") with the full date on hover. */
export const Ago = ({ iso, now }) => html`<time datetime=${iso} title=${fullDate(iso)}>${ago(iso, now)}</time>`;

/** Re-renders its component every `ms` so relative times stay true. */
export function useNow(ms = 30_000) {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}

/** A cost in USD: "$0", "$0.0012", "$1.25". */
export const usd = (cost) => (cost === 0 ? "$0" : `$${cost < 0.01 ? cost.toPrecision(2) : cost.toFixed(2)}`);

/** The detail line of a reply: model, tokens, cost and time taken. */
export function details(message) {
  const parts = [];
  if (message.model) parts.push(message.model);
  if (message.usage) parts.push(`${message.usage.inputTokens} in · ${message.usage.outputTokens} out tokens`);
  if (message.cost != null) parts.push(usd(message.cost));
  if (message.processingTimeMs != null) parts.push(`${(message.processingTimeMs / 1000).toFixed(1)} s`);
  return parts.join(" · ");
}

const sizes = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
const counts = new Intl.NumberFormat();

/** A count as people read it: "12,345". */
export const count = (n) => counts.format(n);

/** A file's size: "812 B", "1.2 kB", "3.4 MB". */
export function bytes(size) {
  if (size < 1000) return `${size} B`;
  if (size < 1_000_000) return `${sizes.format(size / 1000)} kB`;
  return `${sizes.format(size / 1_000_000)} MB`;
}
