// Files sent with a message: picked ("Attach files"), pasted or dropped, each uploaded at once
// (`uploadAttachment`, the GraphQL multipart request spec) and shown as a chip (a preview of an
// image from the local file) until the message goes with their ids. A message's files: images as
// thumbnails, others as downloads. Their bytes need the Bearer token, so they are fetched and
// shown through object URLs (api.js).
import { useEffect, useRef, useState } from "preact/hooks";
import { describe, fileUrl, knownFile, uploadFile } from "./api.js";
import { bytes } from "./format.js";
import { html } from "./html.js";

export const MAX_FILES = 10; // per message (Parley refuses more)
// What Parley takes (README, Attachments); the picker offers these, Parley decides from the bytes.
const ACCEPT = [
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "application/pdf",
  "text/plain",
  "text/markdown",
  "text/csv",
  "application/json",
  ".txt",
  ".md",
  ".csv",
  ".json",
].join(",");

// Drawn here (no icon font or emoji font needed): a paper clip, and a page with a folded corner.
const icon = (path, extra = "") =>
  html`<svg class=${`icon ${extra}`} viewBox="0 0 24 24" aria-hidden="true" focusable="false">
    <path
      d=${path}
      fill="none"
      stroke="currentColor"
      stroke-width="1.8"
      stroke-linecap="round"
      stroke-linejoin="round"
    />
  </svg>`;
const CLIP = "M15.5 6.5v9a3.5 3.5 0 0 1-7 0V5.5a2.25 2.25 0 0 1 4.5 0v9.5a1 1 0 0 1-2 0V7.5";
const PAGE = "M7 3h7l4 4v14H7z M14 3v4h4";

const isImage = (type) => /^image\/(png|jpeg|gif|webp)$/.test(type ?? "");
let keys = 0;

/**
 * The files going with the next message (or a new version of one): `initial` are attachments
 * already uploaded (an edited message's). Each item: { key, name, type, size, preview (an object
 * URL of the local image), attachment (once uploaded) }. A refused upload is a notice, not a chip.
 */
export function usePendingFiles(notice, initial = []) {
  const [items, setItems] = useState(() =>
    initial.map((a) => ({ key: a.id, name: a.filename, type: a.mediaType, size: a.size, attachment: a })),
  );
  const uploads = useRef(new Map()); // key -> AbortController of an upload under way
  const latest = useRef(items);
  latest.current = items;
  useEffect(
    () => () => {
      uploads.current.forEach((upload) => upload.abort());
      latest.current.forEach((item) => item.preview && !item.attachment && URL.revokeObjectURL(item.preview));
    },
    [],
  );

  const update = (key, fields) => setItems((list) => list.map((i) => (i.key === key ? { ...i, ...fields } : i)));
  const drop = (key) => setItems((list) => list.filter((i) => i.key !== key));

  const add = (fileList) => {
    const files = [...(fileList ?? [])];
    if (!files.length) return;
    const room = MAX_FILES - items.length;
    if (files.length > room) notice(`A message takes at most ${MAX_FILES} files.`);
    for (const file of files.slice(0, Math.max(room, 0))) {
      const key = `f${++keys}`;
      const preview = isImage(file.type) ? URL.createObjectURL(file) : null;
      const upload = new AbortController();
      uploads.current.set(key, upload);
      setItems((list) => [...list, { key, name: file.name || "file", type: file.type, size: file.size, preview }]);
      uploadFile(file, upload.signal)
        .then(
          (attachment) => {
            if (preview && isImage(attachment.mediaType)) knownFile(attachment, preview); // the same bytes
            update(key, { attachment, type: attachment.mediaType, name: attachment.filename });
          },
          (error) => {
            if (error.name === "AbortError") return; // removed while it was uploading
            if (preview) URL.revokeObjectURL(preview);
            drop(key);
            notice(`“${file.name}” was not attached: ${describe(error)}`);
          },
        )
        .finally(() => uploads.current.delete(key));
    }
  };

  const remove = (key) => {
    const item = items.find((i) => i.key === key);
    uploads.current.get(key)?.abort();
    if (item?.preview && !item.attachment) URL.revokeObjectURL(item.preview); // else the page shows it as sent
    drop(key);
  };

  return {
    items,
    add,
    remove,
    uploading: items.some((i) => !i.attachment),
    /** The uploaded attachments, in the order given. */
    attachments: () => items.map((i) => i.attachment).filter(Boolean),
    /** Empties the list for a message that is being sent; `restore(taken)` gives them back if it is refused. */
    take: () => {
      const taken = items;
      setItems([]);
      return taken;
    },
    restore: (taken) => setItems((list) => [...taken, ...list.filter((i) => !taken.some((t) => t.key === i.key))]),
  };
}

/** A button that opens the file picker ("Attach files"), with its hidden file input. */
export function AttachButton({ onFiles, disabled }) {
  const input = useRef(null);
  return html`<input
      ref=${input}
      type="file"
      multiple
      hidden
      accept=${ACCEPT}
      onChange=${(event) => {
        onFiles(event.currentTarget.files);
        event.currentTarget.value = ""; // the same file can be picked again
      }}
    />
    <button
      type="button"
      class="attach"
      aria-label="Attach files"
      title="Attach files (or paste or drop them here)"
      disabled=${disabled}
      onClick=${() => input.current.click()}
    >
      ${icon(CLIP, "clip")}
    </button>`;
}

/** The files going with a message, each with a preview (images) and Remove. */
export function FileChips({ files }) {
  if (!files.items.length) return null;
  return html`<ul class="chips" aria-label="Files to send">
    ${files.items.map(
      (item) =>
        html`<li key=${item.key} class=${`chip${item.attachment ? "" : " uploading"}`}>
          ${
            item.preview
              ? html`<img class="thumb" src=${item.preview} alt=${`Preview of ${item.name}`} />`
              : isImage(item.type) && item.attachment
                ? html`<${FileImage} attachment=${item.attachment} alt=${`Preview of ${item.name}`} />`
                : icon(PAGE, "file-icon")
          }
          <span class="chip-name" title=${item.name}>${item.name}</span>
          <span class="chip-size">${item.attachment ? bytes(item.size) : "Uploading…"}</span>
          <button
            type="button"
            class="link"
            aria-label=${`Remove ${item.name}`}
            onClick=${() => files.remove(item.key)}
          >
            ×
          </button>
        </li>`,
    )}
  </ul>`;
}

/** An object URL of an attachment's bytes, or null while they load (or when they could not). */
function useFileUrl(attachment) {
  const [url, setUrl] = useState(null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    let live = true;
    fileUrl(attachment).then(
      (found) => live && setUrl(found),
      () => live && setFailed(true),
    );
    return () => (live = false);
  }, [attachment.id]);
  return [url, failed];
}

function FileImage({ attachment, alt }) {
  const [url, failed] = useFileUrl(attachment);
  if (url) return html`<img class="thumb" src=${url} alt=${alt} />`;
  return html`<span class="thumb placeholder" role="img" aria-label=${alt}>${failed ? "!" : ""}</span>`;
}

function Thumbnail({ attachment }) {
  const [url, failed] = useFileUrl(attachment);
  const name = attachment.filename;
  if (!url) {
    return html`<span class="thumb placeholder" role="img" aria-label=${name} title=${failed ? "Could not load" : ""}>
      ${failed ? "!" : ""}
    </span>`;
  }
  // Opens the picture whole in a tab of its own (an object URL: the token never leaves the page).
  return html`<a href=${url} target="_blank" rel="noopener" title=${`Open ${name}`}>
    <img class="thumb" src=${url} alt=${name} />
  </a>`;
}

async function download(attachment, notice) {
  try {
    const link = document.createElement("a");
    link.href = await fileUrl(attachment);
    link.download = attachment.filename;
    link.click();
  } catch (error) {
    notice(`“${attachment.filename}” could not be downloaded: ${describe(error)}`);
  }
}

/** A message's files: images as thumbnails, others as download buttons. */
export function MessageFiles({ attachments, notice }) {
  if (!attachments?.length) return null;
  return html`<ul class="files" aria-label="Attachments">
    ${attachments.map(
      (a) =>
        html`<li key=${a.id}>
          ${
            isImage(a.mediaType)
              ? html`<${Thumbnail} attachment=${a} />`
              : html`<button type="button" class="file" title="Download" onClick=${() => download(a, notice)}>
                  ${icon(PAGE)} ${a.filename} <span class="size">${bytes(a.size)}</span>
                </button>`
          }
        </li>`,
    )}
  </ul>`;
}

/**
 * Files dragged over an element: [dragging, handlers]. A drop that an inner element took
 * (`preventDefault`) is left to it.
 */
export function useFileDrop(onFiles) {
  const [over, setOver] = useState(false);
  const depth = useRef(0);
  const carriesFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
  const reset = () => {
    depth.current = 0;
    setOver(false);
  };
  return [
    over,
    {
      onDragEnter: (event) => {
        if (!carriesFiles(event)) return;
        event.preventDefault();
        depth.current += 1;
        setOver(true);
      },
      onDragOver: (event) => {
        if (!carriesFiles(event)) return;
        event.preventDefault(); // allows the drop
        event.dataTransfer.dropEffect = "copy";
      },
      onDragLeave: (event) => {
        if (carriesFiles(event) && --depth.current <= 0) reset();
      },
      onDrop: (event) => {
        if (!carriesFiles(event)) return;
        reset();
        if (event.defaultPrevented) return;
        event.preventDefault();
        onFiles(event.dataTransfer.files);
      },
    },
  ];
}

/** Pasted files (an image copied to the clipboard): added instead of pasted as text. */
export const pasteFiles = (onFiles) => (event) => {
  const files = [...(event.clipboardData?.files ?? [])];
  if (!files.length) return;
  event.preventDefault();
  onFiles(files);
};
