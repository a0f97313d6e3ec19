// The message box (Enter sends, Shift+Enter starts a new line; Stop while a reply runs; files by
// "Attach files", paste or drop) and the editor of an earlier message, which sends a new version
// of it (its words and files) the same way.
import { useLayoutEffect, useRef, useState } from "preact/hooks";
import { AttachButton, FileChips, pasteFiles, useFileDrop, usePendingFiles } from "./attachments.js";
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

/**
 * `hint`: why Send waits, shown under the box (the reply waits for approval). `files`: the
 * pending files (usePendingFiles), kept by the chat so that a drop anywhere on it adds to them.
 * `onSend(text, attachments)` resolves whether Parley took the message.
 */
export function Composer({ running, disabled, hint, files, onSend, onStop, inputRef }) {
  const [text, setText] = useState("");
  const own = useRef(null);
  const box = inputRef ?? own;
  useGrowing(box, text);

  const empty = !text.trim() && !files.items.length; // a message may be files alone
  const send = async () => {
    const content = text.trim();
    if (empty || running || disabled || files.uploading) return;
    setText("");
    const taken = files.take();
    const accepted = await onSend(
      content,
      taken.map((item) => item.attachment),
    );
    if (!accepted) {
      setText((current) => current || content); // refused: give the words and files back
      files.restore(taken);
    }
  };
  const why = hint || (files.uploading ? "Send waits until the files are uploaded." : "");

  return html`<form
    class="composer"
    onSubmit=${(event) => {
      event.preventDefault();
      send();
    }}
  >
    <${FileChips} files=${files} />
    <${AttachButton} onFiles=${files.add} />
    <textarea
      ref=${box}
      rows="1"
      aria-label="Message"
      aria-describedby=${why ? "composer-hint" : undefined}
      placeholder="Message (Enter to send, Shift+Enter for a new line)"
      value=${text}
      onInput=${(event) => setText(event.currentTarget.value)}
      onKeyDown=${enterSends(send)}
      onPaste=${pasteFiles(files.add)}
    ></textarea>
    ${running && html`<button type="button" class="stop" onClick=${onStop}>Stop</button>`}
    <button type="submit" class="send" disabled=${running || disabled || files.uploading || empty}>Send</button>
    ${why && html`<p class="composer-hint hint" id="composer-hint" role="status">${why}</p>`}
  </form>`;
}

const sameFiles = (items, attachments) =>
  items.length === attachments.length && items.every((item, i) => item.attachment?.id === attachments[i].id);

/**
 * A new version of a user message, in place of its text: Enter or Send sends it, Escape or
 * Cancel gives up. It starts with the message's files, which can be removed or added to (the new
 * version has exactly the files shown). `onSend(text, attachments)` resolves whether Parley took
 * it; refused, the words and files stay here.
 */
export function MessageEditor({ content, attachments = [], disabled, notice, onSend, onCancel }) {
  const [text, setText] = useState(content);
  const [sending, setSending] = useState(false);
  const files = usePendingFiles(notice, attachments);
  const [dragging, dropHandlers] = useFileDrop(files.add);
  const box = useRef(null);
  useGrowing(box, text);
  useLayoutEffect(() => {
    const el = box.current;
    el.focus();
    el.setSelectionRange(el.value.length, el.value.length);
  }, []);

  const changed =
    (text.trim() || files.items.length) && (text.trim() !== content.trim() || !sameFiles(files.items, attachments));
  const send = async () => {
    if (!changed || sending || disabled || files.uploading) return;
    setSending(true);
    // Taken, the message gives way to its new version.
    if (!(await onSend(text.trim(), files.attachments()))) setSending(false);
  };

  return html`<form
    class=${`editor${dragging ? " dropping" : ""}`}
    ...${dropHandlers}
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
      onPaste=${pasteFiles(files.add)}
    ></textarea>
    <${FileChips} files=${files} />
    <span class="editor-actions">
      <${AttachButton} onFiles=${files.add} />
      <button type="button" onClick=${onCancel}>Cancel</button>
      <button type="submit" class="send" disabled=${!changed || sending || disabled || files.uploading}>Send</button>
    </span>
  </form>`;
}
