// Uploads one file to InstaShare with tus-js-client, unmodified, retrying through outages.
// Usage: node upload.mjs ENDPOINT TOKEN FILE
// Prints one JSON object per line: {"progress", "total"} while sending, then
// {"done": true, "url", "documentId"}; exits 1 with the error on stderr if it gives up.
import { readFileSync } from "node:fs";
import * as tus from "tus-js-client";

const [endpoint, token, path] = process.argv.slice(2);
let documentId = null;

const upload = new tus.Upload(readFileSync(path), {
  endpoint,
  headers: { Authorization: `Bearer ${token}` },
  chunkSize: 5 * 1024 * 1024,
  metadata: { filename: "from-node.bin", filetype: "application/octet-stream" },
  // Long enough to ride out a server that is killed and started again.
  retryDelays: [0, 500, 1000, 2000, 3000, 5000, 5000, 5000, 5000, 5000, 5000],
  onProgress: (sent, total) => console.log(JSON.stringify({ progress: sent, total })),
  onAfterResponse: (_request, response) => {
    documentId = response.getHeader("Document-Id") || documentId;
  },
  onSuccess: () => console.log(JSON.stringify({ done: true, url: upload.url, documentId })),
  onError: (error) => {
    console.error(String(error));
    process.exit(1);
  },
});
upload.start();
