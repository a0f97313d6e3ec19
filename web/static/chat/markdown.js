// Message text as safe HTML. Model text is untrusted (it can repeat anything a user or a web page
// put in front of the model), so: marked turns markdown into HTML, DOMPurify removes every script,
// event handler, `javascript:` URL, form and style from it, and what is left is adjusted before
// it reaches the page. The page's Content-Security-Policy (web/chat.py) is the second fence.
import DOMPurify from "dompurify";
import { useLayoutEffect, useRef } from "preact/hooks";
import { Marked } from "marked";
import { html } from "./html.js";

const marked = new Marked({ gfm: true, breaks: true, async: false });
const purify = DOMPurify(window); // an instance of our own: its settings and hooks are not global

const MARKDOWN_POLICY = {
  USE_PROFILES: { html: true }, // no SVG or MathML
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "option", "dialog"],
  FORBID_ATTR: ["style"],
  SANITIZE_NAMED_PROPS: true, // ids and names in messages cannot shadow the page's globals
  RETURN_DOM_FRAGMENT: true,
};

purify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A" && node.hasAttribute("href")) {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

const local = (url) => {
  try {
    const parsed = new URL(url, location.href);
    return parsed.origin === location.origin || parsed.protocol === "data:";
  } catch {
    return false;
  }
};

/** The markdown of a message as a sanitized DOM fragment. */
export function renderMarkdown(text) {
  const fragment = purify.sanitize(marked.parse(text), MARKDOWN_POLICY);
  // An image from another host would be fetched the moment it shows: a reply could leak the
  // conversation through its URL. Such images become plain links.
  for (const img of fragment.querySelectorAll("img")) {
    if (local(img.getAttribute("src") ?? "")) continue;
    const link = document.createElement("a");
    link.href = img.getAttribute("src") ?? "";
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.textContent = `[image: ${img.getAttribute("alt") || link.href}]`;
    img.replaceWith(link);
  }
  for (const pre of fragment.querySelectorAll("pre")) {
    const block = document.createElement("div");
    block.className = "code-block";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "copy";
    copy.textContent = "Copy";
    copy.setAttribute("aria-label", "Copy code");
    pre.replaceWith(block);
    block.append(copy, pre);
  }
  return fragment;
}

/** Search snippets: Parley marks matched words with <b>, and nothing else may pass. */
export function sanitizeSnippet(snippet) {
  return purify.sanitize(snippet, { ALLOWED_TAGS: ["b"], ALLOWED_ATTR: [] });
}

async function copyCode(event) {
  const button = event.target.closest("button.copy");
  if (!button) return;
  const code = button.parentElement.querySelector("pre").textContent;
  try {
    await navigator.clipboard.writeText(code); // needs a secure context (https or localhost)
  } catch {
    const range = document.createRange();
    range.selectNodeContents(button.parentElement.querySelector("pre"));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    document.execCommand("copy");
  }
  button.textContent = "Copied";
  setTimeout(() => (button.textContent = "Copy"), 1500);
}

/** Renders `text` as markdown; re-renders only when the text changes (streaming grows it). */
export function Markdown({ text }) {
  const ref = useRef(null);
  useLayoutEffect(() => ref.current.replaceChildren(renderMarkdown(text)), [text]);
  return html`<div class="markdown" ref=${ref} onClick=${copyCode}></div>`;
}
