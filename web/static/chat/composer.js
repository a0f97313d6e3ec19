// The message box: Enter sends, Shift+Enter starts a new line; Stop while a reply runs.
import { useLayoutEffect, useRef, useState } from "preact/hooks";
import { html } from "./html.js";

export function Composer({ running, disabled, onSend, onStop, inputRef }) {
  const [text, setText] = useState("");
  const own = useRef(null);
  const box = inputRef ?? own;

  // The box grows with its text (up to a limit set in CSS).
  useLayoutEffect(() => {
    const el = box.current;
    el.style.height = "auto";
    el.style.height = `${el.scrollHeight}px`;
  }, [text]);

  const send = async () => {
    const content = text.trim();
    if (!content || running || disabled) return;
    setText("");
    const accepted = await onSend(content);
    if (!accepted) setText((current) => current || content); // refused: give the words back
  };

  const onKeyDown = (event) => {
    // isComposing: Enter that confirms an IME composition (Japanese, Chinese...) is not a send.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      send();
    }
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
      placeholder="Message (Enter to send, Shift+Enter for a new line)"
      value=${text}
      onInput=${(event) => setText(event.currentTarget.value)}
      onKeyDown=${onKeyDown}
    ></textarea>
    ${running && html`<button type="button" class="stop" onClick=${onStop}>Stop</button>`}
    <button type="submit" class="send" disabled=${running || disabled || !text.trim()}>Send</button>
  </form>`;
}
