// The message box (Enter sends, Shift+Enter starts a new line; Stop while a reply runs) and the
// editor of an earlier message, which sends a new version of it the same way.
import { useLayoutEffect, useRef, useState } from "preact/hooks";
import { html } from "./html.js";

/** The box grows with its text (up to a limit set in CSS). */
function useGrowing(box, text) {
  useLayoutEffect(() => {
    const el = box.current;
    el.style.height = "auto";
    el.style.height = `${el.scrollHeight}px`;
  }, [text]);
}

/** Enter sends; Shift+Enter, and Enter that confirms an IME composition (Japanese, Chinese...), do not. */
const enterSends = (send) => (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    send();
  }
};

/** `hint`: why Send waits, shown under the box (the reply waits for approval). */
export function Composer({ running, disabled, hint, onSend, onStop, inputRef }) {
  const [text, setText] = useState("");
  const own = useRef(null);
  const box = inputRef ?? own;
  useGrowing(box, text);

  const send = async () => {
    const content = text.trim();
    if (!content || running || disabled) return;
    setText("");
    const accepted = await onSend(content);
    if (!accepted) setText((current) => current || content); // refused: give the words back
  };

  return html`<form
    class="composer"
    onSubmit=${(event) => {
      event.preventDefault();
      send();
    }}
  >
    <textarea
      ref=${box}
      rows="1"
      aria-label="Message"
      aria-describedby=${hint ? "composer-hint" : undefined}
      placeholder="Message (Enter to send, Shift+Enter for a new line)"
      value=${text}
      onInput=${(event) => setText(event.currentTarget.value)}
      onKeyDown=${enterSends(send)}
    ></textarea>
    ${running && html`<button type="button" class="stop" onClick=${onStop}>Stop</button>`}
    <button type="submit" class="send" disabled=${running || disabled || !text.trim()}>Send</button>
    ${hint && html`<p class="composer-hint hint" id="composer-hint" role="status">${hint}</p>`}
  </form>`;
}

/**
 * A new version of a user message, in place of its text: Enter or Send sends it, Escape or
 * Cancel gives up. `onSend` resolves whether Parley took it; refused, the words stay here.
 */
export function MessageEditor({ content, disabled, onSend, onCancel }) {
  const [text, setText] = useState(content);
  const [sending, setSending] = useState(false);
  const box = useRef(null);
  useGrowing(box, text);
  useLayoutEffect(() => {
    const el = box.current;
    el.focus();
    el.setSelectionRange(el.value.length, el.value.length);
  }, []);

  const changed = text.trim() && text.trim() !== content.trim();
  const send = async () => {
    if (!changed || sending || disabled) return;
    setSending(true);
    if (!(await onSend(text.trim()))) setSending(false); // taken, the message gives way to its new version
  };

  return html`<form
    class="editor"
    onSubmit=${(event) => {
      event.preventDefault();
      send();
    }}
    onKeyDown=${(event) => event.key === "Escape" && (event.preventDefault(), onCancel())}
  >
    <textarea
      ref=${box}
      rows="1"
      aria-label="Edited text"
      value=${text}
      onInput=${(event) => setText(event.currentTarget.value)}
      onKeyDown=${enterSends(send)}
    ></textarea>
    <span class="editor-actions">
      <button type="button" onClick=${onCancel}>Cancel</button>
      <button type="submit" class="send" disabled=${!changed || sending || disabled}>Send</button>
    </span>
  </form>`;
}
