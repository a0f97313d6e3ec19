// What the user has used over the last 24 hours (`viewer.usageToday`) and, when the server sets a
// daily budget, what is left of it (`viewer.dailyBudget`): a quiet line at the foot of the
// session list, read again after each reply and every few minutes (the window slides).
import { useEffect, useState } from "preact/hooks";
import { gql } from "./api.js";
import { count, useNow, usd } from "./format.js";
import { html } from "./html.js";

const USAGE = `query Usage {
  viewer {
    usageToday { inputTokens outputTokens totalCost }
    dailyBudget { tokenLimit tokensLeft costLimit costLeft }
  }
}`;

function left(budget) {
  const parts = [];
  if (budget.tokenLimit != null) parts.push(`${count(budget.tokensLeft)} of ${count(budget.tokenLimit)} tokens`);
  if (budget.costLimit != null) parts.push(`${usd(budget.costLeft)} of ${usd(budget.costLimit)}`);
  return parts.join(" · ");
}

/** `version`: bumped when replies start or end (the figures change then). */
export function Usage({ version }) {
  const [viewer, setViewer] = useState(null);
  const now = useNow(300_000);
  useEffect(() => {
    let live = true;
    // Quietly keeps the figures it has on an error: the page's other requests say what is wrong.
    gql(USAGE).then(
      (data) => live && setViewer(data.viewer),
      () => {},
    );
    return () => (live = false);
  }, [version, now]);
  if (!viewer) return null;
  const { usageToday: used, dailyBudget: budget } = viewer;
  const limited = budget.tokenLimit != null || budget.costLimit != null;
  const spent = budget.tokensLeft === 0 || budget.costLeft === 0;
  return html`<section class="usage" aria-label="Usage today" title="Your usage over the last 24 hours">
    <p>Today: ${count(used.inputTokens + used.outputTokens)} tokens · ${usd(used.totalCost)}</p>
    ${limited && html`<p class=${spent ? "spent" : ""}>Left: ${left(budget)}</p>`}
    ${spent && html`<p class="spent">The daily budget is spent: new replies wait until older usage is a day old.</p>`}
  </section>`;
}
